"""The registered textcat architectures.

* `spacy-text2node.StaticVectorsMLR.v1`: pooled static word vectors (mean or
  SIF-weighted) into a linear softmax, the multinomial logistic regression ("MLR")
  of the Bengali and Marathi hate-speech papers.
* `spacy-text2node.LexicalDense.v1`: hashed word and character n-gram TF-IDF
  features into a small ReLU network, in the manner of Luxical, plus a linear path
  from the features to the logits. The first layer of each path is a hashed
  table: a sparse (docs x buckets) TF-IDF matrix times a dense table.
"""

from typing import Dict, List, Optional

import numpy as np
from spacy.attrs import IDS as ATTR_IDS
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Linear, Logistic, Model, Relu, Softmax, chain
from thinc.types import Floats2d

from .features import _tfidf_matrix, lexical_features
from .layers import LEXICAL_BAG, OUTPUT, SPARSE_LINEAR, _output_forward, _output_init, _sparse_table
from .util import _param, _set_param

LEXICAL_DENSE = "text2node_lexical_dense"


POOLED_VECTORS = "text2node_pooled_vectors"


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
    refs: Dict[str, Optional[Model]] = {"lexical_features": feats}
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
        deep: Model = chain(*deep_layers)
        layers.append(deep)
        refs["lexical_bag"] = bag
        refs["deep"] = deep
    out: Model = Model(
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
    model: Model = Model(
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
            H = _tfidf_matrix(feats, docs, table=_param(table, "T")) + _param(table, "b")
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
    pool: Model = Model(
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
    model: Model = chain(*layers)
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
    _set_param(model, "sif", (a / (a + p)).astype("float32"))
    return model


def _pool_forward(model: Model, docs: List[Doc], is_train: bool):
    width = model.get_dim("nO")
    out = np.zeros((len(docs), width), dtype="float32")
    if docs:
        vectors = _vectors_of(docs)
        table = vectors.data
        sif = _param(model, "sif") if model.attrs["pooling"] == "sif" else None
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
