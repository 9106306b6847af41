"""Python API around `text2node_linker` for scripts, tests and benchmarks.

These helpers build, train (through spaCy's own training loop, as `spacy train` does),
calibrate and query a linker pipeline in Python.
"""

from __future__ import annotations

import io
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union, cast

import numpy as np
import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.util import fix_random_seed, registry
from spacy.vectors import Vectors
from thinc.api import Config

from .pipeline.factories import FACTORY  # registers the factories
from .pipeline.linker import Text2NodeLinker
from .pipeline.settings import ARCHITECTURES, group_settings
from .pipeline.spans import check_spans_setting, gold_ids
from .scoring import ranking_scores
from .taxonomy import Taxonomy

logger = logging.getLogger("spacy_text2node")

PIPE_NAME = "text2node_linker"
MODEL_KEYS = ("width", "depth", "window", "max_tokens", "dropout", "embed")


def _vectors_nlp(word_vectors: Union[Language, str, Path, None], lang: str = "en") -> Language:
    if isinstance(word_vectors, Language):
        nlp = spacy.blank(word_vectors.lang or lang)
        nlp.vocab.vectors = word_vectors.vocab.vectors
        if "text2node_vectors" in word_vectors.pipe_names:
            # keep the subword component (OOV tokens get vectors from their pieces)
            nlp.add_pipe("text2node_vectors", source=word_vectors)
        return nlp
    if word_vectors is None:
        return spacy.blank(lang)
    path = Path(word_vectors)
    if (path / "config.cfg").exists():
        return _vectors_nlp(spacy.load(path))
    if (path / "key2row").exists() or (path / "vectors").exists() or (path / "vectors.npy").exists():
        nlp = spacy.blank(lang)
        nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings).from_disk(path)
        return nlp
    raise ValueError(
        f"{path}: not a spaCy pipeline (no config.cfg) nor a spaCy vectors directory; "
        "pass a Language with vectors, or a directory written by nlp.to_disk / Vectors.to_disk."
    )


