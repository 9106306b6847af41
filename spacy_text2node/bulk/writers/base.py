"""The output formats."""

from __future__ import annotations

from pathlib import Path

from ..readers.base import PathLike

OUTPUT_FORMATS = ("jsonl", "parquet")


def detect_output_format(path: PathLike) -> str:
    """`parquet` for a path ending in .parquet (written as a folder of part files),
    `jsonl` for .jsonl/.ndjson/.json."""
    name = Path(path).name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise ValueError(
        f"Cannot tell the format of output {path} from its name: end it in .jsonl or .parquet, "
        f"or pass the output format explicitly (one of {', '.join(OUTPUT_FORMATS)})."
    )
