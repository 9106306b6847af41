"""The bulk readers and writers in one namespace, as before they were split into
`spacy_text2node.bulk.readers` (one module per input format) and
`spacy_text2node.bulk.writers` (one module per output format)."""

from .readers import (
    BOM,
    ID_NONE,
    INPUT_FORMATS,
    InputRecord,
    PathLike,
    check_id,
    check_jsonl_fields,
    check_parquet_columns,
    check_text,
    detect_input_format,
    normalize_id_field,
    read_csv,
    read_jsonl,
    read_parquet,
    read_records,
    read_txt_dir,
)
from .writers import (
    OUTPUT_FORMATS,
    JsonlWriter,
    ParquetPartsWriter,
    detect_output_format,
    done_error_indices,
    done_output_ids,
    read_output,
)

__all__ = [
    "BOM",
    "ID_NONE",
    "INPUT_FORMATS",
    "OUTPUT_FORMATS",
    "InputRecord",
    "JsonlWriter",
    "ParquetPartsWriter",
    "PathLike",
    "check_id",
    "check_jsonl_fields",
    "check_parquet_columns",
    "check_text",
    "detect_input_format",
    "detect_output_format",
    "done_error_indices",
    "done_output_ids",
    "normalize_id_field",
    "read_csv",
    "read_jsonl",
    "read_output",
    "read_parquet",
    "read_records",
    "read_txt_dir",
]
