"""Writers for bulk linking, one output format per module, and the reading back of an output.

Writers append: JSONL with flush + fsync per batch (`jsonl`), Parquet as part files in an
output folder (`parquet`: each part is written to a temporary name and renamed, so a killed
run never leaves half a part). `read_back` finds what an earlier run finished (for --resume), also in
the folders of part files that Spark's executors write.
"""

from .base import OUTPUT_FORMATS, detect_output_format
from .jsonl import JsonlWriter
from .parquet import ParquetPartsWriter
from .read_back import (
    PART_PATTERNS,
    done_error_indices,
    done_output_ids,
    folder_format,
    output_parts,
    read_output,
    remove_unfinished,
)

__all__ = [
    "OUTPUT_FORMATS",
    "PART_PATTERNS",
    "JsonlWriter",
    "ParquetPartsWriter",
    "detect_output_format",
    "done_error_indices",
    "done_output_ids",
    "folder_format",
    "output_parts",
    "read_output",
    "remove_unfinished",
]
