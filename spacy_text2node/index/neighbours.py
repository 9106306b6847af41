"""Nearest-neighbour search in node space: an HNSW graph (usearch) or annoy's forest of trees.

Both hold the rows of node space that can be candidates (item i is row i of what they were
built from), search unit rows by inner product (annoy: by angle, the same order), and keep
one file that is memory-mapped when a pipeline loads from disk, so processes that load the
same pipeline share its pages. A query's neighbours never depend on the other queries of a
batch: HNSW searches each row alone (on one of its own threads), annoy one query at a time.
Both build on one thread (annoy from a seed), so a build is reproducible. Their files'
checks: annoy's size (`manifest.check_annoy_size`), the HNSW file's size and sha256.

`HnswNeighbours` is the default (`[index] ann = "hnsw"`): on the GEM P1 test queries it finds
about nine in ten of the exact 50 nearest where annoy finds about six, and faster (see
docs/benchmarks.md#ann). `AnnoyNeighbours` loads the pipelines saved before it.
"""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
from annoy import AnnoyIndex
from spacy.util import make_tempdir

ANN_KINDS = ("hnsw", "annoy")


class AnnoyNeighbours:
    """annoy's angular index (`n_trees` trees; `search_k` -1: annoy's default of trees x k)."""

    kind = "annoy"
    FILE = "annoy.ann"

    def __init__(self, index: AnnoyIndex, *, n_trees: int, seed: int):
        self.index = index
        self.n_trees = int(n_trees)
        self.seed = int(seed)

    @classmethod
    def build(cls, rows: np.ndarray, *, n_trees: int = 20, seed: int = 0) -> "AnnoyNeighbours":
        idx = AnnoyIndex(int(rows.shape[1]), "angular")
        idx.set_seed(int(seed))
        for i, row in enumerate(rows):
            idx.add_item(i, row)
        idx.build(int(n_trees), n_jobs=1)
        return cls(idx, n_trees=n_trees, seed=seed)

    def __len__(self) -> int:
        return int(self.index.get_n_items())

    def search(self, Y: np.ndarray, k: int, *, search_k: int = -1, ef: int = 0, threads: int = 1) -> List[np.ndarray]:
        """Item positions of each row's k nearest, nearest first, on this thread (`ef` and
        `threads` are HNSW's, unused: annoy lets other Python threads run while it searches)."""
        get = self.index.get_nns_by_vector
        return [np.asarray(get(y, k, search_k=search_k), dtype="int64") for y in Y]

    def cfg(self) -> Dict[str, Any]:
        return {"ann": self.kind, "n_trees": self.n_trees, "seed": self.seed}

    def save(self, path: Path) -> Dict[str, Any]:
        """Write the file; RETURNS what cfg.json records to check it on load."""
        self.index.save(str(path))
        # the annoy file's size is checked before annoy maps it (a damaged one can crash the process)
        return {"annoy_bytes": path.stat().st_size}

    @classmethod
    def load(cls, path: Path, cfg: Dict[str, Any], dim: int, n_items: int) -> "AnnoyNeighbours":
        from ..pipeline.manifest import check_annoy_loaded, check_annoy_size, load_step

        check_annoy_size(path, path.stat().st_size, dim, n_items, cfg.get("annoy_bytes"))
        index = AnnoyIndex(dim, "angular")
        with load_step(path, "the annoy index"):
            index.load(str(path))
        check_annoy_loaded(path, index, n_items)
        return cls(index, n_trees=cfg["n_trees"], seed=cfg["seed"])

    @staticmethod
    def bytes_cfg(data: bytes) -> Dict[str, Any]:
        return {}

    def to_bytes(self) -> bytes:
        with make_tempdir() as tmp:
            self.index.save(str(tmp / self.FILE))
            return (tmp / self.FILE).read_bytes()

    @classmethod
    def from_bytes(cls, data: bytes, cfg: Dict[str, Any], dim: int, n_items: int, where: str) -> "AnnoyNeighbours":
        from ..pipeline.manifest import check_annoy_loaded, check_annoy_size

        check_annoy_size(where, len(data), dim, n_items)
        index = AnnoyIndex(dim, "angular")
        with make_tempdir() as tmp:
            (tmp / cls.FILE).write_bytes(data)
            index.load(str(tmp / cls.FILE), prefault=True)  # the mapping stays valid after unlink
        check_annoy_loaded(where, index, n_items)
        return cls(index, n_trees=cfg["n_trees"], seed=cfg["seed"])


