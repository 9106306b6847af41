"""Reading a bulk output back: the ids and indices an earlier run finished (for --resume), and a whole
output (`read_output`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from ..readers.base import PathLike
from .base import detect_output_format
from .jsonl import _read_jsonl_tolerant


def done_output_ids(path: PathLike, output_format: str, repair: bool = True) -> Tuple[Set[str], int]:
    """The ids already in an output (for --resume), repairing a truncated JSONL tail
    and removing unfinished Parquet parts.

    path (PathLike): the output file (JSONL) or folder (Parquet).
    output_format (str): "jsonl" or "parquet".
    repair (bool): cut a truncated last line / remove temporary part files.
    RETURNS (Tuple[Set[str], int]): the ids and the number of records.
    """
    path = Path(path)
    ids: Set[str] = set()
    n = 0
    if output_format == "jsonl":
        for obj in _read_jsonl_tolerant(path, repair):
            ids.add(obj["id"])
            n += 1
    else:
        if not path.exists():
            return ids, 0
        import pyarrow.parquet as pq

        for tmp in path.glob(".*.tmp"):
            if repair:
                tmp.unlink()
        for file in sorted(path.glob("part-*.parquet")):
            col = pq.read_table(file, columns=["id"]).column("id").to_pylist()
            ids.update(col)
            n += len(col)
    return ids, n


def done_error_indices(path: PathLike, repair: bool = True) -> Tuple[Set[int], int]:
    """The input indices already in an errors file (for --resume).

    path (PathLike): the errors JSONL file.
    repair (bool): cut a truncated last line.
    RETURNS (Tuple[Set[int], int]): the indices and the number of entries.
    """
    idx: Set[int] = set()
    n = 0
    for obj in _read_jsonl_tolerant(Path(path), repair):
        idx.add(int(obj["index"]))
        n += 1
    return idx, n


def read_output(path: PathLike, output_format: Optional[str] = None) -> List[Dict[str, Any]]:
    """Read a whole bulk output back as a list of records (for tests and small outputs).

    path (PathLike): the JSONL file or Parquet folder.
    output_format (Optional[str]): "jsonl" or "parquet"; None guesses from the path.
    RETURNS (List[Dict[str, Any]]): the records in written order.
    """
    path = Path(path)
    fmt = output_format or ("parquet" if path.is_dir() else detect_output_format(path))
    if fmt == "jsonl":
        with open(path, "rb") as f:
            return [json.loads(line) for line in f if line.strip()]
    import pyarrow.parquet as pq

    out: List[Dict[str, Any]] = []
    for file in sorted(path.glob("part-*.parquet")):
        out.extend(pq.read_table(file).to_pylist())
    return out
