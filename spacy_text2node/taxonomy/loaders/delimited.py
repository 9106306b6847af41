"""CSV and TSV taxonomies: a header row, then one concept per row."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import List, Optional, Sequence

from ..builder import TaxonomyBuilder
from ..concepts import TaxonomyError
from ..core import Taxonomy
from .common import MULTI_SEP, PathLike, check_file, did_you_mean, numbered_lines, split_multi


def _check_csv_header(
    p: Path, header: List[str], delimiter: str, required: Sequence[str], optional: Sequence[str]
) -> None:
    """Raise a TaxonomyError naming the file, line 1 and the fix for a duplicate, missing or unknown column.

    Unknown columns are errors, not ignored: a header saying `parent` instead of `parents`
    would otherwise load as a flat list. Columns with an empty name are ignored.
    """
    expected = list(required) + list(optional)
    listing = (
        f"Expected columns {', '.join(expected)} (only {' and '.join(required)} are required; "
        "in Python the names can be changed with id_column=, label_column=, parents_column=...)"
    )
    named = [h for h in header if h]
    for h in named:
        if named.count(h) > 1:
            raise TaxonomyError(f"{p}, line 1: column {h!r} appears twice in the header {header}. Keep one of them.")
    unknown = [h for h in named if h not in expected]
    for col in required:
        if col not in header:
            close = did_you_mean(col, unknown)
            hint = f" (did you mean {col!r} instead of {close!r}?)" if close else ""
            if len(header) == 1 and any(d in header[0] for d in ",;\t|" if d != delimiter):
                hint += f" (the header is one column read with delimiter {delimiter!r}: name a tab-separated file .tsv)"
            raise TaxonomyError(f"{p}, line 1: no {col!r} column in the header {header}{hint}. {listing}.")
    if unknown:
        free = [c for c in expected if c not in header]
        parts = []
        for h in unknown:
            close = did_you_mean(h, free)
            parts.append(f"{h!r} (did you mean {close!r}?)" if close else repr(h))
        what = "column" if len(unknown) == 1 else "columns"
        raise TaxonomyError(
            f"{p}, line 1: unknown {what} {', '.join(parts)} in the header {header}. {listing}. "
            f"Rename the {what} or remove {'it' if len(unknown) == 1 else 'them'}."
        )


def load_csv(
    path: PathLike,
    *,
    delimiter: Optional[str] = None,
    id_column: str = "id",
    label_column: str = "label",
    parents_column: str = "parents",
    synonyms_column: str = "synonyms",
    definition_column: str = "definition",
    multi_sep: str = MULTI_SEP,
    on_error: str = "raise",
    name: Optional[str] = None,
) -> Taxonomy:
    """Load a CSV or TSV with a header row: id, label, parents, synonyms[, definition].

    Several parents or synonyms go in one cell separated by `multi_sep` ("|").
    The delimiter is a tab for `.tsv`/`.tab` files and a comma otherwise.

    path (str / Path): the file (gzipped or not).
    delimiter (str): override the delimiter.
    id_column, label_column, parents_column, synonyms_column, definition_column (str):
        column names; parents, synonyms and definition may be absent.
    multi_sep (str): separator of several values in one cell.
    on_error (str): "raise" or "skip".
    name (str): the taxonomy's name (default: the file stem).
    RETURNS (Taxonomy): the taxonomy.
    """
    p = check_file(path)
    if delimiter is None:
        suffixes = [s.lower() for s in p.suffixes]
        delimiter = "\t" if (".tsv" in suffixes or ".tab" in suffixes) else ","
    b = TaxonomyBuilder(str(p), on_error=on_error, name=name or p.name.split(".")[0])
    lines = numbered_lines(p)
    try:
        first = next(lines)
    except StopIteration:
        raise TaxonomyError(
            f"{p}: the file is empty. Expected a header row with columns "
            f"{id_column}, {label_column}, {parents_column}, {synonyms_column}."
        ) from None
    try:
        header = next(csv.reader([first[1]], delimiter=delimiter, strict=True), [])
    except csv.Error as e:
        raise TaxonomyError(
            f"{p}:{first[0]}: the header row cannot be read as delimited text ({e}). Expected a header row "
            f"with columns {id_column}, {label_column}, {parents_column}, {synonyms_column}."
        ) from None
    header = [h.strip() for h in header]
    _check_csv_header(
        p, header, delimiter, (id_column, label_column), (parents_column, synonyms_column, definition_column)
    )
    pos = {h: i for i, h in enumerate(header)}
    # csv.reader over numbered lines: a quoted field with a newline continues the record
    buf: List[str] = []
    buf_start = 0
    for n, line in lines:
        if not buf:
            buf_start = n
        buf.append(line)
        text = "\n".join(buf)
        if text.count('"') % 2 == 1:
            continue
        buf = []
        if not text.strip():
            continue
        try:
            cells = next(csv.reader([text], delimiter=delimiter, strict=True))
        except csv.Error as e:
            b.problem(buf_start, f"malformed row ({e})")
            continue
        if len(cells) != len(header):
            b.problem(buf_start, f"expected {len(header)} columns ({', '.join(header)}), found {len(cells)}")
            continue
        row = {col: cells[i].strip() for col, i in pos.items()}
        b.add(
            row.get(id_column, ""),
            row.get(label_column, ""),
            synonyms=split_multi(row.get(synonyms_column, ""), multi_sep),
            definition=row.get(definition_column, "") or None,
            parents=split_multi(row.get(parents_column, ""), multi_sep),
            line=buf_start,
        )
    if buf:
        b.problem(buf_start, "unterminated quoted field at the end of the file")
    return b.build()
