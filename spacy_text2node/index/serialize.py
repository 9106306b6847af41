"""Serialization helpers of the index: `.npy` bytes of an array (no pickle), and parts of an
object written one file each (spaCy's `util.to_disk` / `util.from_disk`)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional

import numpy as np
from spacy import util


def npy_bytes(arr: np.ndarray) -> bytes:
    """`.npy` bytes of an array (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes) -> np.ndarray:
    """The array of `.npy` bytes (no pickle)."""
    return np.load(io.BytesIO(data), allow_pickle=False)


def replace_file(p: Path, write: Callable[[Path], None]) -> None:
    """Write the file `p` through `write(tmp)` on a sibling, then rename it over `p`: a
    loaded pipeline maps its arrays from these files (mmap), and a file rewritten in place
    would change (or, once truncated, crash) the mapping of a pipeline saved over its own folder."""
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_npy(p: Path, arr: np.ndarray) -> None:
    """`np.save` without pickle, through `replace_file`."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.save(f, np.asarray(arr), allow_pickle=False)

    replace_file(p, write)


def parts_to_disk(path: Path, getters: Dict[str, Callable[[], bytes]]) -> None:
    """One file per part in the folder `path` (made if missing), named after the part
    (each through `replace_file`)."""

    def writer(get: Callable[[], bytes]) -> Callable[[Path], None]:
        def write(p: Path) -> None:
            data = get()

            def write_data(tmp: Path) -> None:
                tmp.write_bytes(data)

            replace_file(p, write_data)

        return write

    util.to_disk(path, {name: writer(get) for name, get in getters.items()}, exclude=[])


def parts_from_disk(path: Path, names: Iterable[str]) -> Dict[str, bytes]:
    """The bytes of the parts `names` that the folder `path` holds (missing ones left out)."""
    parts: Dict[str, bytes] = {}

    def reader(name: str) -> Callable[[Path], None]:
        def read(p: Path) -> None:
            if p.exists():
                parts[name] = p.read_bytes()

        return read

    util.from_disk(path, {name: reader(name) for name in names}, exclude=[])
    return parts


def remove(path: Path) -> None:
    """Remove a file or folder if it exists (a part an earlier save left, absent now)."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def optional(value: Optional[object], writer: Callable[[Path], None]) -> Callable[[Path], None]:
    """A writer for an optional part: `writer` when there is a value, else remove what an
    earlier save left there (so it is not read back as this object's)."""
    return writer if value is not None else remove
