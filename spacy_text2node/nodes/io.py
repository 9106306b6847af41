"""Node vectors: one float32 matrix aligned to a taxonomy's node order, saved without pickle.

A node-vector directory holds:
- `vectors.npy`: float32, n x dim (read with `allow_pickle=False`);
- `nodes.json`: the node ids, in row order;
- `cfg.json`: the parameters, the taxonomy's name, n and dim.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

import numpy as np
import srsly
from spacy.util import registry

from ..taxonomy import Taxonomy

FORMAT_VERSION = 1
VECTORS_FILE = "vectors.npy"
NODES_FILE = "nodes.json"
CFG_FILE = "cfg.json"


_RECOMPUTE = "The directory is damaged: recompute it with `text2node embed-nodes TAXONOMY_DIR OUT_DIR`."


def _read_json(path: Path) -> Any:
    """Read a JSON file; damaged JSON is a ValueError naming the file."""
    try:
        return srsly.read_json(path)
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e}). {_RECOMPUTE}") from None


class NodeVectors:
    """Node vectors aligned to a node order.

    ids (List[str]): the node ids, one per row.
    vectors (np.ndarray): float32 matrix, len(ids) x dim.
    cfg (Dict[str, Any]): how they were made (parameters, taxonomy name, timings).
    """

    def __init__(self, ids: Iterable[str], vectors: np.ndarray, cfg: Optional[Dict[str, Any]] = None):
        self.ids: List[str] = list(ids)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.ids):
            raise ValueError(
                f"NodeVectors: {len(self.ids):,} ids but a vector matrix of shape {self.vectors.shape}; "
                "pass one row per id."
            )
        self.cfg: Dict[str, Any] = dict(cfg or {})
        self._index: Optional[Dict[str, int]] = None

    def __len__(self) -> int:
        return len(self.ids)

    def __array__(self, dtype=None, copy=None):
        return self.vectors if dtype is None else self.vectors.astype(dtype)

    def __repr__(self) -> str:
        return f"<NodeVectors {self.shape[0]:,} x {self.shape[1]} for {self.cfg.get('taxonomy', '?')!r}>"

    @property
    def shape(self):
        return self.vectors.shape

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def index(self, cid: str) -> int:
        """The row of node `cid`."""
        if self._index is None:
            self._index = {c: i for i, c in enumerate(self.ids)}
        try:
            return self._index[cid]
        except KeyError:
            raise KeyError(f"Node {cid!r} has no vector here ({len(self.ids):,} nodes).") from None

    def __getitem__(self, cid: str) -> np.ndarray:
        return self.vectors[self.index(cid)]

    def check(self, taxonomy: Taxonomy, source: str = "node vectors") -> "NodeVectors":
        """Raise a ValueError unless the rows follow `taxonomy`'s node order."""
        tax_ids = taxonomy.ids
        if tax_ids != self.ids:
            if len(tax_ids) != len(self.ids):
                detail = f"{len(self.ids):,} vectors but {len(tax_ids):,} concepts"
            else:
                first = next(i for i, (a, b) in enumerate(zip(self.ids, tax_ids)) if a != b)
                detail = f"row {first} is {self.ids[first]!r} but node {first} of the taxonomy is {tax_ids[first]!r}"
            raise ValueError(
                f"{source}: the node order does not match taxonomy {taxonomy.name!r} ({detail}). "
                "Recompute the vectors for this taxonomy with `text2node embed-nodes`."
            )
        return self

    def to_disk(self, path: Union[str, Path], exclude: Iterable[str] = ()) -> None:
        """Write `vectors.npy`, `nodes.json` and `cfg.json` to a directory."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = {**self.cfg, "format": FORMAT_VERSION, "n": len(self.ids), "dim": self.dim}
        np.save(path / VECTORS_FILE, self.vectors, allow_pickle=False)
        srsly.write_json(path / NODES_FILE, self.ids)
        srsly.write_json(path / CFG_FILE, cfg)

    @classmethod
    def from_disk(
        cls,
        path: Union[str, Path],
        taxonomy: Optional[Taxonomy] = None,
        exclude: Iterable[str] = (),
    ) -> "NodeVectors":
        """Read a node-vector directory; with `taxonomy`, check the node order matches.

        path (Union[str, Path]): a directory written by `to_disk` or `text2node embed-nodes`.
        taxonomy (Optional[Taxonomy]): the taxonomy the vectors must be aligned to.
        RETURNS (NodeVectors): the loaded vectors.
        """
        path = Path(path)
        for name in (VECTORS_FILE, NODES_FILE):
            if not (path / name).exists():
                raise ValueError(
                    f"{path}: no {name} here, so this is not a node-vector directory. "
                    "Make one with `text2node embed-nodes TAXONOMY_DIR OUT_DIR`."
                )
        cfg = _read_json(path / CFG_FILE) if (path / CFG_FILE).exists() else {}
        if not isinstance(cfg, dict):
            raise ValueError(f"{path / CFG_FILE}: expected a JSON object. {_RECOMPUTE}")
        if cfg.get("format", FORMAT_VERSION) != FORMAT_VERSION:
            raise ValueError(
                f"{path / CFG_FILE}: node-vector format {cfg.get('format')!r} is not {FORMAT_VERSION}; "
                "recompute the vectors."
            )
        try:
            vectors = np.load(path / VECTORS_FILE, allow_pickle=False)
        except (ValueError, EOFError, OSError) as e:
            raise ValueError(f"{path / VECTORS_FILE}: not a plain .npy matrix ({e}). {_RECOMPUTE}") from None
        ids = _read_json(path / NODES_FILE)
        if not isinstance(ids, list) or not all(isinstance(c, str) for c in ids):
            raise ValueError(f"{path / NODES_FILE}: expected a JSON list of node ids (strings).")
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ValueError(
                f"{path}: {VECTORS_FILE} has shape {vectors.shape} but {NODES_FILE} lists {len(ids):,} nodes; "
                "the directory is damaged, recompute it."
            )
        if not np.issubdtype(vectors.dtype, np.number) or vectors.dtype.kind == "c":
            raise ValueError(f"{path / VECTORS_FILE}: holds {vectors.dtype} values, not real numbers. {_RECOMPUTE}")
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            raise ValueError(
                f"{path / VECTORS_FILE}: row {row} (node {ids[row]!r}) has values that are not finite "
                f"(NaN or infinite). {_RECOMPUTE}"
            )
        nv = cls(ids, vectors, cfg)
        if taxonomy is not None:
            nv.check(taxonomy, source=str(path))
        return nv


@registry.misc("spacy-text2node.NodeVectors.v1")
def make_node_vectors_loader(path: str, taxonomy: Optional[Taxonomy] = None) -> NodeVectors:
    """Registered loader: a node-vector directory (checked against `taxonomy` if given).

    path (str): the directory written by `text2node embed-nodes` or `NodeVectors.to_disk`.
    taxonomy (Optional[Taxonomy]): the taxonomy the rows must follow.
    RETURNS (NodeVectors): the vectors.
    """
    return NodeVectors.from_disk(path, taxonomy=taxonomy)
