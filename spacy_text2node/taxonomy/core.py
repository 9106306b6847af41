"""The Taxonomy: concepts, synonyms and is-a edges, aligned to a stable node order."""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import srsly
from spacy import util

logger = logging.getLogger("spacy_text2node")

FORMAT_VERSION = 1


class TaxonomyError(ValueError):
    """A problem in taxonomy input, naming the file, the line and what to do."""


_REBUILD = "Rebuild it with `text2node taxonomy build SOURCE DIR` (or `Taxonomy.to_disk`)."


def _check_arrays(n, ids, labels, definitions, owners, type_idx, syn_text, types, counts, flat, xrefs) -> Optional[str]:
    """What is inconsistent in the arrays of a serialized taxonomy, or None."""
    if len(set(ids)) != n:
        return "duplicate concept ids"
    if len(labels) != n or len(definitions) != n or counts.size != n:
        return f"{n} ids but {len(labels)} labels, {len(definitions)} definitions and {counts.size} parent counts"
    if counts.size and (counts.min() < 0 or int(counts.sum()) != flat.size):
        return "the parent counts do not add up to the parent list"
    if flat.size and (flat.min() < 0 or flat.max() >= n):
        return "a parent index out of range"
    if not (owners.size == type_idx.size == len(syn_text)):
        return "synonym arrays of different lengths"
    if owners.size and (owners.min() < 0 or owners.max() >= n or type_idx.min() < 0 or type_idx.max() >= len(types)):
        return "a synonym index out of range"
    known = set(ids)
    if any(c not in known for c in xrefs.values()):
        return "an alternative id pointing to no concept"
    return None


@dataclass(frozen=True)
class Synonym:
    """A synonym of a concept.

    text (str): the synonym's text.
    type (str): the kind of synonym where the source says ("inclusion", "EXACT",
        "RELATED", "fsn", "synonym"...), else "synonym".
    """

    text: str
    type: str = "synonym"


@dataclass(frozen=True)
class Concept:
    """A read-only view of one node of a Taxonomy."""

    id: str
    label: str
    synonyms: Tuple[Synonym, ...]
    definition: Optional[str]
    parents: Tuple[str, ...]
    children: Tuple[str, ...]
    xrefs: Tuple[str, ...] = ()


@dataclass
class Problem:
    """One bad row or edge found while building a taxonomy."""

    source: str
    line: Optional[int]
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}, line {self.line}"
        return f"{where}: {self.message}"


@dataclass
class _Row:
    id: str
    label: str
    synonyms: List[Synonym] = field(default_factory=list)
    definition: Optional[str] = None
    parents: List[str] = field(default_factory=list)
    xrefs: List[str] = field(default_factory=list)
    line: Optional[int] = None


