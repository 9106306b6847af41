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

import io
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.sparse as sp
import srsly
from annoy import AnnoyIndex
from spacy.util import make_tempdir

logger = logging.getLogger(__name__)

_WORD = re.compile(r"\w+", re.UNICODE)
# n-grams in at most this many strings are always used for lexical retrieval
MIN_DF_CAP = 100


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


def char_ngrams(text: str, n: int = 3) -> List[str]:
    """Character n-grams of each word padded with spaces (scikit-learn's `char_wb`)."""
    out: List[str] = []
    for w in words(text):
        w = f" {w} "
        if len(w) <= n:
            out.append(w)
        else:
            out.extend(w[i : i + n] for i in range(len(w) - n + 1))
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
            raise ValueError(
                f"text_vectors has {len(text_vectors)} rows but node_vectors has {len(node_vectors)}."
            )
        tw = 1.0 if node_vectors is None else text_weight
        parts.append(np.sqrt(tw) * l2_normalize(text_vectors))
    return l2_normalize(np.concatenate(parts, axis=1))


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

    def __init__(self, vocab: Dict[str, int], idf: np.ndarray, matrix: sp.csr_matrix, string_node: np.ndarray, n_nodes: int, max_df: float = 0.03, exact: Optional[Dict[str, List[int]]] = None):
        self.vocab = vocab
        self.exact: Dict[str, List[int]] = exact or {}
        self.idf = np.asarray(idf, dtype="float32")
        self.matrix = matrix.tocsr().astype("float32")
        self.string_node = np.asarray(string_node, dtype="int32")
        self.n_nodes = int(n_nodes)
        self.max_df = float(max_df)
        self._prepare()

    def _prepare(self) -> None:
        n_strings = self.matrix.shape[0]
        df = np.bincount(self.matrix.indices, minlength=self.matrix.shape[1])
        keep = df <= max(MIN_DF_CAP, self.max_df * n_strings)
        pruned = self.matrix @ sp.diags(keep.astype("float32"))
        self._retrieval_T = sp.csr_matrix(pruned.T)
        self._retrieval_T.eliminate_zeros()
        order = np.argsort(self.string_node, kind="stable")
        counts = np.bincount(self.string_node, minlength=self.n_nodes)
        self._node_indptr = np.concatenate([[0], np.cumsum(counts)]).astype("int64")
        self._node_strings = order.astype("int64")

    @classmethod
    def build(cls, texts: Sequence[str], string_node: Sequence[int], n_nodes: int, *, max_df: float = 0.03) -> "LexicalIndex":
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
        m = sp.csr_matrix((np.asarray(data, dtype="float32"), np.asarray(indices, dtype="int32"), np.asarray(indptr, dtype="int64")), shape=(len(texts), len(vocab)))
        df = np.bincount(m.indices, minlength=len(vocab)).astype("float64")
        idf = (np.log((1 + len(texts)) / (1 + df)) + 1.0).astype("float32")
        m = _normalize_rows(m @ sp.diags(idf))
        exact: Dict[str, List[int]] = {}
        for t, node in zip(texts, string_node):
            key = normalize_text(t)
            if key:
                nodes = exact.setdefault(key, [])
                if int(node) not in nodes:
                    nodes.append(int(node))
        return cls(vocab, idf, m, np.asarray(string_node), n_nodes, max_df=max_df, exact=exact)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """L2-normalised TF-IDF rows of query strings (unknown n-grams are ignored)."""
        indptr = [0]
        indices: List[int] = []
        data: List[float] = []
        vocab = self.vocab
        for t in texts:
            c = Counter(g for g in char_ngrams(t) if g in vocab)
            for g, v in c.items():
                indices.append(vocab[g])
                data.append(float(v))
            indptr.append(len(indices))
        q = sp.csr_matrix((np.asarray(data, dtype="float32"), np.asarray(indices, dtype="int32"), np.asarray(indptr, dtype="int64")), shape=(len(texts), len(vocab)))
        return _normalize_rows(q @ sp.diags(self.idf))

    def exact_matches(self, texts: Sequence[str]) -> List[np.ndarray]:
        """Nodes with a string equal to each query after normalisation (case, punctuation)."""
        return [np.asarray(self.exact.get(normalize_text(t), ()), dtype="int64") for t in texts]

    def retrieve(self, q: sp.csr_matrix, k: int) -> List[np.ndarray]:
        """Top-k node candidates per query by the pruned (informative n-gram) score."""
        if k <= 0:
            return [np.zeros(0, dtype="int64") for _ in range(q.shape[0])]
        s = (q @ self._retrieval_T).tocsr()
        out = []
        for i in range(s.shape[0]):
            a, b = s.indptr[i], s.indptr[i + 1]
            if a == b:
                out.append(np.zeros(0, dtype="int64"))
                continue
            vals = s.data[a:b]
            cols = s.indices[a:b]
            kk = min(k * 3, b - a)
            top = np.argpartition(-vals, kk - 1)[:kk] if kk < b - a else np.arange(b - a)
            nodes = self.string_node[cols[top]]
            order = np.argsort(-vals[top], kind="stable")
            nodes = nodes[order]
            _, first = np.unique(nodes, return_index=True)
            out.append(nodes[np.sort(first)][:k].astype("int64"))
        return out

    def pair_scores(self, q: sp.csr_matrix, q_idx: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Exact lexical cosine for (query, node) pairs: max over the node's strings."""
        if len(nodes) == 0:
            return np.zeros(0, dtype="float32")
        starts = self._node_indptr[nodes]
        counts = self._node_indptr[nodes + 1] - starts
        total = int(counts.sum())
        scores = np.zeros(len(nodes), dtype="float32")
        if total == 0:
            return scores
        pair_of = np.repeat(np.arange(len(nodes)), counts)
        offs = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        strings = self._node_strings[np.repeat(starts, counts) + offs]
        m = self.matrix[strings]
        qq = q[q_idx[pair_of]]
        sims = np.asarray(m.multiply(qq).sum(axis=1)).ravel().astype("float32")
        np.maximum.at(scores, pair_of, sims)
        return scores

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
            "cfg": srsly.json_dumps({"n_nodes": self.n_nodes, "max_df": self.max_df, "shape": list(m.shape)}).encode("utf8"),
        }

    @classmethod
    def from_dict(cls, msg: Dict[str, bytes]) -> "LexicalIndex":
        vocab_list = srsly.json_loads(msg["vocab"].decode("utf8"))
        cfg = srsly.json_loads(msg["cfg"].decode("utf8"))
        m = sp.csr_matrix((_npy_load(msg["data"]), _npy_load(msg["indices"]), _npy_load(msg["indptr"])), shape=tuple(cfg["shape"]))
        exact = srsly.json_loads(msg["exact"].decode("utf8")) if "exact" in msg else {}
        return cls({g: j for j, g in enumerate(vocab_list)}, _npy_load(msg["idf"]), m, _npy_load(msg["string_node"]), cfg["n_nodes"], max_df=cfg["max_df"], exact=exact)


