"""Streaming readers for bulk linking, one input format per module.

Readers yield one `InputRecord` per input record and never hold the whole input:
JSONL line by line (`jsonl`), CSV/TSV row by row (`csv`, with `csv_rows`: line-aware, so a
stray quote never merges rows), Parquet batch by batch (`parquet`), a folder of `.txt` files
file by file in sorted order (`text`). `read_records` (`input`) picks the reader of an input.
"""

from .base import (
    BOM,
    ID_NONE,
    INPUT_FORMATS,
    InputRecord,
    PathLike,
    check_id,
    check_text,
    detect_input_format,
    normalize_id_field,
)
from .csv import read_csv
from .input import read_records
from .jsonl import check_jsonl_fields, read_jsonl
from .parquet import check_parquet_columns, read_parquet
from .text import read_txt_dir

__all__ = [
    "BOM",
    "ID_NONE",
    "INPUT_FORMATS",
    "InputRecord",
    "PathLike",
    "check_id",
    "check_jsonl_fields",
    "check_parquet_columns",
    "check_text",
    "detect_input_format",
    "normalize_id_field",
    "read_csv",
    "read_jsonl",
    "read_parquet",
    "read_records",
    "read_txt_dir",
]
