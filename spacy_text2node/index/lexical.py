"""The lexical channel: TF-IDF over character 3-grams of words (`char_wb`, like scispaCy)
of all label/synonym strings, the word-level channel over stemmed words, and the
exact-match table. Retrieval uses the exact-match table and an inverted index restricted
to informative n-grams (in at most max(`max_df` x strings, 100) strings); the final lexical
score of every candidate is the exact cosine over all n-grams, max over the concept's strings."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.sparse as sp
import srsly

from .features import LexicalFeatures
from .kernels import _best_string_cosines, _tfidf_rows, _top_nodes, _word_pairs
from .serialize import npy_bytes, npy_load, parts_from_disk, parts_to_disk
from .text import normalize_text, stem, word_ngrams, words
from .tfidf import char_tfidf, exact_table, word_matrix

# n-grams in at most this many strings are always used for lexical retrieval
MIN_DF_CAP = 100
# lexical retrieval shortlists this many strings per candidate asked for by the pruned
# score, then orders them by the full cosine (a larger pool, and the full cosine rather
# than the pruned order, gave a better Acc@5 on GEM P3; past this size the gain was small)
RETRIEVAL_POOL = 10
# distinct query words whose n-gram ids and stems are kept between calls (see `_WordCache`)
WORD_CACHE_SIZE = 20_000


class _WordCache:
    """What `transform` and `word_transform` derive from a query word, kept between calls:
    linking sees the same words over and over. An n-gram the vocabulary lacks gets an id
    from `n_vocab` on, the same for every call that uses this cache (only its count in a
    query matters). Full, the index swaps in a new cache instead of emptying this one,
    so a thread that is building a row with it keeps consistent ids."""

    def __init__(self, vocab: Dict[str, int]):
        self.vocab = vocab
        self.ngram_ids: Dict[str, List[int]] = {}
        self.unknown: Dict[str, int] = {}
        self.stems: Dict[str, str] = {}
        self._lock = threading.Lock()  # two threads must not give two n-grams one id

    def ids(self, word: str) -> List[int]:
        g = self.ngram_ids.get(word)
        if g is None:
            vocab, unknown, n_vocab = self.vocab, self.unknown, len(self.vocab)
            with self._lock:
                g = [
                    vocab[x] if x in vocab else unknown.setdefault(x, n_vocab + len(unknown)) for x in word_ngrams(word)
                ]
            self.ngram_ids[word] = g
        return g

    def stem(self, word: str) -> str:
        s = self.stems.get(word)
        if s is None:
            s = self.stems[word] = stem(word)
        return s

    def full(self) -> bool:
        return max(len(self.ngram_ids), len(self.stems), len(self.unknown)) > WORD_CACHE_SIZE


class LexicalIndex:
    """TF-IDF over char 3-grams of words, with an inverted index over informative n-grams.

    vocab (Dict[str, int]): n-gram -> column.
    idf (np.ndarray): idf per column (float32).
    matrix (sp.csr_matrix): (strings, columns) L2-normalised TF-IDF rows.
    string_node (np.ndarray): node index of each string (int32).
    n_nodes (int): number of nodes.
    max_df (float): n-grams in more than this fraction of strings are not used for retrieval
        (they still count in the exact cosine).
    """

    def __init__(
        self,
        vocab: Dict[str, int],
        idf: np.ndarray,
        matrix: sp.csr_matrix,
        string_node: np.ndarray,
        n_nodes: int,
        max_df: float = 0.03,
        exact: Optional[Dict[str, List[int]]] = None,
        word_vocab: Optional[Dict[str, int]] = None,
        word_matrix: Optional[sp.csr_matrix] = None,
    ):
        self.vocab = vocab
        # word level: binary (strings, words) matrix of stemmed words, with word IDF
        self.word_vocab: Dict[str, int] = word_vocab or {}
        self.word_matrix = (
            (word_matrix if word_matrix is not None else sp.csr_matrix((matrix.shape[0], 0), dtype="float32"))
            .tocsr()
            .astype("float32", copy=False)
        )
        self.exact: Dict[str, List[int]] = exact or {}
        self.idf = np.asarray(idf, dtype="float32")
        self.matrix = matrix.tocsr().astype("float32", copy=False)  # a mapped array stays mapped
        # canonical (sorted, no duplicates) now, once: threads score against these shared
        # matrices, so nothing may sort them in place later (scipy does that lazily)
        self.matrix = _canonical(self.matrix)
        self.word_matrix = _canonical(self.word_matrix)
        self.string_node = np.asarray(string_node, dtype="int32")
        self.n_nodes = int(n_nodes)
        self.max_df = float(max_df)
        self._prepare()

    def _prepare(self) -> None:
        n_strings = self.matrix.shape[0]
        wdf = np.bincount(self.word_matrix.indices, minlength=self.word_matrix.shape[1]).astype("float64")
        self.word_idf = (np.log((1 + n_strings) / (1 + wdf)) + 1.0).astype("float32")
        self._unknown_word_idf = float(np.log(1 + n_strings) + 1.0)
        self._string_word_idf = np.asarray(self.word_matrix @ self.word_idf).ravel().astype("float32")
        df = np.bincount(self.matrix.indices, minlength=self.matrix.shape[1])
        keep = df <= max(MIN_DF_CAP, self.max_df * n_strings)
        pruned = self.matrix @ sp.diags(keep.astype("float32"))
        self._retrieval_T = sp.csr_matrix(pruned.T)
        self._retrieval_T.eliminate_zeros()
        self._masked: Optional[Tuple[bytes, sp.csr_matrix]] = None  # see _retrieval_of
        self._masked_lock = threading.Lock()
        self._words = _WordCache(self.vocab)
        order = np.argsort(self.string_node, kind="stable")
        counts = np.bincount(self.string_node, minlength=self.n_nodes)
        self._node_indptr = np.concatenate([[0], np.cumsum(counts)]).astype("int64")
        self._node_strings = order.astype("int64")

    @classmethod
    def build(
        cls, texts: Sequence[str], string_node: Sequence[int], n_nodes: int, *, max_df: float = 0.03
    ) -> "LexicalIndex":
        """Fit the TF-IDF on the strings of the taxonomy.

        texts (Sequence[str]): label/synonym strings.
        string_node (Sequence[int]): node index of each string.
        n_nodes (int): number of nodes.
        max_df (float): see the class docstring.
        RETURNS (LexicalIndex): the index.
        """
        vocab, idf, m = char_tfidf(texts)
        word_vocab, wm = word_matrix(texts)
        exact = exact_table(texts, string_node)
        return cls(
            vocab,
            idf,
            m,
            np.asarray(string_node),
            n_nodes,
            max_df=max_df,
            exact=exact,
            word_vocab=word_vocab,
            word_matrix=wm,
        )

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF rows of query strings, divided by their full norm: n-grams the taxonomy
        never has count in the norm (with the highest IDF) but match nothing, so a string
        of unknown n-grams does not look similar to anything.

        The n-grams of each distinct word are looked up once (`_WordCache`); a row lists
        its known n-grams in reverse order of first occurrence."""
        idf = self.idf
        n_vocab = len(self.vocab)
        unk_idf = float(idf.max()) if len(idf) else 1.0
        cache = self._word_cache()
        word_ids = cache.ids
        ids: List[int] = []
        ptr = [0]
        for t in texts:
            for w in words(t):
                ids.extend(word_ids(w))
            ptr.append(len(ids))
        ptr_a = np.asarray(ptr, dtype=np.int64)
        longest = int(np.diff(ptr_a).max()) if len(texts) else 0
        # squared weight of an unknown n-gram by its count in the query
        unk_sq = np.asarray([(v * unk_idf) ** 2 for v in range(longest + 1)], dtype=np.float64)
        indptr, indices, weights, norms = _tfidf_rows(
            ptr_a,
            np.asarray(ids, dtype=np.int64),
            n_vocab + len(cache.unknown),
            n_vocab,
            np.asarray(idf, dtype=np.float32),
            unk_sq,
        )
        data = weights * np.repeat(np.float32(1.0) / norms, np.diff(indptr))
        return sp.csr_matrix(
            (data, indices, indptr.astype(np.int32) if len(indices) < 2**31 else indptr), shape=(len(texts), n_vocab)
        )

    def word_transform(self, texts: Sequence[str]) -> Tuple[sp.csr_matrix, np.ndarray]:
        """Binary (queries, words) matrix of known stemmed words, and each query's total word
        IDF (unknown words count with the highest IDF)."""
        wv, idf, unk = self.word_vocab, self.word_idf, self._unknown_word_idf
        word_stem = self._word_cache().stem
        indptr, indices, n_unknown = [0], [], []
        for t in texts:
            ws = sorted({word_stem(w) for w in words(t)})
            known = [wv[w] for w in ws if w in wv]
            indices.extend(known)
            indptr.append(len(indices))
            n_unknown.append(len(ws) - len(known))
        ind = np.asarray(indices, dtype=np.int32)
        ptr = np.asarray(indptr, dtype=np.int64)
        counts = np.diff(ptr)
        # known IDF per query summed as numpy sums a float32 row: sequentially below 8 terms
        # (a cumulative sum of the zero-padded rows), pairwise from 8 on (rare: numpy per row)
        sums = np.zeros(len(texts), dtype=np.float32)
        short = counts < 8
        if short.any():
            pad = np.zeros((len(texts), 7), dtype=np.float32)
            rows = np.repeat(np.arange(len(texts)), counts)
            cols = np.arange(len(ind)) - np.repeat(ptr[:-1], counts)
            sel = short[rows]
            pad[rows[sel], cols[sel]] = idf[ind[sel]]
            sums[short] = np.cumsum(pad, axis=1)[short, -1]
        for i in np.flatnonzero(~short):
            sums[i] = idf[ind[ptr[i] : ptr[i + 1]]].sum()
        total = (sums.astype(np.float64) + unk * np.asarray(n_unknown, dtype=np.float64)).astype(np.float32)
        q = sp.csr_matrix((np.ones(len(ind), dtype="float32"), ind, ptr), shape=(len(texts), len(wv)))
        return q, total

    def _word_cache(self) -> _WordCache:
        cache = self._words
        if cache.full():
            cache = self._words = _WordCache(self.vocab)
        return cache

    def pair_features(
        self,
        q: sp.csr_matrix,
        qw: sp.csr_matrix,
        q_idf: np.ndarray,
        q_idx: np.ndarray,
        nodes: np.ndarray,
        *,
        leave_out_exact: bool = False,
        dense: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None,
    ) -> LexicalFeatures:
        """Features of (query, node) pairs, from the node's string with the best lexical cosine.

        q, qw, q_idf: `transform`, `word_transform` of the queries.
        q_idx (np.ndarray), nodes (np.ndarray): the pairs.
        leave_out_exact (bool): ignore strings identical to the query (cosine 1): used when
            calibrating on pairs whose text is itself one of the taxonomy's strings.
        dense (Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]): rows of the strings
            (in this index's string order) as int8 with a float32 scale each
            (`quantize_rows`), and float32 rows of the queries, e.g. unit rows as the mapper
            maps them: feature "siamese" is the largest product of a query's row with its
            node's strings' rows (strings left out as above; 0 without them).
        RETURNS (LexicalFeatures): the best cosine, recall and precision (IDF-weighted word
            overlap over the query's and the string's words), the words each side lacks,
            and the siamese feature.
        """
        n = len(nodes)
        V = self.word_matrix.shape[1]
        empty = sp.csr_matrix((n, V), dtype="float32")
        zeros = np.zeros(n, dtype="float32")
        if n == 0:
            return LexicalFeatures(zeros, zeros, zeros, empty, empty, zeros)
        best_sim, best_str, siamese = self._best_strings(q, q_idx, nodes, leave_out_exact=leave_out_exact, dense=dense)
        valid = best_sim >= 0  # the node has a string (left in)
        lexical = np.where(valid, best_sim, 0.0).astype("float32")
        if V == 0:
            return LexicalFeatures(lexical, zeros, zeros, empty, empty, siamese)
        wm = self.word_matrix
        if qw.shape[1] != V:
            raise ValueError(
                f"pair_features: the query word rows have {qw.shape[1]} columns but the index has {V} words."
            )
        overlap, lo_ptr, lo_idx, qo_ptr, qo_idx = _word_pairs(
            wm.indptr,
            wm.indices,
            qw.indptr,
            qw.indices,
            self.word_idf,
            best_str,
            valid,
            np.asarray(q_idx, dtype=np.int64),
            V,
        )
        s_idf = self._string_word_idf[best_str]
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = np.where(valid & (q_idf[q_idx] > 0), overlap / q_idf[q_idx], 0.0).astype("float32")
            precision = np.where(valid & (s_idf > 0), overlap / s_idf, 0.0).astype("float32")
        return LexicalFeatures(
            lexical,
            recall,
            precision,
            label_only=sp.csr_matrix((np.ones(len(lo_idx), dtype="float32"), lo_idx, lo_ptr), shape=(n, V)),
            query_only=sp.csr_matrix((np.ones(len(qo_idx), dtype="float32"), qo_idx, qo_ptr), shape=(n, V)),
            siamese=siamese,
        )

    def _best_strings(
        self,
        q: sp.csr_matrix,
        q_idx: np.ndarray,
        nodes: np.ndarray,
        *,
        leave_out_exact: bool = False,
        dense: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None,
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each (query, node) pair, the best lexical cosine over the node's strings (the
        first such string on ties) and that string; -1 and 0 for a node without strings
        (or, with leave_out_exact, with only strings identical to the query); and the
        siamese feature of `dense` (see `pair_features`; 0s without)."""
        m = self.matrix
        qs = q if q.has_sorted_indices else q.sorted_indices()
        if m.shape[1] != qs.shape[1]:
            raise ValueError(f"The queries have {qs.shape[1]} columns but the index has {m.shape[1]} n-grams.")
        return _best_string_cosines(
            m.indptr,
            m.indices,
            m.data,
            qs.indptr,
            qs.indices,
            qs.data.astype(np.float32, copy=False),
            qs.shape[1],
            self._node_indptr,
            self._node_strings,
            np.asarray(nodes, dtype=np.int64),
            np.asarray(q_idx, dtype=np.int64),
            bool(leave_out_exact),
            self._dense_args(dense),
        )

    def _dense_args(
        self, dense: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The kernel's (int8 string rows, their scales, float32 query rows), checked; empty
        ones without `dense`."""
        if dense is None:
            return np.zeros((0, 0), dtype=np.int8), np.zeros(0, dtype=np.float32), np.zeros((0, 0), dtype=np.float32)
        rows, scale, queries = dense
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n = self.matrix.shape[0]
        if rows.dtype != np.int8 or rows.shape[0] != n or scale.shape != (n,) or rows.shape[1] != queries.shape[1]:
            raise ValueError(
                f"pair_features: string rows {rows.dtype} {rows.shape} with {scale.shape} scales for {n} strings, "
                f"query rows of width {queries.shape[1]}: they were not mapped for this index; re-map the strings."
            )
        return rows, np.asarray(scale, dtype=np.float32), queries

    def exact_matches(self, texts: Sequence[str]) -> List[np.ndarray]:
        """Nodes with a string equal to each query after normalisation (case, punctuation)."""
        return [np.asarray(self.exact.get(normalize_text(t), ()), dtype="int64") for t in texts]

    def retrieve(self, q: sp.csr_matrix, k: int, allowed: Optional[np.ndarray] = None) -> List[np.ndarray]:
        """Top-k node candidates per query, in two stages. The shortlist: the
        `RETRIEVAL_POOL` * k best strings by the pruned (informative n-gram) score q @
        pruned.T, and every string tied with the last. Then the shortlist's nodes by their
        strings' full cosine q @ matrix.T (a stable sort over the product's column order),
        each node once. The pruned score alone prefers short strings, as the common
        n-grams it leaves out still count in a string's norm: "Burn of unspecified degree
        of ear" ranked the "left ear ..., sequela" leaf above the "unspecified ear ...,
        initial encounter" one, which the full cosine puts first.

        allowed (Optional[np.ndarray]): bool per node; only the strings of these nodes are
            ranked (k of them come back, however many better strings other nodes have).
        """
        n_q = q.shape[0]
        if k <= 0:
            return [np.zeros(0, dtype="int64") for _ in range(n_q)]
        if n_q == 0:
            return []
        rt = self._retrieval_T
        if q.shape[1] != rt.shape[0]:
            raise ValueError(
                f"retrieve: the queries have {q.shape[1]} columns but the index has {rt.shape[0]} n-grams."
            )
        if q.nnz and q.data.min() <= 0:
            raise ValueError(
                "retrieve: the query rows must have positive entries only (the TF-IDF rows of `transform`)."
            )
        acc = np.zeros(rt.shape[1], dtype=np.result_type(q.dtype, rt.dtype))
        n_nodes = max(self.n_nodes, int(self.string_node.max()) + 1) if len(self.string_node) else self.n_nodes
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (n_nodes,):
                raise ValueError(f"retrieve: allowed has shape {allowed.shape} but the index has {n_nodes} nodes.")
            rt = self._retrieval_of(allowed)
        m = self.matrix
        ptr, nodes = _top_nodes(
            q.indptr,
            q.indices,
            q.data,
            rt.indptr,
            rt.indices,
            rt.data,
            m.indptr,
            m.indices,
            m.data,
            self.string_node,
            n_nodes,
            int(k),
            acc,
            RETRIEVAL_POOL,
        )
        return np.split(nodes, ptr[1:-1])

    def _retrieval_of(self, allowed: np.ndarray) -> sp.csr_matrix:
        """The retrieval matrix without the strings of nodes outside `allowed`, built once
        per mask (the last one is kept; threads may call this at once)."""
        key = hashlib.blake2b(np.packbits(allowed).tobytes(), digest_size=16).digest()
        with self._masked_lock:
            if self._masked is None or self._masked[0] != key:
                rt = self._retrieval_T
                keep = allowed[self.string_node][rt.indices]
                rows = np.repeat(np.arange(rt.shape[0]), np.diff(rt.indptr))
                counts = np.bincount(rows[keep], minlength=rt.shape[0])
                indptr = np.concatenate([[0], np.cumsum(counts)]).astype(rt.indptr.dtype)
                masked = sp.csr_matrix((rt.data[keep], rt.indices[keep], indptr), shape=rt.shape)
                self._masked = (key, masked)
            return self._masked[1]

    def pair_scores(self, q: sp.csr_matrix, q_idx: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Exact lexical cosine for (query, node) pairs: max over the node's strings."""
        if len(nodes) == 0:
            return np.zeros(0, dtype="float32")
        return np.maximum(self._best_strings(q, q_idx, nodes)[0], 0.0).astype("float32")

    # serialization -------------------------------------------------------------------
    # the parts, each bytes: a map inside the node index's bytes, a file each on disk
    PARTS = (
        "vocab",
        "idf",
        "indptr",
        "indices",
        "data",
        "string_node",
        "exact",
        "cfg",
        "word_vocab",
        "word_indptr",
        "word_indices",
    )

    def _getters(self) -> Dict[str, Callable[[], bytes]]:
        m, wm = self.matrix, self.word_matrix
        cfg = {"n_nodes": self.n_nodes, "max_df": self.max_df, "shape": list(m.shape)}
        getters: Dict[str, Callable[[], bytes]] = {
            "vocab": lambda: _json_bytes(sorted(self.vocab, key=self.vocab.__getitem__)),
            "idf": lambda: npy_bytes(self.idf),
            "indptr": lambda: npy_bytes(m.indptr.astype("int64")),
            "indices": lambda: npy_bytes(m.indices.astype("int32")),
            "data": lambda: npy_bytes(m.data.astype("float32")),
            "string_node": lambda: npy_bytes(self.string_node),
            "exact": lambda: _json_bytes(self.exact),
            "cfg": lambda: _json_bytes(cfg),
            "word_vocab": lambda: _json_bytes(sorted(self.word_vocab, key=self.word_vocab.__getitem__)),
            "word_indptr": lambda: npy_bytes(wm.indptr.astype("int64")),
            "word_indices": lambda: npy_bytes(wm.indices.astype("int32")),
        }
        return getters

    def to_dict(self) -> Dict[str, bytes]:
        """The parts as bytes (`PARTS`)."""
        return {name: get() for name, get in self._getters().items()}

    def to_disk(self, path: Union[str, Path]) -> None:
        """One file per part in the folder `path`."""
        parts_to_disk(Path(path), self._getters())

    # the parts that are .npy arrays: `from_disk` maps them read-only (mmap_mode="r"), so
    # processes that load the same pipeline share their pages instead of each holding a copy
    ARRAY_PARTS = ("idf", "indptr", "indices", "data", "string_node", "word_indptr", "word_indices")

    @classmethod
    def from_disk(cls, path: Union[str, Path]) -> "LexicalIndex":
        """The index `to_disk` wrote (a missing part raises KeyError naming it); its arrays
        are memory-mapped read-only."""
        path = Path(path)
        msg: Dict[str, Union[bytes, np.ndarray]] = dict(
            parts_from_disk(path, [p for p in cls.PARTS if p not in cls.ARRAY_PARTS])
        )
        for name in cls.ARRAY_PARTS:
            if (path / name).exists():
                msg[name] = np.load(path / name, mmap_mode="r", allow_pickle=False)
        return cls.from_dict(msg)

    @classmethod
    def from_dict(cls, msg: Mapping[str, Union[bytes, np.ndarray]]) -> "LexicalIndex":
        """The index of `to_dict`'s parts ("exact" and the word parts may be missing: saved
        before they existed); an array part may also be given as the array."""

        def array(name: str) -> np.ndarray:
            value = msg[name]
            return value if isinstance(value, np.ndarray) else npy_load(value)

        def text(name: str) -> Any:
            value = msg[name]
            assert isinstance(value, bytes), name
            return srsly.json_loads(value.decode("utf8"))

        vocab_list = text("vocab")
        cfg = text("cfg")
        m = sp.csr_matrix((array("data"), array("indices"), array("indptr")), shape=tuple(cfg["shape"]))
        exact = text("exact") if "exact" in msg else {}
        word_vocab, wm = None, None
        if "word_vocab" in msg:
            wl = text("word_vocab")
            word_vocab = {w: j for j, w in enumerate(wl)}
            wi = array("word_indices")
            wm = sp.csr_matrix(
                (np.ones(len(wi), dtype="float32"), wi, array("word_indptr")), shape=(m.shape[0], len(wl))
            )
        return cls(
            {g: j for j, g in enumerate(vocab_list)},
            array("idf"),
            m,
            array("string_node"),
            cfg["n_nodes"],
            max_df=cfg["max_df"],
            exact=exact,
            word_vocab=word_vocab,
            word_matrix=wm,
        )


def _canonical(m: sp.csr_matrix) -> sp.csr_matrix:
    """`m` with sorted indices and no duplicates (a read-only mapped matrix is copied
    first when it is not already so)."""
    if not m.has_canonical_format:
        if not m.data.flags.writeable or not m.indices.flags.writeable:
            m = m.copy()
        m.sum_duplicates()
    return m


def _json_bytes(obj: object) -> bytes:
    return srsly.json_dumps(obj).encode("utf8")