def _normalize_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype="float32")
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms).astype("float32") @ m)


class NodeIndex:
    """Annoy index over node space fused with the lexical channel.

    space (np.ndarray): (n_nodes, d) unit rows.
    lexical (LexicalIndex): the lexical channel.
    n_trees (int): annoy trees.
    seed (int): annoy seed.
    """

    def __init__(self, space: np.ndarray, lexical: LexicalIndex, *, n_trees: int = 20, seed: int = 0, annoy: Optional[AnnoyIndex] = None):
        self.space = np.ascontiguousarray(space, dtype="float32")
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
        for i, row in enumerate(self.space):
            idx.add_item(i, row)
        idx.build(self.n_trees, n_jobs=1)
        return idx

    def ann(self, y: np.ndarray, k: int, search_k: int = -1) -> List[int]:
        """Annoy neighbours of one vector (empty for a zero vector)."""
        if k <= 0 or not np.any(y):
            return []
        return self.annoy.get_nns_by_vector(y, k, search_k=search_k)

    def neighbours(self, node: int, k: int) -> List[int]:
        """Annoy neighbours of a node (itself excluded)."""
        return [j for j in self.annoy.get_nns_by_item(node, k + 1) if j != node][:k]

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
    ) -> List[List[Tuple[int, float]]]:
        """Ranked (node index, fused score) per query.

        Y (np.ndarray): (b, d) mapper outputs (any norm; zero rows use only the lexical channel).
        texts (Sequence[str]): the query strings (for the lexical channel).
        k (int): results per query.
        ann_candidates (int): candidates from annoy.
        lexical_candidates (int): candidates from the lexical inverted index.
        fusion_weight (float): a in `a * cos_node + (1 - a) * cos_lexical`.
        search_k (int): annoy search_k (-1: annoy default).
        RETURNS (List[List[Tuple[int, float]]]): best first; ties broken by node index.
        """
        b = len(texts)
        if Y.shape[0] != b:
            raise ValueError(f"search got {Y.shape[0]} vectors but {b} texts.")
        if b == 0:
            return []
        Yn = l2_normalize(Y)
        q = self.lexical.transform(texts)
        lex = self.lexical.retrieve(q, lexical_candidates) if fusion_weight < 1.0 else [np.zeros(0, dtype="int64")] * b
        exact = self.lexical.exact_matches(texts)
        q_list = []
        n_list = []
        for i in range(b):
            cands = self.ann(Yn[i], ann_candidates, search_k) if fusion_weight > 0.0 else []
            c = np.unique(np.concatenate([np.asarray(cands, dtype="int64"), lex[i], exact[i]]))
            q_list.append(np.full(len(c), i, dtype="int64"))
            n_list.append(c)
        qi = np.concatenate(q_list)
        ni = np.concatenate(n_list)
        cos_node = np.einsum("ij,ij->i", Yn[qi], self.space[ni]) if len(ni) else np.zeros(0, dtype="float32")
        cos_lex = self.lexical.pair_scores(q, qi, ni) if fusion_weight < 1.0 else np.zeros(len(ni), dtype="float32")
        fused = (fusion_weight * cos_node + (1.0 - fusion_weight) * cos_lex).astype("float32")
        out: List[List[Tuple[int, float]]] = []
        bounds = np.concatenate([[0], np.cumsum([len(c) for c in n_list])])
        for i in range(b):
            a, e = bounds[i], bounds[i + 1]
            f = fused[a:e]
            nodes = ni[a:e]
            order = np.lexsort((nodes, -f))[:k]
            out.append([(int(nodes[j]), float(f[j])) for j in order])
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
        return srsly.msgpack_dumps(msg)

    @classmethod
    def from_bytes(cls, data: bytes) -> "NodeIndex":
        msg = srsly.msgpack_loads(data)
        cfg = msg["cfg"]
        annoy = AnnoyIndex(cfg["dim"], "angular")
        with make_tempdir() as tmp:
            (tmp / "annoy.ann").write_bytes(msg["annoy"])
            annoy.load(str(tmp / "annoy.ann"), prefault=True)  # mmap stays valid after unlink
        return cls(_npy_load(msg["space"]), LexicalIndex.from_dict(msg["lexical"]), n_trees=cfg["n_trees"], seed=cfg["seed"], annoy=annoy)

    def to_disk(self, path: Union[str, Path]) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "cfg.json", {"n_trees": self.n_trees, "seed": self.seed, "dim": self.dim})
        np.save(path / "space.npy", self.space, allow_pickle=False)
        self.annoy.save(str(path / "annoy.ann"))
        lex = path / "lexical"
        lex.mkdir(exist_ok=True)
        for key, value in self.lexical.to_dict().items():
            (lex / key).write_bytes(value)

    @classmethod
    def from_disk(cls, path: Union[str, Path]) -> "NodeIndex":
        path = Path(path)
        for name in ("cfg.json", "space.npy", "annoy.ann", "lexical"):
            if not (path / name).exists():
                raise ValueError(f"{path / name} is missing: the linker index at {path} is incomplete; re-save the pipeline.")
        cfg = srsly.read_json(path / "cfg.json")
        annoy = AnnoyIndex(cfg["dim"], "angular")
        annoy.load(str(path / "annoy.ann"))
        lex = {p.name: p.read_bytes() for p in (path / "lexical").iterdir()}
        return cls(np.load(path / "space.npy", allow_pickle=False), LexicalIndex.from_dict(lex), n_trees=cfg["n_trees"], seed=cfg["seed"], annoy=annoy)
