"""Node space, the annoy index over it, the lexical character 3-gram channel and their fusion.

* `build_node_space`: node2vec vectors, optionally concatenated with a text vector of each
  concept's label and synonyms (so a node never seen in training still has a textual
  anchor). Rows are L2-normalised; cosine = (1 - w) cos_node2vec + w cos_text.
* `LexicalIndex`: TF-IDF over character 3-grams of words (`char_wb`, like scispaCy) of all
  label/synonym strings. Retrieval uses an exact-match table (normalised strings) and an
  inverted index restricted to informative n-grams (in at most max(`max_df` x strings, 100)
  strings); the final lexical score of every candidate is the exact cosine over all
  n-grams, max over the concept's strings.
* `NodeIndex`: the annoy index over node space + the lexical channel; `search` takes the
  union of both candidate lists and ranks them by
  `fusion_weight * cos_node + (1 - fusion_weight) * cos_lexical`.

Everything serializes to `.npy`/JSON/msgpack and annoy's own file format; no pickle.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.sparse as sp
import srsly
from annoy import AnnoyIndex
from numba import njit
from spacy.util import make_tempdir

logger = logging.getLogger(__name__)

_WORD = re.compile(r"\w+", re.UNICODE)
# added to the reranker score of a candidate with a string equal to the query (normalised)
EXACT_BONUS = 100.0
# n-grams in at most this many strings are always used for lexical retrieval
MIN_DF_CAP = 100
# lexical retrieval shortlists this many strings per candidate asked for by the pruned
# score, then orders them by the full cosine (GEM P3 with the P3 linker, Acc@5: 3 strings
# per candidate and pruned order 0.719, 3 and full 0.728, 10 and full 0.736, 20 0.738)
RETRIEVAL_POOL = 10
# (query, node) pairs whose node-space cosines are computed at once
PAIR_BLOCK = 2048


def normalize_text(text: str) -> str:
    """Lower-cased words joined by one space: the key of the exact-match table."""
    return " ".join(words(text))


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _npy_load(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-normalised float32 copy (zero rows stay zero)."""
    x = np.asarray(x, dtype="float32")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype("float32")


def words(text: str) -> List[str]:
    """Lower-cased word tokens (unicode \\w+) used by the lexical channel."""
    return _WORD.findall(text.lower())


