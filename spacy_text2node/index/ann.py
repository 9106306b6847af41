"""`NodeIndex`: a nearest-neighbour index over node space (`neighbours`: HNSW or annoy) and
the lexical channel; `search` takes the
union of both candidate lists and ranks them by
`fusion_weight * cos_node + (1 - fusion_weight) * cos_lexical`, or by the reranker once
calibrated. Everything serializes to `.npy`/JSON/msgpack and the neighbour index's own file
format; no pickle."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, Tuple, Union, cast

import numpy as np
import srsly
from spacy import util

from .dictionary import FILE as DICTIONARY_FILE
from .dictionary import PhraseDictionary
from .features import PairFeatures
from .kernels import _top_pairs
from .lexical import LexicalIndex
from .neighbours import ANN_KINDS, KINDS, AnnoyNeighbours, Neighbours, build_neighbours, kind_of, search_rows
from .rerank import Reranker
from .serialize import npy_bytes, npy_load, optional, remove, replace_file, save_npy
from .text import l2_normalize

# added to the reranker score of a candidate with a string equal to the query (normalised)
EXACT_BONUS = 100.0
# (query, node) pairs whose node-space cosines are computed at once
PAIR_BLOCK = 2048


def ranked_top_k(
    qi: np.ndarray, ni: np.ndarray, score: np.ndarray, n_queries: int, k: int, *, softmax: bool
) -> List[List[Tuple[int, float]]]:
    """The k best (node, shown score) of each query from its pairs (queries contiguous and
    in order in qi): ordered by score, ties by node index. The score shown is the score
    itself, or with softmax its probability among all of the query's pairs. Each query's
    k best are picked off its pairs (`_top_pairs`) instead of sorting them all."""
    out: List[List[Tuple[int, float]]] = [[] for _ in range(n_queries)]
    if len(ni) == 0 or k <= 0:
        return out
    counts = np.bincount(qi, minlength=n_queries)
    bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    score = np.asarray(score)
    sel, taken = _top_pairs(bounds, np.asarray(ni, dtype=np.int64), score, int(k))
    if softmax:
        nonempty = counts > 0
        # the first pick of each query holds its largest score
        firsts = np.concatenate([[0], np.cumsum(taken)[:-1]])[nonempty]
        zmax = np.repeat(score[sel[firsts]], counts[nonempty])
        p = np.exp(score - zmax)
        total = np.add.reduceat(p, bounds[:-1][nonempty])
        shown = (p / np.repeat(total, counts[nonempty]))[sel]
    else:
        shown = score[sel]
    pairs = list(zip(ni[sel].tolist(), shown.tolist()))
    a = 0
    for i, c in enumerate(taken.tolist()):
        if c:
            out[i] = pairs[a : a + c]
            a += c
    return out


class NodeIndex:
    """A nearest-neighbour index over node space fused with the lexical channel.

    space (np.ndarray): (n_nodes, d) unit rows.
    lexical (LexicalIndex): the lexical channel.
    ann (str): the neighbour index: "hnsw" (usearch) or "annoy" (see `neighbours`).
    n_trees (int): annoy trees.
    hnsw_m (int), hnsw_ef_construction (int): the HNSW graph's links per node and build breadth.
    seed (int): the neighbour index's seed.
    neighbours (Optional[Neighbours]): an index already built over these rows (loading).
    strings (Optional[np.ndarray]), strings_scale (Optional[np.ndarray]): the lexical
        index's strings as the linker's mapper maps them, unit rows as int8 with a float32
        scale each (`quantize_rows`; the reranker's feature "siamese"), or None.
    """

    def __init__(
        self,
        space: np.ndarray,
        lexical: LexicalIndex,
        *,
        ann: str = "hnsw",
        n_trees: int = 20,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 128,
        seed: int = 0,
        neighbours: Optional[Neighbours] = None,
        reranker: Optional[Reranker] = None,
        is_leaf: Optional[np.ndarray] = None,
        memory: Optional[LexicalIndex] = None,
        ann_items: Optional[np.ndarray] = None,
        dictionary: Optional[PhraseDictionary] = None,
        strings: Optional[np.ndarray] = None,
        strings_scale: Optional[np.ndarray] = None,
    ):
        self.space = np.ascontiguousarray(space, dtype="float32")
        # the nodes the neighbour index holds, in item order (None: every node); e.g. only the
        # leaves when only they can be linked to: a smaller index, and no over-fetching
        self.ann_items = None if ann_items is None else np.asarray(ann_items, dtype="int64")
        # training phrases as extra lexical strings of their concepts (feature "memory")
        self.memory = memory
        # training phrases that always named one concept: linked to it first (`dictionary`)
        self.dictionary = dictionary
        self.reranker = reranker
        self.is_leaf = None if is_leaf is None else np.asarray(is_leaf, dtype=bool)
        self.lexical = lexical
        self.strings = strings
        self.strings_scale = strings_scale
        self.seed = int(seed)
        if neighbours is None:
            rows = self.space if self.ann_items is None else self.space[self.ann_items]
            neighbours = build_neighbours(
                rows, ann, n_trees=n_trees, hnsw_m=hnsw_m, hnsw_ef_construction=hnsw_ef_construction, seed=seed
            )
        self.neighbours: Neighbours = neighbours
        if dictionary is not None and any(not 0 <= n < len(self) for n, _ in dictionary.entries.values()):
            raise ValueError(
                f"the phrase dictionary names a concept outside this index ({len(self)} concepts): "
                "it was built for another taxonomy; re-initialize the linker with its dictionary pairs."
            )
        n_words, n_weights = lexical.word_matrix.shape[1], 0 if reranker is None else len(reranker.label_words)
        if n_weights not in (0, n_words):
            raise ValueError(
                f"the reranker has word weights for {n_weights} words but the lexical index has {n_words}: it was "
                "fitted with another lexical index; recalibrate the linker (text2node calibrate-linker)."
            )
        n_strings = lexical.matrix.shape[0]
        shapes = tuple(None if a is None else a.shape for a in (strings, strings_scale))
        if shapes != (None, None) and shapes != ((n_strings, self.dim), (n_strings,)):
            raise ValueError(
                f"the index's mapped strings and their scales have shapes {shapes}, not ({n_strings}, {self.dim}) "
                f"and ({n_strings},) (a row per string of its lexical index): re-save the pipeline after "
                "linker.map_strings()."
            )

    @property
    def ann_kind(self) -> str:
        return self.neighbours.kind

    @property
    def n_trees(self) -> int:
        """annoy's trees (0 for an HNSW index)."""
        return self.neighbours.n_trees if isinstance(self.neighbours, AnnoyNeighbours) else 0

    @property
    def dim(self) -> int:
        return int(self.space.shape[1])

    def __len__(self) -> int:
        return int(self.space.shape[0])

    def ann(self, y: np.ndarray, k: int, search_k: int = -1, ef: int = 0) -> List[int]:
        """Nearest nodes of one vector (empty for a zero vector)."""
        return self.ann_batch(np.asarray(y, dtype="float32")[None, :], k, search_k=search_k, ef=ef)[0].tolist()

    def ann_batch(
        self, Y: np.ndarray, k: int, *, search_k: int = -1, ef: int = 0, threads: int = 1
    ) -> List[np.ndarray]:
        """Nearest nodes of each row (int64; none for a zero row), nearest first."""
        return search_rows(self.neighbours, Y, k, search_k=search_k, ef=ef, items=self.ann_items, threads=threads)

    def node_candidates(
        self,
        Y: np.ndarray,
        *,
        ann_candidates: int = 50,
        fusion_weight: float = 0.5,
        search_k: int = -1,
        ef: int = 0,
        allowed: Optional[np.ndarray] = None,
        threads: int = 1,
    ) -> List[np.ndarray]:
        """The node-space candidates of each mapper output (see `pair_table`); `threads`
        threads of the HNSW index search the rows (annoy searches on the caller's thread)."""
        if not (fusion_weight > 0.0 or self.reranker is not None):
            return [np.zeros(0, dtype="int64") for _ in range(len(Y))]
        # the neighbour index holds only the candidates, or is asked for more when some are filtered out
        ann_over = 1 if self.ann_items is not None or allowed is None else 2
        return self.ann_batch(l2_normalize(Y), ann_candidates * ann_over, search_k=search_k, ef=ef, threads=threads)

    def node_neighbours(self, node: int, k: int) -> List[int]:
        """Nearest nodes of a node (itself excluded)."""
        return [j for j in self.ann(self.space[node], k + 1) if j != node][:k]

    def pair_table(
        self,
        Y: np.ndarray,
        texts: Sequence[str],
        *,
        ann_candidates: int = 50,
        lexical_candidates: int = 20,
        fusion_weight: float = 0.5,
        search_k: int = -1,
        ef: int = 0,
        allowed: Optional[np.ndarray] = None,
        leave_out_exact: bool = False,
        node_found: Optional[List[np.ndarray]] = None,
    ) -> PairFeatures:
        """Candidates of each query and their features (see `search`).

        allowed (Optional[np.ndarray]): bool per node; only these nodes are candidates
            (e.g. the leaves, ICD-10-CM's billable codes).
        leave_out_exact (bool): calibration mode: the query's own string (identical text)
            is neither an exact-match candidate nor counted in the lexical features.
        node_found (Optional[List[np.ndarray]]): the queries' `node_candidates`, when the
            caller searched node space already (None: searched here).
        RETURNS (PairFeatures): the pairs (queries contiguous) and their features.
        """
        b = len(texts)
        if Y.shape[0] != b:
            raise ValueError(f"search got {Y.shape[0]} vectors but {b} texts.")
        Yn = l2_normalize(Y)
        lexical = self.lexical
        q = lexical.transform(texts)
        qw, q_idf = lexical.word_transform(texts)
        # the lexical channels rank only the allowed nodes' strings
        use_lex = fusion_weight < 1.0 or self.reranker is not None
        lex = lexical.retrieve(q, lexical_candidates, allowed) if use_lex else [np.zeros(0, dtype="int64")] * b
        exact = [np.zeros(0, dtype="int64")] * b if leave_out_exact else lexical.exact_matches(texts)
        memory = self.memory
        if memory is not None:
            qm = memory.transform(texts)
            mem = memory.retrieve(qm, lexical_candidates, allowed)
        else:
            mem = [np.zeros(0, dtype="int64")] * b
        if node_found is None:
            node_found = self.node_candidates(
                Y, ann_candidates=ann_candidates, fusion_weight=fusion_weight, search_k=search_k, ef=ef, allowed=allowed
            )
        elif len(node_found) != b:
            raise ValueError(f"search got node candidates for {len(node_found)} queries but {b} texts.")
        parts = [lex, exact, mem, node_found]
        # one sort for the whole batch: (query, node) keys, unique, queries contiguous
        n_nodes = np.int64(len(self))
        keys = np.concatenate(
            [
                np.repeat(np.arange(b, dtype="int64"), [len(c) for c in part]) * n_nodes + np.concatenate(part)
                for part in parts
                if len(part) and sum(len(c) for c in part)
            ]
            or [np.zeros(0, dtype="int64")]
        )
        keys = np.unique(keys)
        qi, ni = keys // n_nodes, keys % n_nodes
        if allowed is not None:
            m = allowed[ni]
            qi, ni = qi[m], ni[m]
        scale = self.strings_scale
        dense = None if self.strings is None or scale is None else (self.strings, scale, Yn)
        lex_feats = lexical.pair_features(q, qw, q_idf, qi, ni, leave_out_exact=leave_out_exact, dense=dense)
        node = self._node_cosines(Yn, qi, ni)
        ex_keys = np.concatenate(
            [i * n_nodes + np.asarray(e, dtype="int64") for i, e in enumerate(exact) if len(e)]
            or [np.zeros(0, dtype="int64")]
        )
        return PairFeatures(
            **vars(lex_feats),
            qi=qi,
            ni=ni,
            bounds=np.searchsorted(qi, np.arange(b + 1)).astype("int64"),
            exact=np.isin(qi * n_nodes + ni, ex_keys) if len(ex_keys) else np.zeros(len(ni), dtype=bool),
            fused=(fusion_weight * node + (1.0 - fusion_weight) * lex_feats.lexical).astype("float32"),
            node=node,
            leaf=self.is_leaf[ni].astype("float32") if self.is_leaf is not None else np.zeros(len(ni), dtype="float32"),
            memory=memory.pair_scores(qm, qi, ni) if memory is not None else np.zeros(len(ni), dtype="float32"),
        )

    def _node_cosines(self, Yn: np.ndarray, qi: np.ndarray, ni: np.ndarray) -> np.ndarray:
        """Yn[qi] . space[ni] per pair, PAIR_BLOCK pairs at a time: gathering the rows of a
        whole chunk's pairs at once costs tens of MB per search thread."""
        out = np.zeros(len(ni), dtype="float32")
        for a in range(0, len(ni), PAIR_BLOCK):
            b = min(a + PAIR_BLOCK, len(ni))
            out[a:b] = np.einsum("ij,ij->i", Yn[qi[a:b]], self.space[ni[a:b]])
        return out

    def search(
        self,
        Y: np.ndarray,
        texts: Sequence[str],
        *,
        k: int = 5,
        ann_candidates: int = 50,
        lexical_candidates: int = 20,
        fusion_weight: float = 0.5,
        search_k: int = -1,
        ef: int = 0,
        allowed: Optional[np.ndarray] = None,
        threshold: Optional[float] = None,
        node_found: Optional[List[np.ndarray]] = None,
    ) -> List[List[Tuple[int, float]]]:
        """Ranked (node index, score) per query.

        Without a reranker the score is `fusion_weight * cos_node + (1 - fusion_weight) *
        cos_lexical`. With a fitted reranker (`calibrate`), candidates are ordered by its
        score (exact matches of a normalised string first) and the score shown is the
        reranker's probability among the query's candidates.

        Y (np.ndarray): (b, d) mapper outputs (any norm; zero rows use only the lexical channel).
        texts (Sequence[str]): the query strings (for the lexical channel).
        k (int): results per query.
        ann_candidates (int): candidates from the neighbour index.
        lexical_candidates (int): candidates from the lexical inverted index.
        fusion_weight (float): a in the fixed fusion above.
        search_k (int): annoy's search_k (-1: annoy's default).
        ef (int): HNSW's search breadth (at least ann_candidates).
        allowed (Optional[np.ndarray]): bool per node: only these can be returned.
        threshold (Optional[float]): candidates whose similarity (the larger of the fixed
            fusion score and the lexical cosine) is below this are dropped; a query left
            with none is NIL.
        node_found (Optional[List[np.ndarray]]): the queries' `node_candidates` when already
            searched (None: searched here).
        RETURNS (List[List[Tuple[int, float]]]): best first; ties broken by node index.
        """
        b = len(texts)
        if b == 0:
            if Y.shape[0] != 0:
                raise ValueError(f"search got {Y.shape[0]} vectors but 0 texts.")
            return []
        t = self.pair_table(
            Y,
            texts,
            ann_candidates=ann_candidates,
            lexical_candidates=lexical_candidates,
            fusion_weight=fusion_weight,
            search_k=search_k,
            ef=ef,
            allowed=allowed,
            node_found=node_found,
        )
        if self.reranker is not None:
            order_score = self.reranker.score(t) + EXACT_BONUS * t.exact
        else:
            order_score = t.fused
        # the evidence a candidate needs: its best similarity, lexical or fused (in [0, 1])
        if threshold is None:
            return ranked_top_k(t.qi, t.ni, order_score, b, k, softmax=self.reranker is not None)
        keep = np.maximum(t.fused, t.lexical) >= threshold
        return ranked_top_k(t.qi[keep], t.ni[keep], order_score[keep], b, k, softmax=self.reranker is not None)

    # serialization -------------------------------------------------------------------
    # bytes: a msgpack map of these parts ("cfg" and the lexical indexes' and reranker's
    # parts are maps inside it; the neighbour index is "annoy" or "hnsw"); on disk: a file
    # or folder each (see `to_disk`)
    PARTS = (
        "cfg",
        "space",
        "annoy",
        "hnsw",
        "lexical",
        "reranker",
        "is_leaf",
        "memory",
        "ann_items",
        "dictionary",
        "strings",
        "strings_scale",
    )

    def _cfg(self) -> Dict[str, Any]:
        return {**self.neighbours.cfg(), "seed": self.seed, "dim": self.dim}

    def to_bytes(self) -> bytes:
        """The index as bytes (`PARTS`; the optional ones only when present)."""
        ann_bytes = self.neighbours.to_bytes()
        getters: Dict[str, Callable[[], Any]] = {
            "cfg": lambda: {**self._cfg(), **self.neighbours.bytes_cfg(ann_bytes)},
            "space": partial(npy_bytes, self.space),
            self.ann_kind: lambda: ann_bytes,
            "lexical": self.lexical.to_dict,
        }
        if self.reranker is not None:
            getters["reranker"] = self.reranker.to_dict
        if self.is_leaf is not None:
            getters["is_leaf"] = partial(npy_bytes, self.is_leaf)
        if self.memory is not None:
            getters["memory"] = self.memory.to_dict
        if self.ann_items is not None:
            getters["ann_items"] = partial(npy_bytes, self.ann_items)
        if self.dictionary is not None:
            getters["dictionary"] = self.dictionary.to_bytes
        if self.strings is not None and self.strings_scale is not None:
            getters["strings"] = partial(npy_bytes, self.strings)
            getters["strings_scale"] = partial(npy_bytes, self.strings_scale)
        return util.to_bytes(getters, exclude=[])

    @classmethod
    def from_bytes(cls, data: bytes) -> "NodeIndex":
        """The index `to_bytes` gave; damaged bytes raise a ValueError naming the part."""
        from ..pipeline.manifest import BYTES_FIX, load_step

        where = "node index (serialized bytes), part '{}'"

        def step(part: str) -> ContextManager[None]:
            return load_step(where.format(part), f"the {part}", fix=BYTES_FIX)

        msg: Dict[str, Any] = {}
        with step("index"):
            util.from_bytes(data, {part: partial(msg.__setitem__, part) for part in cls.PARTS}, exclude=[])
            cfg = msg["cfg"]
            kind = kind_of(cfg)
            ann_bytes = msg[kind]
        with step("space"):
            space = npy_load(msg["space"])
        ann_items = npy_load(msg["ann_items"]) if "ann_items" in msg else None
        n_items = len(space) if ann_items is None else len(ann_items)
        with step(kind):
            neighbours = KINDS[kind].from_bytes(ann_bytes, cfg, int(cfg["dim"]), n_items, where.format(kind))
        with step("reranker"):
            reranker = Reranker.from_dict(msg["reranker"]) if "reranker" in msg else None
        is_leaf = npy_load(msg["is_leaf"]) if "is_leaf" in msg else None
        with step("lexical index"):
            memory = LexicalIndex.from_dict(msg["memory"]) if "memory" in msg else None
            lexical = LexicalIndex.from_dict(msg["lexical"])
        with step("dictionary"):
            dictionary = PhraseDictionary.from_bytes(msg["dictionary"]) if "dictionary" in msg else None
        with step("strings"):
            strings = npy_load(msg["strings"]) if "strings" in msg else None
            strings_scale = npy_load(msg["strings_scale"]) if "strings_scale" in msg else None
        return cls(
            space,
            lexical,
            seed=cfg["seed"],
            neighbours=neighbours,
            reranker=reranker,
            is_leaf=is_leaf,
            memory=memory,
            ann_items=ann_items,
            dictionary=dictionary,
            strings=strings,
            strings_scale=strings_scale,
        )

    def to_disk(self, path: Union[str, Path]) -> None:
        """The index as files in the folder `path`: space.npy, the neighbour index's own file
        (hnsw.usearch or annoy.ann), cfg.json, lexical/ and, where present, is_leaf.npy,
        ann_items.npy, strings.npy and strings_scale.npy, memory/, reranker/ and
        dictionary.json (an absent one's file or folder from an earlier save is removed)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        checks: Dict[str, Any] = {}

        def npy(arr: Optional[np.ndarray]) -> Callable[[Path], None]:
            def write(p: Path) -> None:
                assert arr is not None
                save_npy(p, arr)

            return optional(arr, write)

        def folder(part: Union[LexicalIndex, Reranker, None]) -> Callable[[Path], None]:
            def write(p: Path) -> None:
                remove(p)  # no file of an earlier save stays
                assert part is not None
                part.to_disk(p)

            return optional(part, write)

        def ann(kind: str) -> Callable[[Path], None]:
            def write(p: Path) -> None:
                # a new file renamed over the old: a loaded pipeline may map the old one
                replace_file(p, lambda tmp: checks.update(self.neighbours.save(tmp)))

            return optional(self if kind == self.ann_kind else None, write)

        def cfg(p: Path) -> None:
            srsly.write_json(p, {**self._cfg(), **checks})

        writers: Dict[str, Callable[[Path], None]] = {
            "space.npy": lambda p: save_npy(p, self.space),
            **{KINDS[kind].FILE: ann(kind) for kind in ANN_KINDS},
            "cfg.json": cfg,
            "lexical": self.lexical.to_disk,
            "is_leaf.npy": npy(self.is_leaf),
            "ann_items.npy": npy(self.ann_items),
            "strings.npy": npy(self.strings),
            "strings_scale.npy": npy(self.strings_scale),
            "memory": folder(self.memory),
            "reranker": folder(self.reranker),
            DICTIONARY_FILE: optional(self.dictionary, lambda p: cast(PhraseDictionary, self.dictionary).to_disk(p)),
        }
        util.to_disk(path, writers, exclude=[])

    @classmethod
    def from_disk(cls, path: Union[str, Path]) -> "NodeIndex":
        """The index `to_disk` wrote; a missing or damaged file raises a ValueError naming it."""
        path = Path(path)
        for name in ("cfg.json", "space.npy", "lexical"):
            if not (path / name).exists():
                raise ValueError(
                    f"{path / name} is missing: the linker index at {path} is incomplete; re-save the pipeline."
                )
        from ..pipeline.manifest import load_step

        got: Dict[str, Any] = {}

        def read(name: str, what: str, load: Callable[[Path], Any]) -> Callable[[Path], None]:
            def reader(p: Path) -> None:
                if p.exists():
                    with load_step(p, what):
                        got[name] = load(p)

            return reader

        def npy(name: str) -> Callable[[Path], None]:
            # mapped read-only: processes that load the same pipeline share the pages
            return read(name, "an array of the linker index", lambda p: np.load(p, mmap_mode="r", allow_pickle=False))

        def cfg(p: Path) -> None:
            with load_step(p, "the index settings"):
                got["cfg"] = dict(srsly.read_json(p))
                got["kind"] = kind_of(got["cfg"])
                got["dim"] = int(got["cfg"]["dim"])

        readers: Dict[str, Callable[[Path], None]] = {
            "cfg.json": cfg,
            "space.npy": npy("space"),
            "ann_items.npy": npy("ann_items"),
            "lexical": read("lexical", "the lexical index", LexicalIndex.from_disk),
            "memory": read("memory", "the lexical index of training phrases", LexicalIndex.from_disk),
            "reranker": read("reranker", "the reranker", Reranker.from_disk),
            "is_leaf.npy": npy("is_leaf"),
            "strings.npy": npy("strings"),
            "strings_scale.npy": npy("strings_scale"),
            DICTIONARY_FILE: read("dictionary", "the phrase dictionary", PhraseDictionary.from_disk),
        }
        util.from_disk(path, readers, exclude=[])
        kind = KINDS[got["kind"]]
        ann_path = path / kind.FILE
        if not ann_path.exists():
            raise ValueError(f"{ann_path} is missing: the linker index at {path} is incomplete; re-save the pipeline.")
        n_items = len(got["space"]) if "ann_items" not in got else len(got["ann_items"])
        neighbours = kind.load(ann_path, got["cfg"], got["dim"], n_items)
        return cls(
            got["space"],
            got["lexical"],
            seed=got["cfg"]["seed"],
            neighbours=neighbours,
            reranker=got.get("reranker"),
            is_leaf=got.get("is_leaf"),
            memory=got.get("memory"),
            ann_items=got.get("ann_items"),
            dictionary=got.get("dictionary"),
            strings=got.get("strings"),
            strings_scale=got.get("strings_scale"),
        )
