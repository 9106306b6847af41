"""The plain-text reader: a folder of .txt files, one record per file, in sorted order."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .base import InputRecord, PathLike


def read_txt_dir(path: PathLike) -> Iterator[InputRecord]:
    """Stream a folder of .txt files (searched recursively) in sorted order; the id
    of each record is its path relative to the folder, the text its raw bytes
    (decoded as UTF-8 at validation).

    path (PathLike): the folder.
    YIELDS (InputRecord): the records.
    """
    root = Path(path)
    files = sorted(root.rglob("*.txt"), key=lambda p: p.relative_to(root).as_posix())
    for index, file in enumerate(files):
        rid = file.relative_to(root).as_posix()
        try:
            data = file.read_bytes()
        except OSError as e:
            yield InputRecord(index, rid, None, None, f"cannot read file: {e}")
            continue
        yield InputRecord(index, rid, data, None)