def stem(word: str) -> str:
    """A light plural stemmer for word matching ("fractures" -> "fracture", "injuries" -> "injury")."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def word_set(text: str) -> List[str]:
    """Sorted distinct stemmed lower-cased words of a string (the word-level channel)."""
    return sorted({stem(w) for w in words(text)})


def word_ngrams(word: str, n: int = 3) -> List[str]:
    """Character n-grams of one word padded with spaces (the word itself if it is short)."""
    w = f" {word} "
    if len(w) <= n:
        return [w]
    return [w[i : i + n] for i in range(len(w) - n + 1)]


def char_ngrams(text: str, n: int = 3) -> List[str]:
    """Character n-grams of each word padded with spaces (scikit-learn's `char_wb`)."""
    out: List[str] = []
    for w in words(text):
        out.extend(word_ngrams(w, n))
    return out


def build_node_space(
    node_vectors: Optional[np.ndarray],
    text_vectors: Optional[np.ndarray] = None,
    *,
    text_weight: float = 0.5,
) -> np.ndarray:
    """Node-space matrix: normalised node2vec rows, optionally concatenated with
    normalised text rows, weighted so that cosine = (1-w) cos_node + w cos_text.

    node_vectors (Optional[np.ndarray]): (n, d) node2vec vectors in taxonomy order, or None.
    text_vectors (Optional[np.ndarray]): (n, t) text vectors of the labels/synonyms, or None.
    text_weight (float): w in [0, 1].
    RETURNS (np.ndarray): (n, d [+ t]) float32, rows of unit norm (zero rows stay zero).
    """
    if node_vectors is None and text_vectors is None:
        raise ValueError("build_node_space needs node_vectors, text_vectors or both (got neither).")
    if not 0.0 <= text_weight <= 1.0:
        raise ValueError(f"text_weight must be in [0, 1] (got {text_weight}).")
    parts = []
    if node_vectors is not None:
        nw = 1.0 if text_vectors is None else 1.0 - text_weight
        parts.append(np.sqrt(nw) * l2_normalize(node_vectors))
    if text_vectors is not None:
        if node_vectors is not None and len(text_vectors) != len(node_vectors):
            raise ValueError(f"text_vectors has {len(text_vectors)} rows but node_vectors has {len(node_vectors)}.")
        tw = 1.0 if node_vectors is None else text_weight
        parts.append(np.sqrt(tw) * l2_normalize(text_vectors))
    return l2_normalize(np.concatenate(parts, axis=1))


def principal_components(vectors: np.ndarray, dim: int) -> np.ndarray:
    """Rows projected on their `dim` leading principal components (after centring), for a
    smaller node space. All-zero rows (nodes without a known word) stay zero, and neither
    they nor the centring count in the components. A `dim` at or above the width returns
    the rows unchanged.

    vectors (np.ndarray): (n, width).
    dim (int): components to keep (> 0).
    RETURNS (np.ndarray): (n, min(dim, width)) float32.
    """
    vectors = np.asarray(vectors, dtype="float32")
    if dim <= 0:
        raise ValueError(f"principal_components: dim must be positive (got {dim}).")
    if dim >= vectors.shape[1]:
        return vectors
    unit = l2_normalize(vectors)
    live = np.any(unit != 0, axis=1)
    if not live.any():
        return np.zeros((len(vectors), dim), dtype="float32")
    x = unit[live].astype("float64")
    mean = x.mean(0)
    x -= mean
    _, eigvecs = np.linalg.eigh(x.T @ x)  # ascending eigenvalues
    basis = eigvecs[:, ::-1][:, :dim]
    out = np.zeros((len(vectors), dim), dtype="float32")
    out[live] = (x @ basis).astype("float32")
    return out


def node_text_vectors(
    texts: Sequence[str],
    string_node: np.ndarray,
    n_nodes: int,
    vectors_table: np.ndarray,
    find_rows,
) -> np.ndarray:
    """Text vector of each node: IDF-weighted mean of the unit word vectors of all words
    of its label and synonyms (mean over its strings).

    texts (Sequence[str]): every label/synonym string.
    string_node (np.ndarray): node index of each string.
    n_nodes (int): number of nodes.
    vectors_table (np.ndarray): (rows, width) word-vector table.
    find_rows (Callable[[List[str]], np.ndarray]): words -> table rows (-1 unknown).
    RETURNS (np.ndarray): (n_nodes, width) float32.
    """
    width = vectors_table.shape[1]
    toks = [words(t) for t in texts]
    df = Counter(w for ws in toks for w in set(ws))
    vocab = list(df)
    rows = np.asarray(find_rows(vocab), dtype="int64") if vocab else np.zeros(0, dtype="int64")
    unit = l2_normalize(vectors_table)
    n = max(len(texts), 1)
    w_index = {w: i for i, w in enumerate(vocab)}
    idf = np.log((1 + n) / (1 + np.array([df[w] for w in vocab], dtype="float64"))) + 1.0
    out = np.zeros((n_nodes, width), dtype="float32")
    for s, ws in enumerate(toks):
        ids = [w_index[w] for w in ws]
        ids = [i for i in ids if rows[i] >= 0]
        if not ids:
            continue
        wts = idf[ids].astype("float32")
        v = (unit[rows[ids]] * wts[:, None]).sum(0) / wts.sum()
        out[string_node[s]] += l2_normalize(v[None])[0]
    return out


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
            .astype("float32")
        )
        self.exact: Dict[str, List[int]] = exact or {}
        self.idf = np.asarray(idf, dtype="float32")
        self.matrix = matrix.tocsr().astype("float32")
        # canonical (sorted, no duplicates) now, once: threads score against these shared
        # matrices, so nothing may sort them in place later (scipy does that lazily)
        self.matrix.sum_duplicates()
        self.word_matrix.sum_duplicates()
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
        vocab: Dict[str, int] = {}
        indptr = [0]
        indices: List[int] = []
        data: List[float] = []
        for t in texts:
            c = Counter(char_ngrams(t))
            for g, v in c.items():
                j = vocab.setdefault(g, len(vocab))
                indices.append(j)
                data.append(float(v))
            indptr.append(len(indices))
        m = sp.csr_matrix(
            (np.asarray(data, dtype="float32"), np.asarray(indices, dtype="int32"), np.asarray(indptr, dtype="int64")),
            shape=(len(texts), len(vocab)),
        )
        df = np.bincount(m.indices, minlength=len(vocab)).astype("float64")
        idf = (np.log((1 + len(texts)) / (1 + df)) + 1.0).astype("float32")
        m = _normalize_rows(m @ sp.diags(idf))
        word_vocab: Dict[str, int] = {}
        w_indptr, w_indices = [0], []
        for t in texts:
            w_indices.extend(word_vocab.setdefault(w, len(word_vocab)) for w in word_set(t))
            w_indptr.append(len(w_indices))
        wm = sp.csr_matrix(
            (
                np.ones(len(w_indices), dtype="float32"),
                np.asarray(w_indices, dtype="int32"),
                np.asarray(w_indptr, dtype="int64"),
            ),
            shape=(len(texts), len(word_vocab)),
        )
        exact: Dict[str, List[int]] = {}
        for t, node in zip(texts, string_node):
            key = normalize_text(t)
            if key:
                nodes = exact.setdefault(key, [])
                if int(node) not in nodes:
                    nodes.append(int(node))
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

        The n-grams of each distinct word are looked up once per call; a row lists its
        known n-grams in reverse order of first occurrence."""
        vocab, idf = self.vocab, self.idf
        n_vocab = len(vocab)
        unk_idf = float(idf.max()) if len(idf) else 1.0
        unknown: Dict[str, int] = {}  # n-grams missing from the vocabulary: ids n_vocab, n_vocab + 1, ...
        by_word: Dict[str, List[int]] = {}
        ids: List[int] = []
        ptr = [0]
        for t in texts:
            for w in words(t):
                g = by_word.get(w)
                if g is None:
                    g = by_word[w] = [
                        vocab[x] if x in vocab else unknown.setdefault(x, n_vocab + len(unknown))
                        for x in word_ngrams(w)
                    ]
                ids.extend(g)
            ptr.append(len(ids))
        ptr_a = np.asarray(ptr, dtype=np.int64)
        longest = int(np.diff(ptr_a).max()) if len(texts) else 0
        # squared weight of an unknown n-gram by its count in the query
        unk_sq = np.asarray([(v * unk_idf) ** 2 for v in range(longest + 1)], dtype=np.float64)
        indptr, indices, weights, norms = _tfidf_rows(
            ptr_a,
            np.asarray(ids, dtype=np.int64),
            n_vocab + len(unknown),
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
        stems: Dict[str, str] = {}
        indptr, indices, n_unknown = [0], [], []
        for t in texts:
            ws = sorted({stems[w] if w in stems else stems.setdefault(w, stem(w)) for w in words(t)})
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

    def pair_features(
        self,
        q: sp.csr_matrix,
        qw: sp.csr_matrix,
        q_idf: np.ndarray,
        q_idx: np.ndarray,
        nodes: np.ndarray,
        *,
        leave_out_exact: bool = False,
    ) -> Dict[str, object]:
        """Features of (query, node) pairs, from the node's string with the best lexical cosine.

        q, qw, q_idf: `transform`, `word_transform` of the queries.
        q_idx (np.ndarray), nodes (np.ndarray): the pairs.
        leave_out_exact (bool): ignore strings identical to the query (cosine 1): used when
            calibrating on pairs whose text is itself one of the taxonomy's strings.
        RETURNS (Dict): "lexical", "recall", "precision" (IDF-weighted word overlap over the
            query's and the string's words) as float32 arrays, and sparse (pairs, words)
            matrices "label_only" (words of the string missing from the query) and
            "query_only" (words of the query missing from the string).
        """
        n = len(nodes)
        V = self.word_matrix.shape[1]
        empty = sp.csr_matrix((n, V), dtype="float32")
        out: Dict[str, object] = {k: np.zeros(n, dtype="float32") for k in ("lexical", "recall", "precision")}
        out["label_only"], out["query_only"] = empty, empty
        if n == 0:
            return out
        best_sim, best_str = self._best_strings(q, q_idx, nodes, leave_out_exact=leave_out_exact)
        valid = best_sim >= 0  # the node has a string (left in)
        out["lexical"] = np.where(valid, best_sim, 0.0).astype("float32")
        if V == 0:
            return out
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
            out["recall"] = np.where(valid & (q_idf[q_idx] > 0), overlap / q_idf[q_idx], 0.0).astype("float32")
            out["precision"] = np.where(valid & (s_idf > 0), overlap / s_idf, 0.0).astype("float32")
        out["label_only"] = sp.csr_matrix((np.ones(len(lo_idx), dtype="float32"), lo_idx, lo_ptr), shape=(n, V))
        out["query_only"] = sp.csr_matrix((np.ones(len(qo_idx), dtype="float32"), qo_idx, qo_ptr), shape=(n, V))
        return out

    def _best_strings(
        self, q: sp.csr_matrix, q_idx: np.ndarray, nodes: np.ndarray, *, leave_out_exact: bool = False
    ) -> Tuple[np.ndarray, np.ndarray]:
        """For each (query, node) pair, the best lexical cosine over the node's strings (the
        first such string on ties) and that string; -1 and 0 for a node without strings
        (or, with leave_out_exact, with only strings identical to the query)."""
        m = self.matrix
        qs = q if q.has_sorted_indices else q.sorted_indices()
        if m.shape[1] != qs.shape[1]:
            raise ValueError(f"The queries have {qs.shape[1]} columns but the index has {m.shape[1]} n-grams.")
        return _best_strings(
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
        )

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

    def to_dict(self) -> Dict[str, bytes]:
        vocab_list = [None] * len(self.vocab)
        for g, j in self.vocab.items():
            vocab_list[j] = g
        m = self.matrix
        return {
            "vocab": srsly.json_dumps(vocab_list).encode("utf8"),
            "idf": _npy_bytes(self.idf),
            "indptr": _npy_bytes(m.indptr.astype("int64")),
            "indices": _npy_bytes(m.indices.astype("int32")),
            "data": _npy_bytes(m.data.astype("float32")),
            "string_node": _npy_bytes(self.string_node),
            "exact": srsly.json_dumps(self.exact).encode("utf8"),
            "cfg": srsly.json_dumps({"n_nodes": self.n_nodes, "max_df": self.max_df, "shape": list(m.shape)}).encode(
                "utf8"
            ),
            "word_vocab": srsly.json_dumps(sorted(self.word_vocab, key=self.word_vocab.get)).encode("utf8"),
            "word_indptr": _npy_bytes(self.word_matrix.indptr.astype("int64")),
            "word_indices": _npy_bytes(self.word_matrix.indices.astype("int32")),
        }

    @classmethod
    def from_dict(cls, msg: Dict[str, bytes]) -> "LexicalIndex":
        vocab_list = srsly.json_loads(msg["vocab"].decode("utf8"))
        cfg = srsly.json_loads(msg["cfg"].decode("utf8"))
        m = sp.csr_matrix(
            (_npy_load(msg["data"]), _npy_load(msg["indices"]), _npy_load(msg["indptr"])), shape=tuple(cfg["shape"])
        )
        exact = srsly.json_loads(msg["exact"].decode("utf8")) if "exact" in msg else {}
        word_vocab, wm = None, None
        if "word_vocab" in msg:
            wl = srsly.json_loads(msg["word_vocab"].decode("utf8"))
            word_vocab = {w: j for j, w in enumerate(wl)}
            wi = _npy_load(msg["word_indices"])
            wm = sp.csr_matrix(
                (np.ones(len(wi), dtype="float32"), wi, _npy_load(msg["word_indptr"])), shape=(m.shape[0], len(wl))
            )
        return cls(
            {g: j for j, g in enumerate(vocab_list)},
            _npy_load(msg["idf"]),
            m,
            _npy_load(msg["string_node"]),
            cfg["n_nodes"],
            max_df=cfg["max_df"],
            exact=exact,
            word_vocab=word_vocab,
            word_matrix=wm,
        )


@njit(cache=True, nogil=True)
def _load_row(dense, ptr, idx, vals, cur, j):  # pragma: no cover - numba
    """Make dense hold CSR row j instead of row cur (-1: none): row cur's columns back to
    zero, row j's set to its values (vals None: to 1)."""
    if cur >= 0:
        for y in range(ptr[cur], ptr[cur + 1]):
            dense[idx[y]] = 0
    for y in range(ptr[j], ptr[j + 1]):
        if vals is None:
            dense[idx[y]] = 1
        else:
            dense[idx[y]] = vals[y]


