"""The CSV/TSV reader: a header row, then rows streamed one by one (`csv_rows`: line-aware, so a
stray quote never merges rows)."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Iterator, List, Optional

from ...util import open_binary
from .base import _MISSING_ID_HINT, InputRecord, PathLike, _record, _strip_gz, check_id, normalize_id_field
from .csv_rows import csv_rows


def _csv_lines(path: Path) -> Iterator[str]:
    with open_binary(path) as fb:
        yield from io.TextIOWrapper(fb, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _csv_delimiter(path: Path, delimiter: Optional[str]) -> str:
    if delimiter is not None:
        return delimiter
    return "\t" if _strip_gz(path).endswith(".tsv") else ","


def _csv_header(path: Path, delimiter: str, id_field: Optional[str], text_field: str) -> Optional[List[str]]:
    """The header of a CSV file, checked for the id and text columns; None for an empty file."""
    rows = csv_rows(_csv_lines(path), delimiter)
    try:
        first, _, header, reason = next(rows)
    except StopIteration:
        return None
    finally:
        rows.close()
    if reason is not None or header is None:
        raise ValueError(f"{path}, line {first}: cannot read the header row ({reason}).")
    if text_field not in header:
        raise ValueError(
            f"{path}, line {first}: no text column {text_field!r} in the header {header}. "
            f"Pass the text column's name (--text-field)."
        )
    if id_field is not None and id_field not in header:
        raise ValueError(f"{path}, line {first}: no id column {id_field!r} in the header {header}. " + _MISSING_ID_HINT)
    return header


def read_csv(
    path: PathLike, *, id_field: Optional[str] = "id", text_field: str = "text", delimiter: Optional[str] = None
) -> Iterator[InputRecord]:
    """Stream a CSV or TSV file with a header row, row by row (a UTF-8 BOM is dropped).

    Rows are delimited line-aware (see `csv_rows`): a quoted field may span lines, but a row that cannot
    be read (an unterminated quote, the wrong number of fields) is yielded with an error and its first
    line, and reading goes on at the next line, so a stray quote never merges rows.

    path (PathLike): the file (.gz is decompressed on the fly).
    id_field (Optional[str]): the id column (it must be in the header); None or "none": the 0-based record index.
    text_field (str): the text column; it must be in the header.
    delimiter (Optional[str]): the delimiter (default: tab for .tsv, else comma).
    YIELDS (InputRecord): the records; `line` is the line where the row ends.
    """
    path = Path(path)
    delimiter = _csv_delimiter(path, delimiter)
    id_field = normalize_id_field(id_field)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    header = _csv_header(path, delimiter, id_field, text_field)
    if header is None:
        return
    ti = header.index(text_field)
    ii = header.index(id_field) if id_field is not None else None
    rows = csv_rows(_csv_lines(path), delimiter)
    next(rows)  # the header
    for index, (first, last, row, reason) in enumerate(rows):
        if reason is not None:
            rid = check_id(row[ii])[0] if row is not None and ii is not None and ii < len(row) else None
            yield InputRecord(index, rid, None, first, reason)
            continue
        assert row is not None
        raw = {text_field: row[ti]}
        if ii is not None and id_field is not None:
            raw[id_field] = row[ii]
        yield _record(index, raw, id_field, text_field, last)
