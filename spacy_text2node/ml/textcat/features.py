"""LexicalDense's feature layer: docs -> hashed word and character n-gram TF-IDF.

Words are hashed once per model into a `_WordTable` (their unigram bucket and
the buckets of their character n-grams); word n-grams are hashed per batch. The
TF-IDF weights come from the numba kernel in `kernels`. The IDF is a param of the
layer, either counted while training (running document frequencies) or fitted
on the whole corpus by `fitting.fit_idf`.
"""

from typing import List, Optional

import numpy as np
import scipy.sparse as sp
from murmurhash import hash_unicode
from spacy.attrs import IDS as ATTR_IDS
from spacy.tokens import Doc
from thinc.api import Model, NumpyOps
from thinc.model import serialize_attr

from .kernels import _map_insert, _map_lookup, _tfidf_kernel
from .util import _param, _set_param

LEXICAL_FEATURES = "text2node_lexical_features"

_CHAR_SEED = 7
_WORD_SEED = 11
_BIGRAM_SEED = 13
_MAX_CACHE = 2_000_000


def lexical_features(
    *,
    n_buckets: int,
    ngram_size: int,
    char_min: int,
    char_max: int,
    attr: str,
    min_df: int = 1,
) -> Model[List[Doc], sp.csr_matrix]:
    """Docs -> sparse (docs x n_buckets) sublinear TF-IDF matrix.

    Params: idf, df (n_buckets,) and ndocs (1,), with no gradient (the optimizer
    leaves them alone); all travel with `model.to_bytes()`.
    """
    attr_id = ATTR_IDS.get(attr.upper())
    if attr_id is None:
        raise ValueError(f"Unknown token attribute {attr!r}: use LOWER, NORM or ORTH")
    return Model(
        LEXICAL_FEATURES,
        _features_forward,
        init=_features_init,
        dims={"nB": n_buckets, "nO": n_buckets},
        params={"idf": None, "df": None, "ndocs": None},
        attrs={
            "ngram_size": ngram_size,
            "char_min": char_min,
            "char_max": char_max,
            "attr_id": int(attr_id),
            "idf_fixed": False,
            "min_df": int(min_df),
        },
    )


def _features_init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    nB = model.get_dim("nB")
    _set_param(model, "idf", np.ones((nB,), dtype="float32"))
    _set_param(model, "df", np.zeros((nB,), dtype="float32"))
    _set_param(model, "ndocs", np.zeros((1,), dtype="float32"))
    if X:
        _update_df(model, list(X))
    return model


def _features_forward(model: Model, docs: List[Doc], is_train: bool):
    if is_train and not model.attrs["idf_fixed"]:
        _update_df(model, docs)
    X = _tfidf_matrix(model, docs)

    def backprop(dX) -> List[Doc]:
        return []

    return X, backprop