@njit(cache=True, nogil=True)
def _best_strings(
    m_ptr, m_idx, m_val, q_ptr, q_idx, q_val, width, node_ptr, node_strings, nodes, rows, leave_out_exact
):  # pragma: no cover - numba
    """Per pair p: the largest cosine between query rows[p] of Q and the strings of node
    nodes[p] (M's rows node_strings[node_ptr[node]:node_ptr[node + 1]]), and the first
    string that has it. The query row is scattered into a dense vector (kept while rows
    repeats: callers group the pairs of one query) and each string's row is read against
    it: float32 products summed in float64 in M's column order, as a merge of the two
    sorted rows would sum them, without the merge's branches. With leave_out_exact a
    cosine of at least 0.9999 counts as -1. Returns (float32 cosines, -1 where the node
    has no strings; int64 strings)."""
    n = len(nodes)
    best = np.full(n, -1.0, dtype=np.float32)
    best_s = np.zeros(n, dtype=np.int64)
    dense = np.zeros(width, dtype=np.float32)
    cur = -1
    for p in range(n):
        j = rows[p]
        if j != cur:
            _load_row(dense, q_ptr, q_idx, q_val, cur, j)
            cur = j
        node = nodes[p]
        first = True
        for t in range(node_ptr[node], node_ptr[node + 1]):
            st = node_strings[t]
            acc = 0.0
            for x in range(m_ptr[st], m_ptr[st + 1]):
                acc += m_val[x] * dense[m_idx[x]]
            sim = np.float32(acc)
            if leave_out_exact and sim >= 0.9999:
                sim = np.float32(-1.0)
            if first or sim > best[p]:
                best[p] = sim
                best_s[p] = st
                first = False
    return best, best_s


@njit(cache=True, nogil=True)
def _word_pairs(w_ptr, w_idx, q_ptr, q_idx, word_idf, strings, valid, rows, width):  # pragma: no cover - numba
    """Word comparison of string strings[p] (W's row, sorted) and query rows[p] (Q's row,
    any order) for each valid pair p: the IDF of their shared words (float32, summed in
    W's order), and CSR structures of the string's words missing from the query (W's
    order) and of the query's words missing from the string (Q's order)."""
    n = len(strings)
    lo_cap, qo_cap = 0, 0
    for p in range(n):
        if valid[p]:
            lo_cap += w_ptr[strings[p] + 1] - w_ptr[strings[p]]
            qo_cap += q_ptr[rows[p] + 1] - q_ptr[rows[p]]
    overlap = np.zeros(n, dtype=np.float32)
    lo_ptr = np.zeros(n + 1, dtype=np.int64)
    qo_ptr = np.zeros(n + 1, dtype=np.int64)
    lo_idx = np.empty(lo_cap, dtype=np.int32)
    qo_idx = np.empty(qo_cap, dtype=np.int32)
    mark = np.zeros(width, dtype=np.int8)  # 1: a word of the current query; 2: also of the string
    cur = -1
    nl, nq = 0, 0
    for p in range(n):
        if valid[p]:
            j = rows[p]
            if j != cur:
                _load_row(mark, q_ptr, q_idx, None, cur, j)
                cur = j
            st = strings[p]
            ov = np.float32(0.0)
            for x in range(w_ptr[st], w_ptr[st + 1]):
                c = w_idx[x]
                if mark[c] != 0:
                    ov += word_idf[c]
                    mark[c] = 2
                else:
                    lo_idx[nl] = c
                    nl += 1
            overlap[p] = ov
            for y in range(q_ptr[j], q_ptr[j + 1]):
                c = q_idx[y]
                if mark[c] == 2:
                    mark[c] = 1
                else:
                    qo_idx[nq] = c
                    nq += 1
        lo_ptr[p + 1] = nl
        qo_ptr[p + 1] = nq
    return overlap, lo_ptr, lo_idx[:nl], qo_ptr, qo_idx[:nq]