class HnswNeighbours:
    """An HNSW graph of usearch (inner product over unit rows, float32): `m` links per node,
    `ef_construction` candidates while building; a search looks at max(ef, k) candidates."""

    kind = "hnsw"
    FILE = "hnsw.usearch"

    def __init__(self, index: Any, *, m: int, ef_construction: int):
        self.index = index
        self.m = int(m)
        self.ef_construction = int(ef_construction)
        # usearch keeps the search breadth on the index, not per call: searches with the
        # breadth now set run side by side, one that needs another waits until none runs
        self._ef = int(index.expansion_search)
        self._active = 0
        self._cond = threading.Condition()

    @contextmanager
    def _breadth(self, ef: int) -> Iterator[None]:
        with self._cond:
            while self._active and self._ef != ef:
                self._cond.wait()
            if self._ef != ef:
                self.index.expansion_search = ef
                self._ef = ef
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if not self._active:
                    self._cond.notify_all()

    @staticmethod
    def _new(dim: int, m: int, ef_construction: int) -> Any:
        from usearch.index import Index

        return Index(ndim=dim, metric="ip", dtype="f32", connectivity=m, expansion_add=ef_construction)

    @classmethod
    def build(cls, rows: np.ndarray, *, m: int = 16, ef_construction: int = 128) -> "HnswNeighbours":
        rows = np.ascontiguousarray(rows, dtype="float32")
        index = cls._new(int(rows.shape[1]), m, ef_construction)
        if len(rows):
            # one thread: a graph built by several depends on their timing
            index.add(np.arange(len(rows), dtype="uint64"), rows, threads=1)
        return cls(index, m=m, ef_construction=ef_construction)

    def __len__(self) -> int:
        return int(len(self.index))

    def search(self, Y: np.ndarray, k: int, *, search_k: int = -1, ef: int = 0, threads: int = 1) -> List[np.ndarray]:
        """Item positions of each row's k nearest, nearest first, each row searched alone by
        one of `threads` threads (usearch holds the GIL while it searches, so its own threads
        are the parallelism; `search_k` is annoy's, unused)."""
        n = len(Y)
        k = min(int(k), len(self))
        if n == 0 or k <= 0:
            return [np.zeros(0, dtype="int64") for _ in range(n)]
        with self._breadth(max(int(ef), k)):
            found = self.index.search(np.ascontiguousarray(Y, dtype="float32"), k, threads=max(1, int(threads)))
        if not hasattr(found, "counts"):  # one row: usearch returns its matches alone
            return [np.asarray(found.keys, dtype="int64")]
        keys = np.asarray(found.keys, dtype="int64").reshape(n, -1)
        counts = np.asarray(found.counts, dtype="int64").reshape(n)
        return [keys[i, : counts[i]] for i in range(n)]

    def cfg(self) -> Dict[str, Any]:
        return {"ann": self.kind, "hnsw_m": self.m, "hnsw_ef_construction": self.ef_construction}

    def save(self, path: Path) -> Dict[str, Any]:
        """Write the file; RETURNS what cfg.json records to check it on load (its size and
        sha256: usearch checks the header, but a file damaged past it crashes a search)."""
        from ..pipeline.manifest import sha256_file

        self.index.save(str(path))
        return {"hnsw_bytes": path.stat().st_size, "hnsw_sha256": sha256_file(path)}

    @classmethod
    def _restored(
        cls, source: Any, cfg: Dict[str, Any], dim: int, n_items: int, digest: Optional[str], restore: Any
    ) -> "HnswNeighbours":
        """`restore()`'s index, after its content's sha256 (`digest`) was checked against the
        one saved in cfg, and checked to hold n_items rows of dim."""
        from ..pipeline.manifest import FIX, PipelineFileError

        want = cfg.get("hnsw_sha256")
        if want is not None and digest != want:
            raise PipelineFileError(
                f"{source}: the HNSW index is not the one that was saved (its sha256 differs): {FIX}."
            )
        index = restore()
        if index is None or int(index.ndim) != dim or len(index) != n_items:
            got = "nothing" if index is None else f"{len(index)} vectors of {index.ndim} dims"
            raise PipelineFileError(
                f"{source}: the HNSW index holds {got}, not {n_items} of {dim}: the file is damaged; {FIX}."
            )
        return cls(index, m=cfg["hnsw_m"], ef_construction=cfg["hnsw_ef_construction"])

    @classmethod
    def load(cls, path: Path, cfg: Dict[str, Any], dim: int, n_items: int) -> "HnswNeighbours":
        from usearch.index import Index

        from ..pipeline.manifest import FIX, PipelineFileError, load_step, sha256_file

        size, want = path.stat().st_size, cfg.get("hnsw_bytes")
        if want is not None and size != want:
            raise PipelineFileError(f"{path} has {size} bytes but was saved with {want}: the file is damaged; {FIX}.")

        def restore() -> Any:
            with load_step(path, "the HNSW index"):
                # mapped, not read: processes that load the same pipeline share the pages
                return Index.restore(str(path), view=True)

        digest = sha256_file(path) if "hnsw_sha256" in cfg else None
        return cls._restored(path, cfg, dim, n_items, digest, restore)

    def to_bytes(self) -> bytes:
        return bytes(self.index.save())

    @staticmethod
    def bytes_cfg(data: bytes) -> Dict[str, Any]:
        """What the index's cfg records to check these bytes on load."""
        return {"hnsw_sha256": hashlib.sha256(data).hexdigest()}

    @classmethod
    def from_bytes(cls, data: bytes, cfg: Dict[str, Any], dim: int, n_items: int, where: str) -> "HnswNeighbours":
        from usearch.index import Index

        digest = hashlib.sha256(data).hexdigest() if "hnsw_sha256" in cfg else None
        return cls._restored(where, cfg, dim, n_items, digest, lambda: Index.restore(bytearray(data)))


