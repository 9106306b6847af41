"""Put vector tables into spaCy pipelines, and the registered loaders for configs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union, cast

import numpy as np
import spacy
from spacy.language import Language
from spacy.tokenizer import Tokenizer
from spacy.util import registry
from spacy.vectors import Vectors

from .io import VectorsError, read_vectors

if TYPE_CHECKING:
    from .component import SubwordVectors

logger = logging.getLogger("spacy_text2node")

PathLike = Union[str, Path]


def make_vectors_table(
    words: Sequence[str],
    matrix: np.ndarray,
    *,
    strings=None,
    lowercase: bool = False,
    name: Optional[str] = None,
    case_variants: bool = False,
) -> Vectors:
    """A default-mode spaCy `Vectors` table with one row per word.

    words (Sequence[str]): the keys, in row order.
    matrix (np.ndarray): (len(words), dim) vectors.
    strings (Optional[StringStore]): the vocab's strings to register the keys in.
    lowercase (bool): look tokens up by their lowercase form (attr LOWER).
    name (Optional[str]): the table's name.
    case_variants (bool): with `lowercase`, also key each word's Capitalized, Title and
        UPPER forms to its row. spaCy does not save a table's lookup attribute, so a
        loaded table looks tokens up by their exact text: components that read the table
        themselves (spaCy's static vectors in a tok2vec, e.g. an NER) see "Breast" only
        through such a key. The rows, and so the memory of the vectors, are unchanged.
    RETURNS (Vectors): the table.
    """
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if len(words) != matrix.shape[0]:
        raise VectorsError(f"{len(words)} words but {matrix.shape[0]} vectors.")
    if strings is not None:
        keys = [strings.add(w) for w in words]
    else:
        from spacy.strings import StringStore

        strings = StringStore(words)
        keys = [strings[w] for w in words]
    kwargs: Dict[str, Any] = dict(strings=strings, data=matrix, keys=keys, attr="LOWER" if lowercase else "ORTH")
    if name:
        kwargs["name"] = name
    table = Vectors(**kwargs)
    if case_variants and lowercase:
        add_case_variants(table, words)
    return table


def add_case_variants(table: Vectors, words: Sequence[str]) -> int:
    """Key the Capitalized, Title and UPPER forms of lowercase words to their rows (a
    form that already has a key keeps it; a form whose lowercase is another word, as
    "STRASSE" of "straße", is left out).

    table (Vectors): a default-mode table keyed by the lowercase words.
    words (Sequence[str]): its words.
    RETURNS (int): the keys added.
    """
    strings = table.strings
    added = 0
    for word in words:
        row = table.key2row.get(strings[word])
        if row is None:
            continue
        for form in {word.capitalize(), word.title(), word.upper()}:
            # only forms that lowercase back to the word ("STRASSE" does not): a reader that
            # looks tokens up by lowercase form first then finds the same rows with or without them
            if form != word and form.lower() == word:
                key = strings.add(form)
                if key not in table.key2row:
                    table.add(key, row=row)
                    added += 1
    return added


def load_vectors(
    source: Optional[PathLike] = None, format: str = "glove-6b-50d", *, max_words: Optional[int] = None
) -> Tuple[List[str], np.ndarray]:
    """Read a vectors file (or the GloVe 6B 50-d default) as `(words, matrix)`.

    source (Optional[str / Path]): the file; None for 'glove-6b-50d'.
    format (str): 'glove', 'word2vec', 'word2vec-binary', 'fasttext-vec',
        'glove-6b-50d' or 'auto'.
    max_words (Optional[int]): keep the first N words.
    RETURNS (Tuple[List[str], np.ndarray]): words and a float32 matrix.
    """
    return read_vectors(source, format, max_words=max_words)


def _base_nlp(base: Union[None, PathLike, Language], lang: str) -> Language:
    if base is None:
        return spacy.blank(lang)
    if isinstance(base, Language):
        return base
    path = Path(base)
    if not path.exists():
        raise VectorsError(f"{path}: no such pipeline directory (--into). Check the path.")
    return spacy.load(path)


def build_vectors_pipeline(
    words: Optional[Sequence[str]] = None,
    matrix: Optional[np.ndarray] = None,
    *,
    table: Optional[Vectors] = None,
    base: Union[None, PathLike, Language] = None,
    lang: str = "en",
    lowercase: bool = True,
    name: Optional[str] = None,
    subwords: Optional[str] = "ngram",
    component_config: Optional[Dict[str, Any]] = None,
    wordpieces: Optional[Tuple[Sequence[str], np.ndarray]] = None,
    show_progress: bool = False,
    case_variants: bool = False,
) -> Language:
    """A pipeline holding a vector table, with the `text2node_vectors` subword component.

    words (Optional[Sequence[str]]): the table's words (with `matrix`).
    matrix (Optional[np.ndarray]): their vectors.
    table (Optional[Vectors]): a ready table instead (e.g. floret vectors).
    base (None / str / Path / Language): an existing pipeline (or its directory) to put
        the vectors into; default a blank pipeline.
    lang (str): language of the blank pipeline.
    lowercase (bool): the table's words are lowercased; look tokens up lowercased.
    name (Optional[str]): the vectors' name.
    subwords (Optional[str]): 'ngram', 'wordpiece' or None (no component).
    component_config (Optional[Dict[str, Any]]): settings of the component.
    wordpieces (Optional[Tuple]): (pieces, piece table) for 'wordpiece'.
    show_progress (bool): progress bars.
    case_variants (bool): with `lowercase`, key the words' case variants too (see
        `make_vectors_table`): for spaCy components that read the table, e.g. an NER.
    RETURNS (Language): the pipeline (save it with `nlp.to_disk`).
    """
    nlp = _base_nlp(base, lang)
    if table is None:
        if words is None or matrix is None:
            raise VectorsError("build_vectors_pipeline needs words and matrix, or a table.")
        table = make_vectors_table(
            words, matrix, strings=nlp.vocab.strings, lowercase=lowercase, name=name, case_variants=case_variants
        )
    else:
        table.strings = nlp.vocab.strings
        if name:
            table.name = name
    nlp.vocab.vectors = table
    if subwords:
        pipe_name = "text2node_vectors"
        if pipe_name in nlp.pipe_names:
            nlp.remove_pipe(pipe_name)
        from . import component  # noqa: F401  (registers the factory)

        cfg = dict(component_config or {})
        cfg["mode"] = subwords if table.mode == "default" else "ngram"
        cfg.setdefault("lowercase", lowercase)
        comp = cast("SubwordVectors", nlp.add_pipe("text2node_vectors", config=cfg))
        if subwords == "wordpiece" and table.mode == "default":
            if wordpieces is None:
                comp.initialize(nlp=nlp, show_progress=show_progress)
            else:
                comp.set_wordpieces(*wordpieces)
        else:
            comp.initialize(nlp=nlp, show_progress=show_progress)
    return nlp


def phrase_vectors(nlp: Language, texts: Sequence[str], *, batch_size: int = 1000) -> np.ndarray:
    """`nlp(text).vector` of many short texts at once, as a float32 (n, dim) matrix.

    With the `text2node_vectors` component the texts are only tokenized and the
    component pools them in bulk (`SubwordVectors.docs_vectors`: same values as
    `doc.vector`, several times faster); without it each `doc.vector` is used.
    """
    texts = list(texts)
    if "text2node_vectors" in nlp.pipe_names:
        comp = cast("SubwordVectors", nlp.get_pipe("text2node_vectors"))
        tokenizer = cast(Tokenizer, nlp.tokenizer)
        out = [
            comp.docs_vectors(list(tokenizer.pipe(texts[s : s + batch_size], batch_size=batch_size)))
            for s in range(0, len(texts), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, nlp.vocab.vectors_length), dtype=np.float32)
    mats = [d.vector for d in nlp.pipe(texts, batch_size=batch_size)]
    return np.asarray(mats, dtype=np.float32).reshape(len(texts), -1)


VectorsLoader = Callable[[Language], Language]


def _loader(
    get: Callable[[], Tuple[List[str], np.ndarray]], lowercase: bool, case_variants: bool = False
) -> VectorsLoader:
    def load_into(nlp: Language) -> Language:
        words, matrix = get()
        # with case_variants keyed by exact forms, as a loaded table is looked up (spaCy does
        # not save the lookup attribute)
        table = make_vectors_table(words, matrix, strings=nlp.vocab.strings, lowercase=lowercase and not case_variants)
        if case_variants:
            add_case_variants(table, words)
        nlp.vocab.vectors = table
        return nlp

    load_into.load = get  # type: ignore[attr-defined]
    return load_into


@registry.misc("spacy-text2node.GloVeVectors.v1")
def make_glove_vectors(
    path: Optional[str] = None,
    format: str = "glove-6b-50d",
    max_words: Optional[int] = None,
    lowercase: bool = True,
    case_variants: bool = False,
) -> VectorsLoader:
    """A loader `nlp -> nlp` that puts a vectors file (default GloVe 6B 50-d) into
    `nlp.vocab.vectors`; usable as `[initialize.before_init]`. `loader.load()`
    returns `(words, matrix)`. case_variants: for lowercased words, key their
    Capitalized, Title and UPPER forms too and look tokens up by exact form, as the table
    is looked up once the trained pipeline is saved and loaded (what a mapper's embed
    with static vectors needs: configs/linker.cfg sets it)."""
    return _loader(lambda: read_vectors(path, format, max_words=max_words), lowercase, case_variants and lowercase)


@registry.misc("spacy-text2node.TrainedVectors.v1")
def make_trained_vectors(
    paths: Optional[List[str]] = None,
    taxonomy: Optional[Any] = None,
    algorithm: str = "fasttext",
    dim: int = 100,
    epochs: int = 10,
    min_count: int = 1,
    seed: int = 0,
) -> VectorsLoader:
    """A loader `nlp -> nlp` that trains gensim vectors on files and/or a taxonomy
    (e.g. `taxonomy = {"@misc": "spacy-text2node.ICD10CM.v1"}`) and puts them into
    `nlp.vocab.vectors` (the trained words; add `text2node_vectors` for subwords)."""
    from .train import build_corpus, train_gensim

    def get() -> Tuple[List[str], np.ndarray]:
        sents = build_corpus(paths or [], taxonomy=taxonomy)
        model = train_gensim(sents, algorithm=algorithm, dim=dim, epochs=epochs, min_count=min_count, seed=seed)
        return list(model.wv.index_to_key), np.asarray(model.wv.vectors, dtype=np.float32)

    return _loader(get, True)


@registry.misc("spacy-text2node.DistilledVectors.v1")
def make_distilled_vectors(
    method: str = "first-layer",
    model_path: Optional[str] = None,
    taxonomy: Optional[Any] = None,
    max_words: int = 50_000,
    pca: Optional[int] = None,
    corpus: Optional[List[str]] = None,
    epochs: int = 8,
    lr: float = 0.03,
    val_fraction: float = 0.05,
    cache_dir: Optional[str] = None,
) -> VectorsLoader:
    """A loader `nlp -> nlp` that distills static vectors from a local transformer
    (default all-MiniLM-L6-v2): method 'first-layer', 'contextless', 'phrase'
    (contextless vectors fitted so that the mean word vector of each of the taxonomy's
    labels and `corpus` lines matches the model's embedding of it; `epochs`, `lr`,
    `val_fraction` as in `fit_phrase_vectors`) or 'model2vec' (the model2vec package's
    distillation, `pca` dimensions, default 256)."""
    from .distill import (
        DISTILL_METHODS,
        MODEL2VEC_PCA,
        contextless_vectors,
        default_vocabulary,
        distill_phrase_vectors,
        first_layer_vectors,
        load_transformer,
        model2vec_vectors,
    )
    from .train import iter_corpus_texts

    if method not in DISTILL_METHODS:
        raise VectorsError(f"Unknown distill method {method!r}: choose one of {', '.join(DISTILL_METHODS)}.")
    if method == "phrase" and pca:
        raise VectorsError("pca cannot be used with method 'phrase' (the targets are full-size embeddings).")

    def get() -> Tuple[List[str], np.ndarray]:
        words = default_vocabulary(taxonomy, max_words=max_words)
        if method == "model2vec":
            kept, mat, _p, _t = model2vec_vectors(words, model_path, pca_dims=pca or MODEL2VEC_PCA)
            return kept, mat
        tok, model = load_transformer(model_path)
        if method == "first-layer":
            kept, mat, _p, _t = first_layer_vectors(words, tok, model)
            return kept, mat
        if method == "contextless":
            return words, contextless_vectors(words, tok, model, pca=pca, show_progress=False, cache_dir=cache_dir)
        phrases = (list(taxonomy.labels) if taxonomy is not None else []) + list(iter_corpus_texts(corpus or []))
        words, mat, _info = distill_phrase_vectors(
            phrases, tok, model, words=words, epochs=epochs, lr=lr, val_fraction=val_fraction, cache_dir=cache_dir
        )
        return words, mat

    return _loader(get, True)