@njit(cache=True, nogil=True)
def _tfidf_rows(ptr, ids, n_ids, n_vocab, idf, unk_sq):  # pragma: no cover - numba
    """Query TF-IDF rows from the n-gram ids of each query (ptr: offsets into ids; an id at
    or above n_vocab is an n-gram the vocabulary lacks). Counts in order of first
    occurrence, float64 weight count x IDF, squared norm over all n-grams (an unknown one
    adds unk_sq[count]); a row's known n-grams are written in reverse order of first
    occurrence. Returns indptr, indices, float32 weights and float32 norms (1 if zero)."""
    n = len(ptr) - 1
    count = np.zeros(n_ids, dtype=np.int64)
    order = np.empty(len(ids), dtype=np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    indices = np.empty(len(ids), dtype=np.int32)
    weights = np.empty(len(ids), dtype=np.float32)
    norms = np.ones(n, dtype=np.float32)
    nnz = 0
    for i in range(n):
        m = 0
        known = 0
        for p in range(ptr[i], ptr[i + 1]):
            g = ids[p]
            if count[g] == 0:
                order[m] = g
                m += 1
                if g < n_vocab:
                    known += 1
            count[g] += 1
        sq = 0.0
        pos = nnz + known
        for o in range(m):
            g = order[o]
            v = count[g]
            count[g] = 0
            if g >= n_vocab:
                sq += unk_sq[v]
            else:
                w = np.float64(v) * np.float64(idf[g])
                sq += w * w
                pos -= 1
                indices[pos] = g
                weights[pos] = w
        nnz += known
        indptr[i + 1] = nnz
        if sq > 0:
            norms[i] = np.sqrt(sq)
    return indptr, indices[:nnz], weights[:nnz], norms


@njit(cache=True, nogil=True)
def _product_row(q_ptr, q_idx, q_val, t_ptr, t_idx, t_val, i, acc, touched, cols, vals):  # pragma: no cover - numba
    """Row i of the sparse product Q @ T, for Q and T with positive entries (TF-IDF), as
    scipy's csr_matmat computes it: sums in acc's dtype in the order of Q's and T's
    entries, columns in reverse order of first touch. A column is new while its sum is
    still zero (no `seen` array to read per entry: half the random reads). acc: zeros
    (left zero); touched, cols, vals: buffers of T's width. Returns n and the largest
    value: the row is cols[:n], vals[:n]."""
    m = 0
    for p in range(q_ptr[i], q_ptr[i + 1]):
        j = q_idx[p]
        v = q_val[p]
        for r in range(t_ptr[j], t_ptr[j + 1]):
            s = t_idx[r]
            w = v * t_val[r]
            if acc[s] == 0:
                if w == 0:  # an underflow: nothing to add
                    continue
                touched[m] = s
                m += 1
            acc[s] += w
    hi = acc.dtype.type(0)
    for p in range(m - 1, -1, -1):
        s = touched[p]
        cols[m - 1 - p] = s
        vals[m - 1 - p] = acc[s]
        hi = max(hi, acc[s])
        acc[s] = 0
    return m, hi


@njit(cache=True, nogil=True)
def _argsort_desc(v):  # pragma: no cover - numba
    """Stable argsort of v, largest first (a bottom-up merge sort; numpy's stable
    argsort of -v gives the same order)."""
    n = len(v)
    a = np.arange(n)
    b = np.empty(n, dtype=np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            i, j = lo, mid
            for o in range(lo, hi):
                if j < hi and (i >= mid or v[a[j]] > v[a[i]]):
                    b[o] = a[j]
                    j += 1
                else:
                    b[o] = a[i]
                    i += 1
        a, b = b, a
        width *= 2
    return a


@njit(cache=True, nogil=True)
def _shortlist(cols, vals, n, hi, kk, hist, keep_s, keep_v):  # pragma: no cover - numba
    """The columns whose value is at least the kk-th largest of vals[:n] (0 < kk < n;
    values in (0, hi]), in their order, written to keep_s (keep_v: work buffer). One pass
    makes a histogram of the values, a second collects the buckets at and above the one
    that holds the kk-th largest, and only that bucket is sorted. Returns the count."""
    nb = len(hist)
    scale = (nb - 1) / np.float64(hi)
    hist[:] = 0
    for p in range(n):
        hist[min(int(np.float64(vals[p]) * scale), nb - 1)] += 1
    above, b = 0, nb - 1
    while above + hist[b] < kk:
        above += hist[b]
        b -= 1
    bucket = np.empty(hist[b], dtype=vals.dtype)
    nc, nbk = 0, 0
    for p in range(n):
        g = min(int(np.float64(vals[p]) * scale), nb - 1)
        if g >= b:
            keep_s[nc] = cols[p]
            keep_v[nc] = vals[p]
            nc += 1
            if g == b:
                bucket[nbk] = vals[p]
                nbk += 1
    cut = np.sort(bucket)[nbk - (kk - above)]
    n_keep = 0
    for c in range(nc):  # every value tied with the kk-th largest stays
        if keep_v[c] >= cut:
            keep_s[n_keep] = keep_s[c]
            n_keep += 1
    return n_keep


@njit(cache=True, nogil=True)
def _first_nodes(vals, strings, string_node, node_seen, stamp, k, out, o):  # pragma: no cover - numba
    """The first k distinct nodes of strings ordered by score (descending, a stable sort),
    written to out[o:]. node_seen: a stamp per node, none equal to stamp yet. Returns the
    count and whether two of the first k + 1 distinct nodes have equal best scores."""
    n_out = 0
    tie = False
    if len(vals) == 0:
        return n_out, tie
    last = vals[0]
    for p in _argsort_desc(vals):
        node = string_node[strings[p]]
        if node_seen[node] == stamp:
            continue
        node_seen[node] = stamp
        if n_out > 0 and vals[p] == last:
            tie = True
        if n_out == k:
            break
        out[o + n_out] = node
        n_out += 1
        last = vals[p]
    return n_out, tie


@njit(cache=True, nogil=True)
def _top_nodes(
    q_ptr, q_idx, q_val, t_ptr, t_idx, t_val, m_ptr, m_idx, m_val, string_node, n_nodes, k, acc, pool
):  # pragma: no cover - numba
    """Lexical candidates of each query row of Q (CSR) against T (CSR, n-grams x strings,
    the pruned matrix) and M (CSR, strings x n-grams, the full matrix): the row of Q @ T
    (`_product_row`), its pool * k best strings (every string whose score equals the
    last stays), their full cosine Q[i] . M[s] (summed in float64 in M's column order),
    the first k distinct nodes of those by it (`_first_nodes`). Equal scores keep the
    product's column order, so the result does not depend on the CPU.
    acc: zeros, one per string. Returns indptr and nodes (int64)."""
    n_q = len(q_ptr) - 1
    n_str = len(string_node)
    touched = np.empty(n_str, dtype=np.int64)
    cols = np.empty(n_str, dtype=np.int64)
    vals = np.empty(n_str, dtype=acc.dtype)
    keep_s = np.empty(n_str, dtype=np.int64)
    keep_v = np.empty(n_str, dtype=np.float64)
    hist = np.zeros(2048, dtype=np.int64)
    q_dense = np.zeros(len(t_ptr) - 1, dtype=np.float64)
    node_seen = np.full(n_nodes, -1, dtype=np.int64)
    per_row = min(k, n_nodes)
    out = np.empty(n_q * min(per_row, 64), dtype=np.int64)
    out_ptr = np.zeros(n_q + 1, dtype=np.int64)
    o = 0
    for i in range(n_q):
        if o + per_row > len(out):
            grown = np.empty(max(2 * len(out), o + per_row), dtype=np.int64)
            grown[:o] = out[:o]
            out = grown
        nnz, hi = _product_row(q_ptr, q_idx, q_val, t_ptr, t_idx, t_val, i, acc, touched, cols, vals)
        kk = min(pool * k, nnz)
        if kk == nnz:  # all strings, in the product's order
            for p in range(nnz):
                keep_s[p] = cols[p]
            n_keep = nnz
        else:
            n_keep = _shortlist(cols, vals, nnz, hi, kk, hist, keep_s, keep_v)
        _load_row(q_dense, q_ptr, q_idx, q_val, i - 1, i)
        for p in range(n_keep):
            st = keep_s[p]
            v = 0.0
            for r in range(m_ptr[st], m_ptr[st + 1]):
                v += q_dense[m_idx[r]] * m_val[r]
            keep_v[p] = v
        n_out, _ = _first_nodes(keep_v[:n_keep], keep_s[:n_keep], string_node, node_seen, i, k, out, o)
        o += n_out
        out_ptr[i + 1] = o
    return out_ptr, out[:o]


def _normalize_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype="float32")
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms).astype("float32") @ m)