class TaxonomyBuilder:
    """Collects concepts and is-a edges from a source and checks them.

    Every problem names the source file and line. With `on_error="raise"` the first
    problem raises a `TaxonomyError`; with `on_error="skip"` the bad row or edge is
    left out and counted, and `build()` logs how many were skipped and the first few.

    source (str): the file or folder the rows come from, for messages.
    on_error (str): "raise" or "skip".
    name (str): the taxonomy's name.
    """

    def __init__(self, source: str, *, on_error: str = "raise", name: str = "taxonomy"):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}.")
        self.source = str(source)
        self.on_error = on_error
        self.name = name
        self.rows: Dict[str, _Row] = {}
        self.problems: List[Problem] = []
        self.dropped: Counter = Counter()

    def problem(self, line: Optional[int], message: str) -> None:
        """Report a problem: raise, or count it when skipping."""
        p = Problem(self.source, line, message)
        if self.on_error == "raise":
            raise TaxonomyError(
                f"{p} (to leave such rows out and report them, use --on-error skip; in Python on_error='skip')"
            )
        self.problems.append(p)

    def add(
        self,
        id: str,
        label: str,
        *,
        synonyms: Iterable[Union[str, Synonym, Tuple[str, str]]] = (),
        definition: Optional[str] = None,
        parents: Iterable[str] = (),
        xrefs: Iterable[str] = (),
        line: Optional[int] = None,
    ) -> bool:
        """Add a concept. Returns False if it was skipped as bad."""
        id = (id or "").strip()
        label = (label or "").strip()
        if not id:
            self.problem(line, "empty concept id")
            return False
        if not label:
            self.problem(line, f"concept {id!r} has an empty label")
            return False
        if id in self.rows:
            first = self.rows[id].line
            where = f" (first defined on line {first})" if first is not None else ""
            self.problem(line, f"duplicate concept id {id!r}{where}")
            return False
        syns: List[Synonym] = []
        seen = {label}
        for s in synonyms:
            if isinstance(s, Synonym):
                syn = s
            elif isinstance(s, tuple):
                syn = Synonym(str(s[0]).strip(), str(s[1]))
            else:
                syn = Synonym(str(s).strip())
            if syn.text and syn.text not in seen:
                seen.add(syn.text)
                syns.append(syn)
        pars: List[str] = []
        for p in parents:
            p = p.strip()
            if p and p not in pars:
                pars.append(p)
        self.rows[id] = _Row(
            id=id,
            label=label,
            synonyms=syns,
            definition=(definition or None),
            parents=pars,
            xrefs=[x.strip() for x in xrefs if x and x.strip()],
            line=line,
        )
        return True

    def build(self) -> "Taxonomy":
        """Check parents and cycles and return the Taxonomy."""
        if not self.rows:
            self.problem(None, "no concepts found: is this the right file and format?")
            raise TaxonomyError(f"{self.source}: no concepts found.")
        ids = list(self.rows)
        index = {cid: i for i, cid in enumerate(ids)}
        parents: List[List[int]] = []
        for cid in ids:
            row = self.rows[cid]
            ps = []
            for p in row.parents:
                j = index.get(p)
                if j is None:
                    self.problem(row.line, f"concept {cid!r} has parent {p!r}, which is not defined in this source")
                    continue
                if j == index[cid]:
                    self.problem(row.line, f"concept {cid!r} is its own parent")
                    continue
                ps.append(j)
            parents.append(ps)
        self._break_cycles(ids, parents)
        xref_map: Dict[str, str] = {}
        for cid in ids:
            for x in self.rows[cid].xrefs:
                if x not in index and x not in xref_map:
                    xref_map[x] = cid
        tax = Taxonomy._from_arrays(
            name=self.name,
            ids=ids,
            labels=[self.rows[c].label for c in ids],
            synonyms=[self.rows[c].synonyms for c in ids],
            definitions=[self.rows[c].definition for c in ids],
            parents=parents,
            xrefs=xref_map,
        )
        tax.meta["source"] = self.source
        tax.meta["skipped"] = len(self.problems)
        tax.meta["skipped_examples"] = [str(p) for p in self.problems[:10]]
        tax.meta.update({f"dropped_{k}": v for k, v in self.dropped.items()})
        if self.problems:
            logger.warning(
                "%s: skipped %d bad rows or edges; first: %s",
                self.source,
                len(self.problems),
                "; ".join(str(p) for p in self.problems[:5]),
            )
        return tax

    def _break_cycles(self, ids: List[str], parents: List[List[int]]) -> None:
        """Find is-a cycles (iterative DFS); raise naming the nodes, or drop an edge."""
        n = len(ids)
        state = np.zeros(n, dtype=np.int8)  # 0 new, 1 on stack, 2 done
        for start in range(n):
            if state[start]:
                continue
            stack = [(start, 0)]
            path = [start]
            state[start] = 1
            while stack:
                node, k = stack[-1]
                if k < len(parents[node]):
                    stack[-1] = (node, k + 1)
                    nxt = parents[node][k]
                    if state[nxt] == 0:
                        state[nxt] = 1
                        stack.append((nxt, 0))
                        path.append(nxt)
                    elif state[nxt] == 1:
                        cyc = path[path.index(nxt) :] + [nxt]
                        names = " -> ".join(ids[i] for i in cyc)
                        line = self.rows[ids[node]].line
                        self.problem(line, f"is-a cycle: {names}")
                        # skipping: drop the edge that closes the cycle
                        parents[node].remove(nxt)
                        stack[-1] = (node, k)
                else:
                    state[node] = 2
                    stack.pop()
                    path.pop()


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
            f"Concept {cid!r} is not in taxonomy {self.name!r} ({len(self)} concepts), neither as an id nor as an alternative id."
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
        i = self.index(cid)
        return [self._labels[i]] + [s.text for s in self._synonyms[i]]

    def iter_texts(self, *, definitions: bool = False) -> Iterator[Tuple[str, str]]:
        """Yield (concept_id, text) for every label and synonym (and definition)."""
        for i, cid in enumerate(self._ids):
            yield cid, self._labels[i]
            for s in self._synonyms[i]:
                yield cid, s.text
            if definitions and self._definitions[i]:
                yield cid, self._definitions[i]

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

    def _up_distances(self, i: int) -> Dict[int, int]:
        """Shortest number of is-a edges from node i up to each of its ancestors."""
        dist = {i: 0}
        queue = deque([i])
        while queue:
            n = queue.popleft()
            for p in self._parents[n]:
                if p not in dist:
                    dist[p] = dist[n] + 1
                    queue.append(p)
        return dist

    def ancestors(self, cid: str) -> List[str]:
        """All ancestors, nearest first."""
        d = self._up_distances(self.index(cid))
        return [self._ids[j] for j, k in sorted(d.items(), key=lambda x: (x[1], x[0])) if k > 0]

    def descendants(self, cid: str) -> List[str]:
        """All descendants, breadth first."""
        start = self.index(cid)
        seen = {start}
        out = []
        queue = deque([start])
        while queue:
            n = queue.popleft()
            for c in self._children[n]:
                if c not in seen:
                    seen.add(c)
                    out.append(c)
                    queue.append(c)
        return [self._ids[j] for j in out]

    def depths(self) -> np.ndarray:
        """Depth of every node in node order: edges on the shortest path to a root."""
        if self._depth is None:
            n = len(self._ids)
            depth = np.full(n, -1, dtype=np.int32)
            queue = deque(i for i in range(n) if not self._parents[i])
            for i in queue:
                depth[i] = 0
            while queue:
                i = queue.popleft()
                for c in self._children[i]:
                    if depth[c] < 0:
                        depth[c] = depth[i] + 1
                        queue.append(c)
            self._depth = depth
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
        if ia == ib:
            return 0
        da, db = self._up_distances(ia), self._up_distances(ib)
        common = [da[k] + db[k] for k in da.keys() & db.keys()]
        if common:
            return min(common)
        depths = self.depths()
        return int(depths[ia] + depths[ib] + 2)

    # graph views ------------------------------------------------------------------
    def csr(self, undirected: bool = True) -> Tuple[np.ndarray, np.ndarray]:
        """Adjacency as CSR arrays (indptr int64, indices int32) in node order.

        undirected (bool): neighbours are parents and children (the default, as
            node2vec uses); False gives child -> parent edges only.
        RETURNS (Tuple[np.ndarray, np.ndarray]): indptr of length n + 1, indices.
        """
        n = len(self._ids)
        lists = [(self._parents[i] + self._children[i]) if undirected else self._parents[i] for i in range(n)]
        counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=n)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        indices = np.fromiter((j for x in lists for j in sorted(x)), dtype=np.int32, count=int(indptr[-1]))
        return indptr, indices

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
        syn_owner, syn_text, syn_type = [], [], []
        for i, syns in enumerate(self._synonyms):
            for s in syns:
                syn_owner.append(i)
                syn_text.append(s.text)
                syn_type.append(s.type)
        types = sorted(set(syn_type))
        type_index = {t: k for k, t in enumerate(types)}
        par_counts = [len(p) for p in self._parents]
        return {
            "format": FORMAT_VERSION,
            "name": self.name,
            "meta": self.meta,
            "ids": self._ids,
            "labels": self._labels,
            "definitions": self._definitions,
            "syn_owner": np.asarray(syn_owner, dtype=np.int32),
            "syn_text": syn_text,
            "syn_types": types,
            "syn_type": np.asarray([type_index[t] for t in syn_type], dtype=np.int16),
            "parent_counts": np.asarray(par_counts, dtype=np.int32),
            "parent_indices": np.asarray([p for ps in self._parents for p in ps], dtype=np.int32),
            "xrefs": self._xrefs,
        }

    @classmethod
    def _from_dict(cls, msg: Dict[str, object], source: str = "taxonomy bytes") -> "Taxonomy":
        fmt = msg.get("format") if isinstance(msg, dict) else None
        if fmt != FORMAT_VERSION:
            raise TaxonomyError(
                f"{source}: not a spacy-text2node taxonomy of format {FORMAT_VERSION} (found {fmt!r}). {_REBUILD}"
            )
        try:
            ids = [str(c) for c in msg["ids"]]
            n = len(ids)
            types = [str(t) for t in msg["syn_types"]]
            owners = np.asarray(msg["syn_owner"], dtype=np.int64).ravel()
            type_idx = np.asarray(msg["syn_type"], dtype=np.int64).ravel()
            syn_text = [str(t) for t in msg["syn_text"]]
            counts = np.asarray(msg["parent_counts"], dtype=np.int64).ravel()
            flat = np.asarray(msg["parent_indices"], dtype=np.int64).ravel()
            labels = [str(x) for x in msg["labels"]]
            definitions = [None if d is None else str(d) for d in msg["definitions"]]
            xrefs = {str(k): str(v) for k, v in dict(msg["xrefs"]).items()}
            meta = dict(msg.get("meta") or {})
            name = str(msg["name"])
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            detail = f"no {e.args[0]!r} entry" if isinstance(e, KeyError) else str(e)
            raise TaxonomyError(f"{source}: the taxonomy data is damaged ({detail}). {_REBUILD}") from None
        problem = _check_arrays(n, ids, labels, definitions, owners, type_idx, syn_text, types, counts, flat, xrefs)
        if problem:
            raise TaxonomyError(f"{source}: the taxonomy data is damaged ({problem}). {_REBUILD}")
        synonyms: List[List[Synonym]] = [[] for _ in range(n)]
        for owner, text, t in zip(owners.tolist(), syn_text, type_idx.tolist()):
            synonyms[owner].append(Synonym(text, types[t]))
        flat_list = flat.tolist()
        parents, k = [], 0
        for c in counts.tolist():
            parents.append(flat_list[k : k + c])
            k += c
        tax = cls._from_arrays(
            name=name,
            ids=ids,
            labels=labels,
            synonyms=synonyms,
            definitions=definitions,
            parents=parents,
            xrefs=xrefs,
        )
        tax.meta = meta
        return tax

    def to_bytes(self) -> bytes:
        """Serialize to msgpack bytes (no pickle)."""
        return srsly.msgpack_dumps(self._to_dict())

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "taxonomy bytes") -> "Taxonomy":
        """Read a taxonomy from `to_bytes` output.

        data (bytes): the msgpack bytes.
        source (str): what the bytes are, for messages (e.g. the file they come from).
        RETURNS (Taxonomy): the taxonomy. Damaged data raises a TaxonomyError naming `source`.
        """
        try:
            msg = srsly.msgpack_loads(data)
        except Exception as e:  # msgpack raises ValueError subclasses, TypeError and its own errors
            raise TaxonomyError(
                f"{source}: not readable as a taxonomy (msgpack: {str(e) or type(e).__name__}); "
                f"the file is damaged or of another kind. {_REBUILD}"
            ) from None
        return cls._from_dict(msg, source=source)

    def to_disk(self, path: Union[str, Path], exclude: Iterable[str] = ()) -> None:
        """Write the taxonomy to a directory (`taxonomy.msgpack` + `meta.json`)."""
        path = util.ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "taxonomy.msgpack").write_bytes(self.to_bytes())
        srsly.write_json(
            path / "meta.json",
            {
                "name": self.name,
                "concepts": len(self),
                "format": FORMAT_VERSION,
                **{k: v for k, v in self.meta.items() if k != "skipped_examples"},
            },
        )

    @classmethod
    def from_disk(cls, path: Union[str, Path], exclude: Iterable[str] = ()) -> "Taxonomy":
        """Read a taxonomy written by `to_disk`."""
        path = util.ensure_path(path)
        if path.is_file():
            raise TaxonomyError(
                f"{path}: is a file; give the folder that holds it (a taxonomy directory holds taxonomy.msgpack "
                "and meta.json)."
            )
        f = path / "taxonomy.msgpack"
        if not f.exists():
            raise TaxonomyError(
                f"{path}: no taxonomy.msgpack here. Build one with `text2node taxonomy build SOURCE {path}`."
            )
        return cls.from_bytes(f.read_bytes(), source=str(f))

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
