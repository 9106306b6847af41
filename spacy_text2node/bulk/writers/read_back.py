"""Reading a bulk output back: the ids and indices an earlier run finished (for --resume), and a whole
output (`read_output`).

An output is a JSONL file, or a folder of part files: Parquet (`part-*.parquet`, written by the local
runner or by Spark's executors) or JSON lines (`part-*.json`, written by Spark's executors for a
`.jsonl` OUTPUT of `--backend spark`). Spark keeps a task's files under `_temporary/` until its job
commits, so what is there when a run is killed was never part of the output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from ..readers.base import PathLike
from .base import detect_output_format
from .jsonl import _read_jsonl_tolerant

# The part files of a folder output, by format; hidden names (".", "_": checksums, _SUCCESS,
# _temporary) are not parts, as for Spark and pyarrow.
PART_PATTERNS = {"parquet": "part-*.parquet", "jsonl": "part-*.json"}


def output_parts(path: PathLike, output_format: str) -> List[Path]:
    """The part files of a folder output, sorted by name (not the input order across parts: Spark's
    executors write one part per task).

    path (PathLike): the output folder.
    output_format (str): "jsonl" or "parquet".
    RETURNS (List[Path]): the part files (none when the folder is absent).
    """
    path = Path(path)
    return sorted(path.glob(PART_PATTERNS[output_format])) if path.is_dir() else []


def folder_format(path: PathLike) -> str:
    """The format of a folder output: "jsonl" when it holds JSON-lines parts, else "parquet"."""
    return "jsonl" if output_parts(path, "jsonl") else "parquet"


def remove_unfinished(path: PathLike) -> None:
    """Remove what a killed run left unfinished in a folder output: temporary Parquet parts of the
    local runner (`.*.tmp`) and Spark's uncommitted task output (`_temporary/`)."""
    path = Path(path)
    if not path.is_dir():
        return
    for tmp in path.glob(".*.tmp"):
        tmp.unlink()
    if (path / "_temporary").is_dir():
        shutil.rmtree(path / "_temporary")


def done_output_ids(path: PathLike, output_format: str, repair: bool = True) -> Tuple[Set[str], int]:
    """The ids already in an output (for --resume), repairing a truncated JSONL tail
    and removing unfinished parts (`remove_unfinished`).

    path (PathLike): the output: a JSONL file, or a folder of Parquet or JSON-lines parts.
    output_format (str): "jsonl" or "parquet".
    repair (bool): cut a truncated last line / remove temporary part files.
    RETURNS (Tuple[Set[str], int]): the ids and the number of records.
    """
    path = Path(path)
    ids: Set[str] = set()
    n = 0
    if repair:
        remove_unfinished(path)
    if output_format == "jsonl":
        for file in output_parts(path, "jsonl") if path.is_dir() else [path]:
            for obj in _read_jsonl_tolerant(file, repair):
                ids.add(obj["id"])
                n += 1
    else:
        import pyarrow.parquet as pq

        for file in output_parts(path, "parquet"):
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

    path (PathLike): the JSONL file, or a folder of Parquet or JSON-lines parts.
    output_format (Optional[str]): "jsonl" or "parquet"; None: a folder's parts, or a file's name, say.
    RETURNS (List[Dict[str, Any]]): the records: in written order for a file and for the parts of the
        local runner; a Spark output keeps the order within each part only (compare by id).
    """
    path = Path(path)
    fmt = output_format or (folder_format(path) if path.is_dir() else detect_output_format(path))
    out: List[Dict[str, Any]] = []
    if fmt == "jsonl":
        for file in output_parts(path, "jsonl") if path.is_dir() else [path]:
            with open(file, "rb") as f:
                out.extend(json.loads(line) for line in f if line.strip())
        return out
    import pyarrow.parquet as pq

    for file in output_parts(path, "parquet"):
        out.extend(pq.read_table(file).to_pylist())
    return out