class Reranker:
    """Learned scoring of (query, candidate) pairs, fitted on development pairs.

    score = w . [lexical, node, recall, precision, leaf, memory,
                 lexical*node, lexical^2, node^2, memory*node, recall*precision]
            + sum of a weight per word of the candidate's string missing from the query
            + sum of a weight per word of the query missing from the candidate's string

    The word weights (over the lexical index's stemmed word vocabulary) learn a
    taxonomy's conventions, e.g. which qualifiers a coder assumes when the text does not
    say ("unspecified", "initial encounter"). Fitted as a softmax over each query's
    candidates with L2 penalties (`Reranker.fit`).
    """

    FEATURES = ("lexical", "node", "recall", "precision", "leaf", "memory")
    # pairwise products: a linear score cannot say "trust the node channel more when the
    # lexical match is weak" without them (P1 dev-fitted, test Acc@1 0.607 -> 0.614)
    PRODUCTS = (
        ("lexical", "node"),
        ("lexical", "lexical"),
        ("node", "node"),
        ("memory", "node"),
        ("recall", "precision"),
    )
    N_DENSE = len(FEATURES) + len(PRODUCTS)

    def __init__(self, dense: np.ndarray, label_words: np.ndarray, query_words: np.ndarray):
        dense = np.asarray(dense, dtype="float32")
        if dense.shape == (len(self.FEATURES),):  # saved before the products existed: same scores
            dense = np.concatenate([dense, np.zeros(len(self.PRODUCTS), dtype="float32")])
        self.dense = dense
        self.label_words = np.asarray(label_words, dtype="float32")
        self.query_words = np.asarray(query_words, dtype="float32")
        if self.dense.shape != (self.N_DENSE,):
            raise ValueError(f"Reranker: {self.N_DENSE} dense weights expected, got shape {self.dense.shape}.")

    @staticmethod
    def dense_features(feats: Dict[str, object]) -> np.ndarray:
        cols = [np.asarray(feats[k], dtype="float32") for k in Reranker.FEATURES]
        named = dict(zip(Reranker.FEATURES, cols))
        cols += [named[a] * named[b] for a, b in Reranker.PRODUCTS]
        return np.stack(cols, axis=1)

    @classmethod
    def dense_names(cls) -> List[str]:
        """Names of the dense weights, in order."""
        return list(cls.FEATURES) + [f"{a}*{b}" for a, b in cls.PRODUCTS]

    @classmethod
    def initial_dense(cls, fusion_weight: float) -> np.ndarray:
        """Dense weights that reproduce the fixed fusion (the fit's starting point)."""
        x = np.zeros(cls.N_DENSE)
        x[0], x[1] = 1.0 - fusion_weight, fusion_weight
        return x

    def score(self, feats: Dict[str, object]) -> np.ndarray:
        F = self.dense_features(feats)
        out = F @ self.dense
        lo, qo = feats["label_only"], feats["query_only"]
        if lo.shape[1] == len(self.label_words):
            out = out + lo @ self.label_words + qo @ self.query_words
        return np.asarray(out, dtype="float32")

    @classmethod
    def fit(
        cls,
        feats: Dict[str, object],
        bounds: np.ndarray,
        gold: np.ndarray,
        *,
        l2_dense: float = 1e-3,
        l2_words: float = 0.05,
        init: Optional[np.ndarray] = None,
        max_iter: int = 300,
    ) -> "Reranker":
        """Fit on candidate lists: softmax over each query's candidates, maximising the
        probability of its gold candidates.

        feats (Dict): `NodeIndex.pair_table` features of all pairs, queries contiguous.
        bounds (np.ndarray): pairs of query i are bounds[i]:bounds[i+1].
        gold (np.ndarray): bool per pair, True for a right candidate. Queries without a
            right candidate in their list carry no signal and are skipped.
        l2_dense, l2_words (float): L2 penalties (per query) on the dense and word weights.
        RETURNS (Reranker): the fitted reranker.
        """
        from scipy.optimize import minimize

        nq = len(bounds) - 1
        q_of = np.repeat(np.arange(nq), np.diff(bounds))
        has_gold = np.bincount(q_of, weights=gold.astype("float64"), minlength=nq) > 0
        keep = has_gold[q_of]
        if not has_gold.any():
            raise ValueError("Reranker.fit: no query has a right candidate in its list; nothing to learn from.")
        F = cls.dense_features(feats)[keep].astype("float64")
        LO = sp.csr_matrix(feats["label_only"])[keep].astype("float64")
        QO = sp.csr_matrix(feats["query_only"])[keep].astype("float64")
        g = gold[keep]
        _, q_idx = np.unique(q_of[keep], return_inverse=True)
        n_q = int(q_idx.max()) + 1
        d, V = F.shape[1], LO.shape[1]
        x0 = np.zeros(d + 2 * V)
        x0[:d] = init if init is not None else cls.initial_dense(0.5)

        def fun(x: np.ndarray) -> Tuple[float, np.ndarray]:
            w, a, b = x[:d], x[d : d + V], x[d + V :]
            z = F @ w + LO @ a + QO @ b
            zmax = np.full(n_q, -np.inf)
            np.maximum.at(zmax, q_idx, z)
            e = np.exp(z - zmax[q_idx])
            tot = np.bincount(q_idx, weights=e, minlength=n_q)
            pos = np.bincount(q_idx, weights=e * g, minlength=n_q)
            loss = -np.sum(np.log(pos / tot + 1e-300)) / n_q
            # d loss / d z = p - p_gold_normalised
            dz = (e / tot[q_idx] - g * e / pos[q_idx]) / n_q
            grad = np.concatenate([F.T @ dz, LO.T @ dz, QO.T @ dz])
            loss += 0.5 * l2_dense * np.sum(w**2) + 0.5 * l2_words * (np.sum(a**2) + np.sum(b**2))
            grad[:d] += l2_dense * w
            grad[d:] += l2_words * x[d:]
            return float(loss), grad

        res = minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
        x = res.x
        return cls(x[:d], x[d : d + V], x[d + V :])

    L2_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)

    @classmethod
    def select_l2(
        cls,
        feats: Dict[str, object],
        bounds: np.ndarray,
        gold: np.ndarray,
        *,
        grid: Sequence[float] = L2_GRID,
        init: Optional[np.ndarray] = None,
        seed: int = 0,
    ) -> Tuple[float, Dict[float, float]]:
        """The per-word L2 penalty with the best 2-fold cross-validated acc@1 over the
        queries (a seeded split; ties go to the larger penalty).

        RETURNS (Tuple[float, Dict[float, float]]): the penalty and the CV acc@1 of each.
        """
        nq = len(bounds) - 1
        if nq < 4:
            raise ValueError(f"Reranker.select_l2: {nq} queries are too few to cross-validate; pass l2_words.")
        folds = np.zeros(nq, dtype=bool)
        folds[np.random.default_rng(seed).permutation(nq)[: nq // 2]] = True
        parts = [_take_queries(feats, bounds, gold, np.flatnonzero(folds == f)) for f in (True, False)]
        scores: Dict[float, float] = {}
        for l2 in sorted(grid):
            hits = 0.0
            for (ftr, btr, gtr), (fte, bte, gte) in ((parts[0], parts[1]), (parts[1], parts[0])):
                if not gtr.any():
                    continue
                r = cls.fit(ftr, btr, gtr, l2_words=l2, init=init)
                hits += _acc1(r.score(fte), fte["ni"], bte, gte) * (len(bte) - 1)
            scores[float(l2)] = hits / nq
        return _largest_best(scores), scores

    @classmethod
    def select_l2_on(
        cls,
        feats: Dict[str, object],
        bounds: np.ndarray,
        gold: np.ndarray,
        val_feats: Dict[str, object],
        val_bounds: np.ndarray,
        val_gold: np.ndarray,
        *,
        grid: Sequence[float] = L2_GRID,
        init: Optional[np.ndarray] = None,
    ) -> Tuple[float, Dict[float, float]]:
        """The per-word L2 penalty whose reranker, fitted on all of (feats, bounds, gold),
        has the best acc@1 over the validation queries (ties go to the larger penalty).

        RETURNS (Tuple[float, Dict[float, float]]): the penalty and the validation acc@1 of each.
        """
        if len(val_bounds) < 2:
            raise ValueError("Reranker.select_l2_on: no validation queries.")
        scores = {
            float(l2): _acc1(
                cls.fit(feats, bounds, gold, l2_words=l2, init=init).score(val_feats),
                val_feats["ni"],
                val_bounds,
                val_gold,
            )
            for l2 in sorted(grid)
        }
        return _largest_best(scores), scores

    def to_dict(self) -> Dict[str, bytes]:
        return {
            "dense": _npy_bytes(self.dense),
            "label_words": _npy_bytes(self.label_words),
            "query_words": _npy_bytes(self.query_words),
        }

    @classmethod
    def from_dict(cls, msg: Dict[str, bytes]) -> "Reranker":
        return cls(_npy_load(msg["dense"]), _npy_load(msg["label_words"]), _npy_load(msg["query_words"]))


def _take_queries(
    feats: Dict[str, object], bounds: np.ndarray, gold: np.ndarray, queries: np.ndarray
) -> Tuple[Dict[str, object], np.ndarray, np.ndarray]:
    """The pair features, bounds and gold of some queries only (pairs stay contiguous)."""
    rows = np.concatenate(
        [np.arange(bounds[i], bounds[i + 1]) for i in queries] or [np.zeros(0, dtype="int64")]
    ).astype("int64")
    n_pairs = int(bounds[-1])
    out: Dict[str, object] = {}
    for key, v in feats.items():
        if key == "bounds":
            continue
        if sp.issparse(v) and v.shape[0] == n_pairs:
            out[key] = sp.csr_matrix(v)[rows]
        elif isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == n_pairs:
            out[key] = v[rows]
    sizes = np.asarray([bounds[i + 1] - bounds[i] for i in queries], dtype="int64")
    new_bounds = np.concatenate([[0], np.cumsum(sizes)]).astype("int64")
    out["bounds"] = new_bounds
    return out, new_bounds, gold[rows]


def _largest_best(scores: Dict[float, float]) -> float:
    """The largest penalty among those with the best score."""
    best = max(scores.values())
    return max(l2 for l2, v in scores.items() if v == best)


def _acc1(score: np.ndarray, ni: np.ndarray, bounds: np.ndarray, gold: np.ndarray) -> float:
    """Share of queries whose best-scored candidate (ties: lower node index) is right."""
    nq = len(bounds) - 1
    hits = 0
    for i in range(nq):
        a, e = bounds[i], bounds[i + 1]
        if e > a:
            hits += bool(gold[a + int(np.lexsort((ni[a:e], -score[a:e]))[0])])
    return hits / max(nq, 1)


class NodeIndex:
    """Annoy index over node space fused with the lexical channel.

    space (np.ndarray): (n_nodes, d) unit rows.
    lexical (LexicalIndex): the lexical channel.
    n_trees (int): annoy trees.
    seed (int): annoy seed.
    """

    def __init__(
        self,
        space: np.ndarray,
        lexical: LexicalIndex,
        *,
        n_trees: int = 20,
        seed: int = 0,
        annoy: Optional[AnnoyIndex] = None,
        reranker: Optional[Reranker] = None,
        is_leaf: Optional[np.ndarray] = None,
        memory: Optional[LexicalIndex] = None,
        ann_items: Optional[np.ndarray] = None,
    ):
        self.space = np.ascontiguousarray(space, dtype="float32")
        # the nodes annoy holds, in item order (None: every node); e.g. only the leaves when
        # only they can be linked to: a smaller index, and no over-fetching of filtered nodes
        self.ann_items = None if ann_items is None else np.asarray(ann_items, dtype="int64")
        # training phrases as extra lexical strings of their concepts (feature "memory")
        self.memory = memory
        self.reranker = reranker
        self.is_leaf = None if is_leaf is None else np.asarray(is_leaf, dtype=bool)
        self.lexical = lexical
        self.n_trees = int(n_trees)
        self.seed = int(seed)
        self.annoy = annoy if annoy is not None else self._build_annoy()

    @property
    def dim(self) -> int:
        return int(self.space.shape[1])

    def __len__(self) -> int:
        return int(self.space.shape[0])

    def _build_annoy(self) -> AnnoyIndex:
        idx = AnnoyIndex(self.dim, "angular")
        idx.set_seed(self.seed)
        rows = self.space if self.ann_items is None else self.space[self.ann_items]
        for i, row in enumerate(rows):
            idx.add_item(i, row)
        idx.build(self.n_trees, n_jobs=1)
        return idx

    def ann(self, y: np.ndarray, k: int, search_k: int = -1) -> List[int]:
        """Annoy neighbours of one vector (empty for a zero vector)."""
        if k <= 0 or not np.any(y):
            return []
        items = self.annoy.get_nns_by_vector(y, k, search_k=search_k)
        return items if self.ann_items is None else self.ann_items[items].tolist()

    def neighbours(self, node: int, k: int) -> List[int]:
        """Annoy neighbours of a node (itself excluded)."""
        if self.ann_items is None:
            return [j for j in self.annoy.get_nns_by_item(node, k + 1) if j != node][:k]
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
        allowed: Optional[np.ndarray] = None,
        leave_out_exact: bool = False,
    ) -> Dict[str, object]:
        """Candidates of each query and their features (see `search`).

        allowed (Optional[np.ndarray]): bool per node; only these nodes are candidates
            (e.g. the leaves, ICD-10-CM's billable codes).
        leave_out_exact (bool): calibration mode: the query's own string (identical text)
            is neither an exact-match candidate nor counted in the lexical features.
        RETURNS (Dict): "qi", "ni" (query and node of each pair, queries contiguous),
            "bounds", "exact" (bool per pair), "fused" (the fixed fusion score), and the
            `LexicalIndex.pair_features` plus "node" (cosine in node space) and "leaf".
        """
        b = len(texts)
        if Y.shape[0] != b:
            raise ValueError(f"search got {Y.shape[0]} vectors but {b} texts.")
        Yn = l2_normalize(Y)
        lexical = self.lexical
        q = lexical.transform(texts)
        qw, q_idf = lexical.word_transform(texts)
        # annoy holds only the candidates, or is asked for more when some are filtered out;
        # the lexical channels rank only the allowed nodes' strings
        ann_over = 1 if self.ann_items is not None or allowed is None else 2
        use_lex = fusion_weight < 1.0 or self.reranker is not None
        lex = lexical.retrieve(q, lexical_candidates, allowed) if use_lex else [np.zeros(0, dtype="int64")] * b
        exact = [np.zeros(0, dtype="int64")] * b if leave_out_exact else lexical.exact_matches(texts)
        memory = self.memory
        if memory is not None:
            qm = memory.transform(texts)
            mem = memory.retrieve(qm, lexical_candidates, allowed)
        else:
            mem = [np.zeros(0, dtype="int64")] * b
        use_ann = fusion_weight > 0.0 or self.reranker is not None
        parts = [
            lex,
            exact,
            mem,
            [np.asarray(self.ann(Yn[i], ann_candidates * ann_over, search_k), dtype="int64") for i in range(b)]
            if use_ann
            else [],
        ]
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
        feats = lexical.pair_features(q, qw, q_idf, qi, ni, leave_out_exact=leave_out_exact)
        feats["node"] = self._node_cosines(Yn, qi, ni)
        feats["leaf"] = (
            self.is_leaf[ni].astype("float32") if self.is_leaf is not None else np.zeros(len(ni), dtype="float32")
        )
        feats["memory"] = memory.pair_scores(qm, qi, ni) if memory is not None else np.zeros(len(ni), dtype="float32")
        ex_keys = np.concatenate(
            [i * n_nodes + np.asarray(e, dtype="int64") for i, e in enumerate(exact) if len(e)]
            or [np.zeros(0, dtype="int64")]
        )
        ex = np.isin(qi * n_nodes + ni, ex_keys) if len(ex_keys) else np.zeros(len(ni), dtype=bool)
        feats.update(
            qi=qi,
            ni=ni,
            exact=ex,
            bounds=np.searchsorted(qi, np.arange(b + 1)).astype("int64"),
            fused=(fusion_weight * feats["node"] + (1.0 - fusion_weight) * feats["lexical"]).astype("float32"),
        )
        return feats

    def _node_cosines(self, Yn: np.ndarray, qi: np.ndarray, ni: np.ndarray) -> np.ndarray:
        """Yn[qi] . space[ni] per pair, PAIR_BLOCK pairs at a time: the gathered rows of
        a whole chunk's pairs took 20 MB per search thread (256 queries, 76 pairs each)."""
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
        allowed: Optional[np.ndarray] = None,
        threshold: Optional[float] = None,
    ) -> List[List[Tuple[int, float]]]:
        """Ranked (node index, score) per query.

        Without a reranker the score is `fusion_weight * cos_node + (1 - fusion_weight) *
        cos_lexical`. With a fitted reranker (`calibrate`), candidates are ordered by its
        score (exact matches of a normalised string first) and the score shown is the
        reranker's probability among the query's candidates.

        Y (np.ndarray): (b, d) mapper outputs (any norm; zero rows use only the lexical channel).
        texts (Sequence[str]): the query strings (for the lexical channel).
        k (int): results per query.
        ann_candidates (int): candidates from annoy.
        lexical_candidates (int): candidates from the lexical inverted index.
        fusion_weight (float): a in the fixed fusion above.
        search_k (int): annoy search_k (-1: annoy default).
        allowed (Optional[np.ndarray]): bool per node: only these can be returned.
        threshold (Optional[float]): candidates whose similarity (the larger of the fixed
            fusion score and the lexical cosine) is below this are dropped; a query left
            with none is NIL.
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
            allowed=allowed,
        )
        ni, bounds, fused = t["ni"], t["bounds"], t["fused"]
        if self.reranker is not None:
            order_score = self.reranker.score(t) + EXACT_BONUS * t["exact"]
        else:
            order_score = fused
        # the evidence a candidate needs: its best similarity, lexical or fused (in [0, 1])
        keep = np.maximum(fused, t["lexical"]) >= threshold if threshold is not None else np.ones(len(ni), dtype=bool)
        out: List[List[Tuple[int, float]]] = []
        for i in range(b):
            a, e = bounds[i], bounds[i + 1]
            m = keep[a:e]
            nodes, z = ni[a:e][m], order_score[a:e][m]
            if self.reranker is not None and len(z):
                p = np.exp(z - z.max())
                shown = p / p.sum()
            else:
                shown = z
            order = np.lexsort((nodes, -z))[:k]
            out.append([(int(nodes[j]), float(shown[j])) for j in order])
        return out

    # serialization -------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        with make_tempdir() as tmp:
            self.annoy.save(str(tmp / "annoy.ann"))
            annoy_bytes = (tmp / "annoy.ann").read_bytes()
        msg = {
            "cfg": {"n_trees": self.n_trees, "seed": self.seed, "dim": self.dim},
            "space": _npy_bytes(self.space),
            "annoy": annoy_bytes,
            "lexical": self.lexical.to_dict(),
        }
        if self.reranker is not None:
            msg["reranker"] = self.reranker.to_dict()
        if self.is_leaf is not None:
            msg["is_leaf"] = _npy_bytes(self.is_leaf)
        if self.memory is not None:
            msg["memory"] = self.memory.to_dict()
        if self.ann_items is not None:
            msg["ann_items"] = _npy_bytes(self.ann_items)
        return srsly.msgpack_dumps(msg)

    @classmethod
    def from_bytes(cls, data: bytes) -> "NodeIndex":
        from .pipeline.manifest import BYTES_FIX, check_annoy_loaded, check_annoy_size, load_step

        def step(part: str):
            return load_step(f"node index (serialized bytes), part '{part}'", f"the {part}", fix=BYTES_FIX)

        with step("index"):
            msg = srsly.msgpack_loads(data)
            cfg, annoy_bytes = msg["cfg"], msg["annoy"]
        with step("space"):
            space = _npy_load(msg["space"])
        ann_items = _npy_load(msg["ann_items"]) if "ann_items" in msg else None
        n_items = len(space) if ann_items is None else len(ann_items)
        check_annoy_size("node index (serialized bytes), part 'annoy'", len(annoy_bytes), cfg["dim"], n_items)
        annoy = AnnoyIndex(cfg["dim"], "angular")
        with step("annoy"), make_tempdir() as tmp:
            (tmp / "annoy.ann").write_bytes(annoy_bytes)
            annoy.load(str(tmp / "annoy.ann"), prefault=True)  # mmap stays valid after unlink
        check_annoy_loaded("node index (serialized bytes), part 'annoy'", annoy, n_items)
        with step("reranker"):
            reranker = Reranker.from_dict(msg["reranker"]) if "reranker" in msg else None
        is_leaf = _npy_load(msg["is_leaf"]) if "is_leaf" in msg else None
        with step("lexical index"):
            memory = LexicalIndex.from_dict(msg["memory"]) if "memory" in msg else None
            lexical = LexicalIndex.from_dict(msg["lexical"])
        return cls(
            space,
            lexical,
            n_trees=cfg["n_trees"],
            seed=cfg["seed"],
            annoy=annoy,
            reranker=reranker,
            is_leaf=is_leaf,
            memory=memory,
            ann_items=ann_items,
        )

    def to_disk(self, path: Union[str, Path]) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / "space.npy", self.space, allow_pickle=False)
        self.annoy.save(str(path / "annoy.ann"))
        # the annoy file's size is checked before annoy maps it (a damaged one can crash the process)
        srsly.write_json(
            path / "cfg.json",
            {
                "n_trees": self.n_trees,
                "seed": self.seed,
                "dim": self.dim,
                "annoy_bytes": (path / "annoy.ann").stat().st_size,
            },
        )
        lex = path / "lexical"
        lex.mkdir(exist_ok=True)
        for key, value in self.lexical.to_dict().items():
            (lex / key).write_bytes(value)
        if self.is_leaf is not None:
            np.save(path / "is_leaf.npy", self.is_leaf, allow_pickle=False)
        if (path / "ann_items.npy").exists():
            (path / "ann_items.npy").unlink()
        if self.ann_items is not None:
            np.save(path / "ann_items.npy", self.ann_items, allow_pickle=False)
        mem = path / "memory"
        if mem.exists():
            shutil.rmtree(mem)
        if self.memory is not None:
            mem.mkdir()
            for key, value in self.memory.to_dict().items():
                (mem / key).write_bytes(value)
        rr = path / "reranker"
        if rr.exists():  # never leave a stale reranker from an earlier save
            shutil.rmtree(rr)
        if self.reranker is not None:
            rr.mkdir()
            for key, value in self.reranker.to_dict().items():
                (rr / key).write_bytes(value)

    @classmethod
    def from_disk(cls, path: Union[str, Path]) -> "NodeIndex":
        path = Path(path)
        for name in ("cfg.json", "space.npy", "annoy.ann", "lexical"):
            if not (path / name).exists():
                raise ValueError(
                    f"{path / name} is missing: the linker index at {path} is incomplete; re-save the pipeline."
                )
        from .pipeline.manifest import check_annoy_loaded, check_annoy_size, load_step

        def npy(name: str) -> Optional[np.ndarray]:
            if not (path / name).exists():
                return None
            with load_step(path / name, "an array of the linker index"):
                return np.load(path / name, allow_pickle=False)

        def parts(name: str, what: str, make):
            if not (path / name).exists():
                return None
            with load_step(path / name, what):
                return make({p.name: p.read_bytes() for p in (path / name).iterdir()})

        with load_step(path / "cfg.json", "the index settings"):
            cfg = srsly.read_json(path / "cfg.json")
            dim, n_trees, seed = int(cfg["dim"]), cfg["n_trees"], cfg["seed"]
        space, ann_items = npy("space.npy"), npy("ann_items.npy")
        n_items = len(space) if ann_items is None else len(ann_items)
        ann = path / "annoy.ann"
        check_annoy_size(ann, ann.stat().st_size, dim, n_items, cfg.get("annoy_bytes"))
        annoy = AnnoyIndex(dim, "angular")
        with load_step(ann, "the annoy index"):
            annoy.load(str(ann))
        check_annoy_loaded(ann, annoy, n_items)
        lexical = parts("lexical", "the lexical index", LexicalIndex.from_dict)
        memory = parts("memory", "the lexical index of training phrases", LexicalIndex.from_dict)
        reranker = parts("reranker", "the reranker", Reranker.from_dict)
        return cls(
            space,
            lexical,
            n_trees=n_trees,
            seed=seed,
            annoy=annoy,
            reranker=reranker,
            is_leaf=npy("is_leaf.npy"),
            memory=memory,
            ann_items=ann_items,
        )
