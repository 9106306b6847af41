"""The Taxonomy: concepts, synonyms and is-a edges, aligned to a stable node order.

The graph queries live in `graph.py`, the on-disk form in `serialization.py` and the
checked construction from rows in `builder.py` (`TaxonomyBuilder`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import graph, serialization
from .concepts import Concept, Problem, Synonym, TaxonomyError
from .serialization import FORMAT_VERSION

__all__ = ["Concept", "FORMAT_VERSION", "Problem", "Synonym", "Taxonomy", "TaxonomyError"]


class Taxonomy:
    """Concepts with labels, synonyms and definitions, and is-a edges (a DAG).

    Nodes have a stable order (the order of the source); `index(id)` gives a node's
    position, and every array the package makes for nodes (CSR adjacency, node
    vectors) follows that order. Several parents are allowed (SNOMED CT, MeSH).

    Build one with a `Taxonomy.from_*` loader or with `TaxonomyBuilder`.
    """

    def __init__(self, name: str = "taxonomy"):
        self.name = name
        self.meta: Dict[str, object] = {}
        self._ids: List[str] = []
        self._index: Dict[str, int] = {}
        self._labels: List[str] = []
        self._synonyms: List[Tuple[Synonym, ...]] = []
        self._definitions: List[Optional[str]] = []
        self._parents: List[Tuple[int, ...]] = []
        self._children: List[Tuple[int, ...]] = []
        self._xrefs: Dict[str, str] = {}
        self._depth: Optional[np.ndarray] = None

    # construction -------------------------------------------------------------
    @classmethod
    def _from_arrays(
        cls,
        *,
        name: str,
        ids: List[str],
        labels: List[str],
        synonyms: Sequence[Sequence[Synonym]],
        definitions: List[Optional[str]],
        parents: Sequence[Sequence[int]],
        xrefs: Dict[str, str],
    ) -> "Taxonomy":
        tax = cls(name)
        tax._ids = list(ids)
        tax._index = {c: i for i, c in enumerate(tax._ids)}
        tax._labels = list(labels)
        tax._synonyms = [tuple(s) for s in synonyms]
        tax._definitions = list(definitions)
        tax._parents = [tuple(p) for p in parents]
        children: List[List[int]] = [[] for _ in ids]
        for i, ps in enumerate(tax._parents):
            for p in ps:
                children[p].append(i)
        tax._children = [tuple(c) for c in children]
        tax._xrefs = dict(xrefs)
        return tax

    # loaders (defined in loaders.py, attached here for discoverability) --------
    @classmethod
    def from_icd10cm(cls, **kwargs) -> "Taxonomy":
        """ICD-10-CM from the `simple-icd-10-cm` package (see `loaders.load_icd10cm`)."""
        from .loaders import load_icd10cm

        return load_icd10cm(**kwargs)

    @classmethod
    def from_obo(cls, path: Union[str, Path], **kwargs) -> "Taxonomy":
        """An OBO 1.2/1.4 ontology such as HPO or Disease Ontology."""
        from .loaders import load_obo

        return load_obo(path, **kwargs)

    @classmethod
    def from_snomed_rf2(cls, folder: Union[str, Path], **kwargs) -> "Taxonomy":
        """A SNOMED CT RF2 snapshot folder."""
        from .loaders import load_snomed_rf2

        return load_snomed_rf2(folder, **kwargs)

    @classmethod
    def from_ctd_medic(cls, path: Union[str, Path], **kwargs) -> "Taxonomy":
        """CTD MEDIC `CTD_diseases.tsv` (gzipped or not)."""
        from .loaders import load_ctd_medic

        return load_ctd_medic(path, **kwargs)

    @classmethod
    def from_csv(cls, path: Union[str, Path], **kwargs) -> "Taxonomy":
        """A CSV or TSV file with columns id, label, parents, synonyms[, definition]."""
        from .loaders import load_csv

        return load_csv(path, **kwargs)

    @classmethod
    def from_jsonl(cls, path: Union[str, Path], **kwargs) -> "Taxonomy":
        """A JSONL file, one concept per line."""
        from .loaders import load_jsonl

        return load_jsonl(path, **kwargs)

    # lookups --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, cid: object) -> bool:
        return isinstance(cid, str) and (cid in self._index or cid in self._xrefs)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __getitem__(self, cid: str) -> Concept:
        i = self.index(cid)
        return Concept(
            id=self._ids[i],
            label=self._labels[i],
            synonyms=self._synonyms[i],
            definition=self._definitions[i],
            parents=tuple(self._ids[p] for p in self._parents[i]),
            children=tuple(self._ids[c] for c in self._children[i]),
            xrefs=tuple(x for x, c in self._xrefs.items() if c == self._ids[i]),
        )

    def __repr__(self) -> str:
        return f"<Taxonomy {self.name!r}: {len(self)} concepts, {len(self.roots)} roots>"

    @property
    def ids(self) -> List[str]:
        """The concept ids in node order."""
        return list(self._ids)

    @property
    def labels(self) -> List[str]:
        """The preferred labels in node order."""
        return list(self._labels)

    @property
    def xrefs(self) -> Dict[str, str]:
        """Alternative ids (cross-references) mapped to the concept they stand for."""
        return dict(self._xrefs)

    def resolve(self, cid: str) -> str:
        """The canonical id for `cid`, which may be an alternative id."""
        if cid in self._index:
            return cid
        if cid in self._xrefs:
            return self._xrefs[cid]
        raise KeyError(
            f"Concept {cid!r} is not in taxonomy {self.name!r} ({len(self)} concepts), "
            "neither as an id nor as an alternative id."
        )

    def index(self, cid: str) -> int:
        """The node position of `cid` (alternative ids resolve)."""
        i = self._index.get(cid)
        if i is None:
            i = self._index[self.resolve(cid)]
        return i

    def id_at(self, i: int) -> str:
        """The concept id at node position `i`."""
        return self._ids[i]

    def label(self, cid: str) -> str:
        return self._labels[self.index(cid)]

    def synonyms(self, cid: str) -> List[Synonym]:
        return list(self._synonyms[self.index(cid)])

    def definition(self, cid: str) -> Optional[str]:
        return self._definitions[self.index(cid)]

    def texts(self, cid: str) -> List[str]:
        """The label followed by every synonym text."""
        return self._texts_at(self.index(cid))

    def _texts_at(self, i: int) -> List[str]:
        return [self._labels[i]] + [s.text for s in self._synonyms[i]]

    def strings(self) -> Tuple[List[str], np.ndarray]:
        """Every label and synonym, grouped by concept in taxonomy order, and the index of
        each one's concept (int32): the strings a linker's lexical channel indexes."""
        texts: List[str] = []
        node: List[int] = []
        for i in range(len(self._ids)):
            for t in self._texts_at(i):
                texts.append(t)
                node.append(i)
        return texts, np.asarray(node, dtype="int32")

    def iter_texts(self, *, definitions: bool = False) -> Iterator[Tuple[str, str]]:
        """Yield (concept_id, text) for every label and synonym (and definition)."""
        for i, cid in enumerate(self._ids):
            yield cid, self._labels[i]
            for s in self._synonyms[i]:
                yield cid, s.text
            definition = self._definitions[i]
            if definitions and definition:
                yield cid, definition

    # hierarchy ------------------------------------------------------------------
    def parents(self, cid: str) -> List[str]:
        return [self._ids[p] for p in self._parents[self.index(cid)]]

    def children(self, cid: str) -> List[str]:
        return [self._ids[c] for c in self._children[self.index(cid)]]

    def parent_indices(self, i: int) -> Tuple[int, ...]:
        return self._parents[i]

    def child_indices(self, i: int) -> Tuple[int, ...]:
        return self._children[i]

    @property
    def roots(self) -> List[str]:
        """Concepts without parents."""
        return [self._ids[i] for i, p in enumerate(self._parents) if not p]

    @property
    def leaves(self) -> List[str]:
        """Concepts without children."""
        return [self._ids[i] for i, c in enumerate(self._children) if not c]

    def is_leaf(self, cid: str) -> bool:
        return not self._children[self.index(cid)]

    def ancestors(self, cid: str) -> List[str]:
        """All ancestors, nearest first."""
        return [self._ids[j] for j in graph.ancestors(self._parents, self.index(cid))]

    def descendants(self, cid: str) -> List[str]:
        """All descendants, breadth first."""
        return [self._ids[j] for j in graph.descendants(self._children, self.index(cid))]

    def depths(self) -> np.ndarray:
        """Depth of every node in node order: edges on the shortest path to a root."""
        if self._depth is None:
            self._depth = graph.depths(self._parents, self._children)
        return self._depth

    def depth(self, cid: str) -> int:
        """Edges on the shortest path from `cid` up to a root (roots have depth 0)."""
        return int(self.depths()[self.index(cid)])

    def distance(self, a: str, b: str) -> int:
        """Edges from `a` to `b` through their nearest common ancestor.

        The common ancestor c minimising up(a, c) + up(b, c) is used, where up() is
        the shortest is-a path. Two concepts under different roots have no common
        ancestor; they are joined through a virtual super-root above all roots, so
        the distance is depth(a) + depth(b) + 2.
        """
        ia, ib = self.index(a), self.index(b)
        d = graph.common_ancestor_distance(self._parents, ia, ib)
        if d is not None:
            return d
        depths = self.depths()
        return int(depths[ia] + depths[ib] + 2)

    # graph views ------------------------------------------------------------------
    def csr(self, undirected: bool = True) -> Tuple[np.ndarray, np.ndarray]:
        """Adjacency as CSR arrays (indptr int64, indices int32) in node order.

        undirected (bool): neighbours are parents and children (the default, as
            node2vec uses); False gives child -> parent edges only.
        RETURNS (Tuple[np.ndarray, np.ndarray]): indptr of length n + 1, indices.
        """
        return graph.csr(self._parents, self._children, undirected)

    def to_networkx(self):
        """A networkx DiGraph with edges parent -> child and node attributes."""
        import networkx as nx

        g = nx.DiGraph(name=self.name)
        for i, cid in enumerate(self._ids):
            g.add_node(cid, label=self._labels[i], synonyms=[s.text for s in self._synonyms[i]])
        for i, ps in enumerate(self._parents):
            for p in ps:
                g.add_edge(self._ids[p], self._ids[i])
        return g

    def subtree(self, roots: Iterable[str], name: Optional[str] = None) -> "Taxonomy":
        """The taxonomy restricted to `roots` and their descendants (and edges among them)."""
        keep = set()
        for r in roots:
            keep.add(self.index(r))
            keep.update(self._index[d] for d in self.descendants(r))
        order = sorted(keep)
        new_index = {old: new for new, old in enumerate(order)}
        ids = [self._ids[i] for i in order]
        xrefs = {x: c for x, c in self._xrefs.items() if self._index[c] in keep}
        return Taxonomy._from_arrays(
            name=name or f"{self.name}-subtree",
            ids=ids,
            labels=[self._labels[i] for i in order],
            synonyms=[self._synonyms[i] for i in order],
            definitions=[self._definitions[i] for i in order],
            parents=[[new_index[p] for p in self._parents[i] if p in keep] for i in order],
            xrefs=xrefs,
        )

    def info(self, n_samples: int = 5, seed: int = 0) -> Dict[str, object]:
        """Counts, depth histogram, roots and sample nodes."""
        depths = self.depths()
        hist = Counter(int(d) for d in depths)
        rng = np.random.default_rng(seed)
        sample = rng.choice(len(self), size=min(n_samples, len(self)), replace=False)
        n_edges = sum(len(p) for p in self._parents)
        return {
            "name": self.name,
            "concepts": len(self),
            "is_a_edges": n_edges,
            "multi_parent_concepts": sum(1 for p in self._parents if len(p) > 1),
            "roots": self.roots,
            "leaves": sum(1 for c in self._children if not c),
            "synonyms": sum(len(s) for s in self._synonyms),
            "definitions": sum(1 for d in self._definitions if d),
            "alternative_ids": len(self._xrefs),
            "max_depth": int(depths.max()) if len(depths) else 0,
            "depth_histogram": {d: hist[d] for d in sorted(hist)},
            "samples": [
                {"id": self._ids[i], "label": self._labels[i], "parents": self.parents(self._ids[i])}
                for i in sorted(int(x) for x in sample)
            ],
            "meta": dict(self.meta),
        }

    # serialization ----------------------------------------------------------------
    def _to_dict(self) -> Dict[str, object]:
        return serialization.pack(
            name=self.name,
            meta=self.meta,
            ids=self._ids,
            labels=self._labels,
            synonyms=self._synonyms,
            definitions=self._definitions,
            parents=self._parents,
            xrefs=self._xrefs,
        )

    @classmethod
    def _from_dict(cls, msg: object, source: str = "taxonomy bytes") -> "Taxonomy":
        arrays, meta = serialization.unpack(msg, source)
        tax = cls._from_arrays(**arrays)
        tax.meta = meta
        return tax

    def to_bytes(self) -> bytes:
        """Serialize to msgpack bytes (no pickle)."""
        return serialization.dumps(self._to_dict())

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "taxonomy bytes") -> "Taxonomy":
        """Read a taxonomy from `to_bytes` output.

        data (bytes): the msgpack bytes.
        source (str): what the bytes are, for messages (e.g. the file they come from).
        RETURNS (Taxonomy): the taxonomy. Damaged data raises a TaxonomyError naming `source`.
        """
        msg = serialization.loads(data, source)
        return cls._from_dict(msg, source=source)

    def to_disk(self, path: Union[str, Path], exclude: Iterable[str] = ()) -> None:
        """Write the taxonomy to a directory (`taxonomy.msgpack` + `meta.json`)."""
        serialization.write_dir(path, self.to_bytes(), name=self.name, concepts=len(self), meta=self.meta)

    @classmethod
    def from_disk(cls, path: Union[str, Path], exclude: Iterable[str] = ()) -> "Taxonomy":
        """Read a taxonomy written by `to_disk`."""
        data, source = serialization.read_dir(path)
        return cls.from_bytes(data, source=source)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Taxonomy):
            return NotImplemented
        return (
            self.name == other.name
            and self._ids == other._ids
            and self._labels == other._labels
            and self._synonyms == other._synonyms
            and self._definitions == other._definitions
            and self._parents == other._parents
            and self._xrefs == other._xrefs
        )


def __getattr__(name: str):
    # TaxonomyBuilder moved to builder.py (which imports this module); keep `core.TaxonomyBuilder` working
    if name == "TaxonomyBuilder":
        from .builder import TaxonomyBuilder

        return TaxonomyBuilder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