Neighbours = Union[AnnoyNeighbours, HnswNeighbours]
KINDS = {c.kind: c for c in (HnswNeighbours, AnnoyNeighbours)}


def build_neighbours(
    rows: np.ndarray,
    kind: str = "hnsw",
    *,
    n_trees: int = 20,
    hnsw_m: int = 16,
    hnsw_ef_construction: int = 128,
    seed: int = 0,
) -> Neighbours:
    """The neighbour index of `kind` ("hnsw" or "annoy") over rows (unit rows, float32)."""
    if kind == "hnsw":
        return HnswNeighbours.build(rows, m=hnsw_m, ef_construction=hnsw_ef_construction)
    if kind == "annoy":
        return AnnoyNeighbours.build(rows, n_trees=n_trees, seed=seed)
    raise ValueError(f"Unknown ann {kind!r}: use one of {', '.join(ANN_KINDS)}.")


def kind_of(cfg: Dict[str, Any]) -> str:
    """The neighbour index kind a saved cfg names (saved before there was a choice: annoy)."""
    kind = str(cfg.get("ann", "annoy"))
    if kind not in KINDS:
        raise ValueError(f"Unknown ann {kind!r} in the index settings: use one of {', '.join(ANN_KINDS)}.")
    return kind


def search_rows(
    neighbours: Neighbours,
    Y: np.ndarray,
    k: int,
    *,
    search_k: int = -1,
    ef: int = 0,
    items: Optional[np.ndarray] = None,
    threads: int = 1,
) -> List[np.ndarray]:
    """Node indexes of each row's k nearest (items: the node of each item; None: item = node).
    A zero row (a span without word vectors) gets none."""
    out = [np.zeros(0, dtype="int64") for _ in range(len(Y))]
    rows = np.flatnonzero(np.any(Y != 0, axis=1)) if len(Y) else np.zeros(0, dtype="int64")
    if k <= 0 or not len(rows):
        return out
    for i, found in zip(rows, neighbours.search(Y[rows], k, search_k=search_k, ef=ef, threads=threads)):
        out[i] = found if items is None else items[found]
    return out


__all__: Sequence[str] = [
    "ANN_KINDS",
    "AnnoyNeighbours",
    "HnswNeighbours",
    "Neighbours",
    "build_neighbours",
    "kind_of",
    "search_rows",
]