def build_linker_nlp(
    taxonomy: Taxonomy,
    node_vectors: Any,
    word_vectors: Union[Language, str, Path, None],
    *,
    architecture: str = "cnn",
    node_space: str = "node2vec+text",
    spans: Optional[str] = None,
    dictionary: Union[str, Path, Iterable[Mapping[str, Any]], None] = None,
    **cfg: Any,
) -> Language:
    """A pipeline with the word vectors and an initialised (not trained) text2node_linker.

    taxonomy (Taxonomy): the concepts to link to.
    node_vectors (np.ndarray / NodeVectors / None): node2vec vectors in taxonomy order
        (None: a text-only node space).
    word_vectors (Language / str / Path / None): a pipeline whose vocab has vectors (its
        `text2node_vectors` component is kept), or a path to one or to a vectors directory.
    architecture (str): "cnn", "bilstm" or "mean".
    node_space (str): "node2vec" or "node2vec+text".
    spans (str): what the component links, required: "doc" when each doc is one phrase
        (lists of phrases, `link_phrases`, training pairs), "ents" when a mention finder
        in front of the linker puts the mentions of whole documents in `doc.ents`
        ("noun_chunks" and "spans:<key>" also work).
    dictionary (str / Path / Iterable[dict] / None): annotated phrase -> concept pairs
        (a JSONL file or the pairs) whose unambiguous phrases link to their concept first
        (`Text2NodeLinker.set_dictionary`); None: no dictionary.
    **cfg: model settings (width, depth, window, max_tokens, dropout; embed: the config
        of a context-free token embedding such as `{"@architectures":
        "spacy.MultiHashEmbed.v2", ...}`, as configs/linker.cfg sets it) and any other
        text2node_linker setting (k, threshold, fusion_weight, text_weight, ...).
    RETURNS (Language): the pipeline.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture={architecture!r}: use one of {sorted(ARCHITECTURES)}.")
    if spans is None:
        raise ValueError(
            "build_linker_nlp: say what the linker links: spans='doc' when each doc is one phrase "
            "(phrase lists, link_phrases, training pairs), spans='ents' when a mention finder in front "
            "of the linker marks the mentions of whole documents."
        )
    check_spans_setting(spans)
    fix_random_seed(int(cfg.get("seed", 0)))
    nlp = _vectors_nlp(word_vectors)
    model_cfg: Dict[str, Any] = {"@architectures": ARCHITECTURES[architecture]}
    for key in MODEL_KEYS:
        if key in cfg:
            model_cfg[key] = cfg.pop(key)
    if architecture == "mean":
        model_cfg.pop("depth", None)
        model_cfg.pop("window", None)
    if architecture == "bilstm":
        model_cfg.pop("window", None)
    seed = int(cfg.pop("seed", 0))
    blocks = group_settings({"node_space": node_space, **cfg})
    unknown = set(cfg) - {key for block in blocks.values() for key in block}
    if unknown:
        raise ValueError(
            f"build_linker_nlp: unknown setting(s) {', '.join(sorted(unknown))}; give model settings "
            f"({', '.join(MODEL_KEYS)}) or linker settings (spacy_text2node.pipeline.settings)."
        )
    config = {"model": model_cfg, "spans": spans, "seed": seed, **blocks}
    linker = cast(Text2NodeLinker, nlp.add_pipe(FACTORY, name=PIPE_NAME, config=config))
    if "text2node_vectors" in nlp.pipe_names:
        nlp.get_pipe("text2node_vectors")  # already initialised in its source pipeline
    t0 = time.time()
    linker.initialize(
        lambda: [Example(nlp.make_doc(taxonomy.labels[0]), nlp.make_doc(taxonomy.labels[0]))],
        nlp=nlp,
        taxonomy=taxonomy,
        node_vectors=node_vectors,
        dictionary=dictionary,
    )
    assert linker.index is not None
    logger.info("build_linker_nlp: initialised in %.1f s (node space %s)", time.time() - t0, linker.index.space.shape)
    return nlp


def get_linker(nlp: Language) -> Text2NodeLinker:
    """The pipeline's text2node linker (the first, whatever its name).

    Raises ValueError when the pipeline has none."""
    for _, proc in nlp.pipeline:
        if isinstance(proc, Text2NodeLinker):
            return proc
    raise ValueError(f"The pipeline has no text2node_linker (components: {nlp.pipe_names}).")


def link_phrases(
    nlp: Language, phrases: Sequence[str], k: int = 5, batch_size: int = 1024
) -> List[List[Tuple[str, float]]]:
    """Ranked (concept id, score) for each phrase (the whole phrase is one span).

    Runs only the tokenizer (and the components before the linker, if any) and then the
    linker's own model and index on whole-doc spans: the ranking equals the component's
    `_.text2node_candidates` for a whole-doc span.

    nlp (Language): a pipeline with a trained text2node_linker.
    phrases (Sequence[str]): the phrases.
    k (int): candidates per phrase (candidates below the linker's threshold are dropped).
    batch_size (int): phrases per model call.
    RETURNS (List[List[Tuple[str, float]]]): best first.
    """
    if isinstance(phrases, (str, bytes)):
        raise TypeError(f"link_phrases takes a list of phrases, not one string: pass [{phrases!r}].")
    linker = get_linker(nlp)
    linker.require_ready()
    assert linker.taxonomy is not None
    ids = linker.taxonomy.ids
    out: List[List[Tuple[str, float]]] = []
    for docs, offsets in _phrase_batches(nlp, linker, phrases, batch_size):
        texts = [d[:].text for d in docs]
        for r in linker.rank(docs, offsets, texts, k=k):
            out.append([(ids[n], s) for n, s in r])
    return out


def map_phrases(nlp: Language, phrases: Sequence[str], batch_size: int = 1024) -> np.ndarray:
    """The mapper's output in node space for each phrase (the whole phrase is one span),
    computed as linking computes it: the components in front of the linker run first, and
    the mapper sees at most `MAP_CHUNK` spans at a time (`map_spans_in_chunks`). A
    phrase without known words gets a zero row (linking then searches it by its words only).

    nlp (Language): a pipeline with a trained text2node_linker.
    phrases (Sequence[str]): the phrases.
    batch_size (int): phrases per pipeline call.
    RETURNS (np.ndarray): float32, one row per phrase.
    """
    if isinstance(phrases, (str, bytes)):
        raise TypeError(f"map_phrases takes a list of phrases, not one string: pass [{phrases!r}].")
    linker = get_linker(nlp)
    linker.require_ready()
    parts = [linker.map_spans_in_chunks(docs, offs) for docs, offs in _phrase_batches(nlp, linker, phrases, batch_size)]
    if not parts:
        return np.zeros((0, int(linker.cfg.get("nO") or 0)), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)


def _phrase_gold(examples: Iterable[Example]) -> Tuple[List[str], List[List[str]]]:
    texts, gold = [], []
    for eg in examples:
        for ent in eg.reference.ents:
            g = gold_ids(ent)
            if g:
                texts.append(ent.text)
                gold.append(g)
    return texts, gold


def evaluate_phrases(
    nlp: Language, examples: Sequence[Example], k: int = 5, with_taxonomy: bool = True
) -> Dict[str, float]:
    """acc@1, acc@5, MRR (and tree distance) of `link_phrases` on the gold spans of examples."""
    texts, gold = _phrase_gold(examples)
    ranked = [[c for c, _ in r] for r in link_phrases(nlp, texts, k=k)]
    return ranking_scores(ranked, gold, ks=(1, 5), taxonomy=get_linker(nlp).taxonomy if with_taxonomy else None)


def _phrase_batches(
    nlp: Language, linker: Text2NodeLinker, phrases: Sequence[str], batch_size: int
) -> Iterator[Tuple[List, List[Tuple[int, int, int]]]]:
    """The phrases as docs, `batch_size` at a time, each with one span over the whole doc."""
    for start in range(0, len(phrases), batch_size):
        docs = _phrase_docs(nlp, linker, list(phrases[start : start + batch_size]))
        yield docs, [(i, 0, len(d)) for i, d in enumerate(docs)]


def _phrase_docs(nlp: Language, linker: Text2NodeLinker, phrases: Sequence[str]) -> List:
    before = [name for name, _ in nlp.pipeline[: nlp.pipe_names.index(linker.name)]]
    if before:
        with nlp.select_pipes(enable=before):
            return list(nlp.pipe(phrases))
    return [nlp.make_doc(p) for p in phrases]


def calibrate_linker(
    nlp: Language,
    dev_examples: Sequence[Example],
    *,
    l2_words: Optional[float] = None,
    select_examples: Optional[Sequence[Example]] = None,
    siamese: Optional[bool] = None,
) -> Dict[str, float]:
    """Fit the linker's reranker (the learned fusion of its channels) on development
    examples the mapper did not train on (see `Text2NodeLinker.calibrate`).

    nlp (Language): a pipeline with a trained text2node_linker.
    dev_examples (Sequence[Example]): development examples (gold spans with concepts).
    l2_words (Optional[float]): L2 penalty of the per-word weights (None: chosen by 2-fold
        cross-validation on the examples, or on `select_examples`).
    select_examples (Optional[Sequence[Example]]): other held-out examples, worded unlike
        the development ones (e.g. synonyms): the penalty is chosen by acc@1 on them.
    siamese (Optional[bool]): keep the siamese feature (True), drop it (False), or drop it
        only where it lowers the held-out acc@1 that chooses the penalty (None).
    RETURNS (Dict[str, float]): dev acc@1 before/after and the learned dense weights.
    """
    linker = get_linker(nlp)

    def spans(examples: Sequence[Example], what: str):
        texts, gold = _phrase_gold(examples)
        if not texts:
            raise ValueError(f"calibrate_linker: the {what} examples have no gold spans with a concept.")
        docs = _phrase_docs(nlp, linker, texts)
        return docs, [(i, 0, len(d)) for i, d in enumerate(docs)], [d[:].text for d in docs], gold

    select = spans(select_examples, "selection") if select_examples is not None else None
    return linker.calibrate(*spans(dev_examples, "development"), l2_words=l2_words, select=select, siamese=siamese)


# what `train_linker` runs: the [training] block of configs/linker.cfg (a test keeps the two
# equal), with its corpora, epochs, batch size, learning rate and seed set per call
TRAINING_CONFIG = """
[corpora]

[corpora.train]
@readers = "spacy-text2node.InMemoryExamples.v1"
key = null

[corpora.dev]
@readers = "spacy-text2node.InMemoryExamples.v1"
key = null

[training]
dev_corpus = "corpora.dev"
train_corpus = "corpora.train"
seed = 0
gpu_allocator = null
dropout = 0.0
accumulate_gradient = 1
patience = 0
max_epochs = 4
max_steps = 0
eval_frequency = 400
frozen_components = []
annotating_components = []
before_to_disk = null
before_update = null

[training.batcher]
@batchers = "spacy.batch_by_sequence.v1"
size = 256
get_length = null

[training.logger]
@loggers = "spacy.ConsoleLogger.v1"
progress_bar = false

[training.optimizer]
@optimizers = "Adam.v1"
beta1 = 0.9
beta2 = 0.999
L2_is_weight_decay = true
L2 = 0.0
grad_clip = 1.0
use_averages = false
eps = 0.00000001
learn_rate = 0.001

[training.score_weights]
text2node_acc@1 = 1.0
text2node_acc@5 = null
text2node_mrr = null
text2node_tree_distance = null
text2node_nil_rate = null
"""


@registry.augmenters("spacy-text2node.annotate_before_linker.v1")
def annotate_before_linker() -> Callable[[Language, Example], Iterator[Example]]:
    """An augmenter that runs the untrainable components in front of the linker (e.g.
    `text2node_vectors`, whose vector hooks the mapper reads) on each predicted doc, which
    `nlp.update` does not do for components without an `update` method."""

    def augment(nlp: Language, example: Example) -> Iterator[Example]:
        doc = example.predicted
        for _, proc in nlp.pipeline:
            if isinstance(proc, Text2NodeLinker):
                break
            if not hasattr(proc, "update"):
                doc = proc(doc)
        example.predicted = doc
        yield example

    return augment


# the examples of the `train_linker` calls running now, by key: spaCy's loop reads the
# caller's own Example objects (no copy), and each call removes its entry when it ends
_RUNNING: Dict[str, List[Example]] = {}


@registry.readers("spacy-text2node.InMemoryExamples.v1")
def in_memory_examples(key: str) -> Callable[[Language], Iterator[Example]]:
    """The examples a running `train_linker` call hands to spaCy's training loop, with the
    untrainable components in front of the linker run on their predicted docs
    (`annotate_before_linker`). Only `train_linker` registers examples under a key."""

    def read(nlp: Language) -> Iterator[Example]:
        examples = _RUNNING.get(key)
        if examples is None:
            raise ValueError(
                f"spacy-text2node.InMemoryExamples.v1: no examples under key {key!r}. This reader only "
                "serves train_linker while it runs; in a config, read a file (e.g. spacy-text2node.PhraseConcepts.v1)."
            )
        augment = annotate_before_linker()
        for eg in examples:
            yield from augment(nlp, eg)

    return read


def train_linker(
    nlp: Language,
    train_examples: Sequence[Example],
    dev_examples: Optional[Sequence[Example]] = None,
    *,
    epochs: int = 10,
    batch_size: int = 256,
    seed: int = 0,
    learn_rate: float = 0.001,
    calibrate: bool = True,
    show_progress: bool = True,
) -> Language:
    """Train the linker of an initialized pipeline with spaCy's own training loop
    (`spacy.training.loop.train`, what `spacy train` runs after initializing), the optimizer
    and batcher of configs/linker.cfg, on the given Example objects themselves. With dev examples, the loop
    scores them once per epoch, and the reranker is calibrated on them at the end.

    nlp (Language): from `build_linker_nlp`.
    train_examples (Sequence[Example]): training examples.
    dev_examples (Optional[Sequence[Example]]): development examples.
    epochs (int): passes over the training data.
    batch_size (int): examples per update.
    seed (int): random seed (shuffling, negatives).
    learn_rate (float): Adam learning rate.
    calibrate (bool): fit the reranker on dev_examples (`calibrate_linker`).
    show_progress (bool): spaCy's training table and progress bar.
    RETURNS (Language): the same pipeline, trained.
    """
    from spacy.training.loop import train as spacy_train

    get_linker(nlp)
    train = list(train_examples)
    if not train:
        raise ValueError("train_linker: no training examples.")
    dev = list(dev_examples or [])
    steps_per_epoch = (len(train) + batch_size - 1) // batch_size
    saved = nlp.config
    key = uuid.uuid4().hex
    # spaCy's loop needs a dev corpus; without dev examples, one training example stands in
    # and is scored only at the first step
    _RUNNING[key + "/train"], _RUNNING[key + "/dev"] = train, dev or train[:1]
    try:
        config = saved.copy()
        extra = Config().from_str(TRAINING_CONFIG)
        config["corpora"] = extra["corpora"]
        config["corpora"]["train"]["key"] = key + "/train"
        config["corpora"]["dev"]["key"] = key + "/dev"
        training = extra["training"]
        training.update({"seed": seed, "max_epochs": epochs})
        training["eval_frequency"] = steps_per_epoch if dev else steps_per_epoch * epochs + 1
        training["batcher"]["size"] = batch_size
        training["optimizer"]["learn_rate"] = learn_rate
        training["logger"]["progress_bar"] = show_progress
        config["training"] = training
        nlp.config = config
        out = sys.stdout if show_progress else io.StringIO()
        spacy_train(nlp, None, stdout=out, stderr=out)
    finally:
        nlp.config = saved
        _RUNNING.pop(key + "/train", None)
        _RUNNING.pop(key + "/dev", None)
    if dev and calibrate:
        info = calibrate_linker(nlp, dev)
        logger.info("train_linker: calibrated on dev: %s", info)
    return nlp