class _WordTable:
    """Per model: word key -> (unigram bucket, character n-gram buckets), grown as
    new words arrive, so each word's character n-grams are hashed once."""

    def __init__(self, nB: int, cmin: int, cmax: int):
        self.nB, self.cmin, self.cmax = nB, cmin, cmax
        self.map_keys = np.zeros((4096,), dtype="uint64")
        self.map_vals = np.full((4096,), -1, dtype="int64")
        self.keys = np.zeros((1024,), dtype="uint64")
        self.unigram = np.zeros((1024,), dtype="int64")
        self.char_ptr = np.zeros((1025,), dtype="int64")
        self.char_idx = np.zeros((16384,), dtype="int64")
        self.n = 0

    def __deepcopy__(self, memo: dict) -> "_WordTable":
        return _WordTable(self.nB, self.cmin, self.cmax)

    def __reduce__(self):
        return (_WordTable, (self.nB, self.cmin, self.cmax))

    def lookup(self, keys: np.ndarray, strings) -> np.ndarray:
        """Word ids of token keys (an open-addressing hash map, looked up in numba)."""
        wids = np.empty(len(keys), dtype="int64")
        _map_lookup(keys, self.map_keys, self.map_vals, wids)
        missing = wids < 0
        if missing.any():
            new = np.unique(keys[missing])
            self._add(new, strings)
            if 2 * self.n > len(self.map_keys):
                cap = len(self.map_keys)
                while 2 * self.n > cap:
                    cap *= 2
                self.map_keys = np.zeros((cap,), dtype="uint64")
                self.map_vals = np.full((cap,), -1, dtype="int64")
                _map_insert(self.keys[: self.n], np.arange(self.n, dtype="int64"), self.map_keys, self.map_vals)
            else:
                _map_insert(new, np.arange(self.n - len(new), self.n, dtype="int64"), self.map_keys, self.map_vals)
            sub = np.empty(int(missing.sum()), dtype="int64")
            _map_lookup(keys[missing], self.map_keys, self.map_vals, sub)
            wids[missing] = sub
        return wids

    def _add(self, keys: np.ndarray, strings) -> None:
        nB, cmin, cmax = self.nB, self.cmin, self.cmax
        n0, k = self.n, len(keys)
        uni = _hash_keys(keys, _WORD_SEED, nB)
        grams_per_word = []
        for key in keys.tolist():
            if cmax:
                w = f"<{strings[key]}>"
                grams = [w[i : i + n] for n in range(cmin, cmax + 1) for i in range(len(w) - n + 1)] or [w]
                grams_per_word.append([hash_unicode(g, _CHAR_SEED) % nB for g in grams])
            else:
                grams_per_word.append([])
        lens = np.asarray([len(g) for g in grams_per_word], dtype="int64")
        flat = np.fromiter((b for g in grams_per_word for b in g), dtype="int64", count=int(lens.sum()))
        while n0 + k + 1 > len(self.char_ptr):
            self.unigram = np.concatenate([self.unigram, np.zeros_like(self.unigram)])
            self.keys = np.concatenate([self.keys, np.zeros_like(self.keys)])
            self.char_ptr = np.concatenate([self.char_ptr, np.zeros(len(self.char_ptr), dtype="int64")])
        end = int(self.char_ptr[n0])
        while end + len(flat) > len(self.char_idx):
            self.char_idx = np.concatenate([self.char_idx, np.zeros_like(self.char_idx)])
        self.unigram[n0 : n0 + k] = uni
        self.keys[n0 : n0 + k] = keys
        self.char_ptr[n0 + 1 : n0 + k + 1] = end + np.cumsum(lens)
        self.char_idx[end : end + len(flat)] = flat
        self.n = n0 + k


_TABLE_ATTR = "word_table"


@serialize_attr.register(_WordTable)
def _skip_word_table(_: _WordTable, value: _WordTable, name: str, model: Model) -> bytes:
    # thinc leaves out of `Model.to_bytes` the attrs whose serializer raises TypeError
    raise TypeError("the word table is a cache: rebuilt from the vocab, never serialized")


def _word_table(model: Model) -> _WordTable:
    """The word table of a feature layer, held in its attrs so that it is freed
    with the layer. It is a cache: left out of serialization, and a copy of the
    layer (`Model.copy`, `copy.deepcopy`) starts an empty one."""
    table = model.attrs.get(_TABLE_ATTR)
    if table is None or table.n > _MAX_CACHE:
        a = model.attrs
        table = a[_TABLE_ATTR] = _WordTable(model.get_dim("nB"), a["char_min"], a["char_max"])
    return table


_NUMPY_OPS = NumpyOps()
# 1 + ln(tf) for small counts, looked up instead of computed
_SUBLINEAR = np.concatenate([[0.0], 1.0 + np.log(np.arange(1, 1024, dtype="float64"))])


def _hash_keys(keys: np.ndarray, seed: int, nB: int) -> np.ndarray:
    return _NUMPY_OPS.hash(np.ascontiguousarray(keys, dtype="uint64"), seed)[:, 0].astype("int64") % nB


_NO_TABLE = np.zeros((0, 1), dtype="float32")
_NO_DENSE = np.zeros((0, 1), dtype="float32")
_NO_VALUES = np.zeros((0,), dtype="float32")


