"""`read_records`: any input, its format guessed or given, checked before the first record is read."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Iterator, Optional

from .base import INPUT_FORMATS, InputRecord, PathLike, detect_input_format, normalize_id_field
from .csv import _csv_delimiter, _csv_header, read_csv
from .jsonl import check_jsonl_fields, read_jsonl
from .parquet import check_parquet_columns, read_parquet
from .text import read_txt_dir


def read_records(
    path: PathLike,
    *,
    input_format: Optional[str] = None,
    id_field: Optional[str] = "id",
    text_field: str = "text",
) -> Iterator[InputRecord]:
    """Stream the records of an input in any supported format.

    The input, its format and its id and text fields/columns are checked when this is called
    (before any record is read): a missing input, an unknown format, or an id or text field that the
    header (CSV, Parquet) or the first record (JSONL) lacks is a ValueError.

    path (PathLike): a JSONL, CSV, TSV or Parquet file, or a folder of .txt or .parquet files.
    input_format (Optional[str]): one of INPUT_FORMATS; None guesses from the path.
    id_field (Optional[str]): the id field or column; None or "none": the 0-based record index
        (a folder of .txt files always uses the file names).
    text_field (str): the text field or column.
    RETURNS (Iterator[InputRecord]): the records in input order.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"Input {path} does not exist.")
    fmt = input_format or detect_input_format(path)
    id_field = normalize_id_field(id_field)
    try:
        if fmt == "jsonl":
            _not_a_folder(path, fmt)
            check_jsonl_fields(path, id_field=id_field, text_field=text_field)
            return _reading(path, read_jsonl(path, id_field=id_field, text_field=text_field))
        if fmt in ("csv", "tsv"):
            _not_a_folder(path, fmt)
            delimiter = "\t" if fmt == "tsv" else _csv_delimiter(path, None)
            _csv_header(path, delimiter, id_field, text_field)
            return _reading(path, read_csv(path, id_field=id_field, text_field=text_field, delimiter=delimiter))
    except _READ_ERRORS as e:
        raise ValueError(f"{path}: cannot read the input ({type(e).__name__}: {e}).") from None
    if fmt == "parquet":
        check_parquet_columns(path, id_field=id_field, text_field=text_field)
        return _reading(path, read_parquet(path, id_field=id_field, text_field=text_field))
    if fmt == "txt":
        if not path.is_dir():
            raise ValueError(f"Input format 'txt' needs a folder of .txt files; {path} is a file.")
        return read_txt_dir(path)
    raise ValueError(f"Unknown input format {fmt!r} (--input-format): use one of {', '.join(INPUT_FORMATS)}.")


# a damaged or truncated compressed file, an unreadable file
_READ_ERRORS = (EOFError, OSError, zlib.error)


def _reading(path: Path, records: Iterator[InputRecord]) -> Iterator[InputRecord]:
    """Re-raise a read failure in the middle of an input as a ValueError that names the file."""
    last: Optional[InputRecord] = None
    try:
        for last in records:
            yield last
    except _READ_ERRORS as e:
        where = f" after record {last.index} (line {last.line})" if last is not None and last.line else ""
        raise ValueError(
            f"{path}: cannot read the input{where} ({type(e).__name__}: {e}). Fix or replace the file, "
            f"then continue the run with --resume."
        ) from None


def _not_a_folder(path: Path, fmt: str) -> None:
    if path.is_dir():
        raise ValueError(f"Input {path} is a folder; {fmt} input is a file (--input-format {fmt}).")