def _tfidf_matrix(model: Model, docs: List[Doc], idf: Optional[np.ndarray] = None, table: Optional[np.ndarray] = None):
    """The sublinear TF-IDF matrix of a batch, (docs x nB) CSR; or, given a
    (nB x k) `table`, its product with the table, (docs x k) dense, computed
    without building the matrix.

    Weights are (1 + ln tf) * idf. The word block (word 1..n-grams) and the
    character block (n-grams of "<word>") of each row are L2-normalised apart (as a
    union of two TF-IDF vectorizers would be), so the far more numerous character
    n-grams do not drown the words. A bucket that both blocks hit appears twice in
    its row (products sum them). Buckets with idf 0 (below min_df) are left out.
    """
    nB = model.get_dim("nB")
    a = model.attrs
    n = len(docs)
    if idf is None:
        idf = _param(model, "idf")
    keys_per_doc = [d.to_array(a["attr_id"]).astype("uint64", copy=False).reshape(-1) for d in docs]
    lengths = np.asarray([len(k) for k in keys_per_doc], dtype="int64")
    total = int(lengths.sum())
    if total == 0:
        if table is not None:
            return np.zeros((n, table.shape[1]), dtype="float32")
        return sp.csr_matrix((n, nB), dtype="float32")
    doc_ptr = np.zeros(n + 1, dtype="int64")
    np.cumsum(lengths, out=doc_ptr[1:])
    flat = np.concatenate(keys_per_doc)
    words = _word_table(model)
    tok_wid = words.lookup(flat, docs[0].vocab.strings)
    ngram_size = a["ngram_size"]
    n_ng = max(ngram_size - 1, 0)
    ngrams = np.full((total, n_ng), -1, dtype="int64")
    if n_ng:
        doc_ids = np.repeat(np.arange(n, dtype="int64"), lengths)
        for size in range(2, ngram_size + 1):
            m = total - size + 1
            if m <= 0:
                continue
            valid = doc_ids[:m] == doc_ids[size - 1 :]
            combo = flat[:m].copy()
            for j in range(1, size):
                combo = combo * np.uint64(1000003) ^ flat[j : m + j]
            col = np.full((total,), -1, dtype="int64")
            col[:m][valid] = _hash_keys(combo[valid], _BIGRAM_SEED + size, nB)
            ngrams[:, size - 2] = col
    idf = np.ascontiguousarray(idf, dtype="float32")
    out_ptr = np.zeros(n + 1, dtype="int64")
    # the kernel's inputs, the same for both outputs (a dense projection or sparse rows)
    inputs = (
        doc_ptr,
        tok_wid,
        words.n,
        words.unigram,
        ngrams,
        words.char_ptr,
        words.char_idx,
        idf,
        ngram_size >= 1,
        bool(a["char_max"]),
    )
    if table is not None:
        dense = np.zeros((n, table.shape[1]), dtype="float32")
        _tfidf_kernel(
            *inputs,
            out_ptr,
            out_ptr,
            _NO_VALUES,
            _SUBLINEAR,
            np.ascontiguousarray(table, dtype="float32"),
            dense,
        )
        return dense
    char_len = words.char_ptr[1 : words.n + 1] - words.char_ptr[: words.n]
    cap = total * (1 + n_ng) + int(char_len[tok_wid].sum())
    out_idx = np.empty(cap, dtype="int64")
    out_val = np.empty(cap, dtype="float32")
    nnz = _tfidf_kernel(
        *inputs,
        out_ptr,
        out_idx,
        out_val,
        _SUBLINEAR,
        _NO_TABLE,
        _NO_DENSE,
    )
    return sp.csr_matrix((out_val[:nnz], out_idx[:nnz].astype("int32"), out_ptr), shape=(n, nB))


def _doc_freq(model: Model, docs: List[Doc], batch_size: int = 512) -> np.ndarray:
    nB = model.get_dim("nB")
    df = np.zeros((nB,), dtype="float64")
    ones = np.ones((nB,), dtype="float32")
    for i in range(0, len(docs), batch_size):
        X = _tfidf_matrix(model, docs[i : i + batch_size], idf=ones)
        # a bucket can be in both blocks of one doc: count the doc once
        rows = np.repeat(np.arange(X.shape[0], dtype="int64"), np.diff(X.indptr))
        pairs = np.unique(rows * nB + X.indices)
        df += np.bincount(pairs % nB, minlength=nB)
    return df.astype("float32")


def _update_df(model: Model, docs: List[Doc]) -> None:
    df = _param(model, "df")
    df += _doc_freq(model, docs)
    ndocs = _param(model, "ndocs")
    ndocs[0] += len(docs)
    _refresh_idf(model)


def _refresh_idf(model: Model) -> None:
    df = _param(model, "df")
    n = float(_param(model, "ndocs")[0])
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    if model.attrs.get("idf_fixed") and model.attrs.get("min_df", 1) > 1:
        idf[df < model.attrs["min_df"]] = 0.0
    _set_param(model, "idf", idf.astype("float32"))
