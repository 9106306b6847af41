"""The linker's factories.

`text2node_entity_linker` takes its settings in blocks (`settings`):

    [components.text2node_linker]
    factory = "text2node_entity_linker"
    spans = {"@misc": "spacy-text2node.doc_getter.v1"}
    seed = 0

    [components.text2node_linker.index]
    node_space = "node2vec+text"
    ...
    [components.text2node_linker.search]
    k = 5
    ...

`text2node_linker` is the factory pipelines saved before the blocks name in their
config.cfg: it takes the same settings flat and builds the same component, so those
pipelines load and link as before (the component's saved cfg is flat in both).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional, Union

from spacy.language import Language
from thinc.api import Model

from .linker import Text2NodeLinker
from .scoring import SCORE_KEYS
from .settings import (
    DEFAULT_MODEL,
    IndexSettings,
    RuntimeSettings,
    SearchSettings,
    TrainingSettings,
    group_settings,
    settings_block,
)
from .spans import SpanSource

FACTORY = "text2node_entity_linker"
LEGACY_FACTORY = "text2node_linker"
ASSIGNS = ["token.ent_kb_id", "span._.text2node_candidates", "span._.text2node_concepts"]
SCORE_WEIGHTS = {f"text2node_{k}": (1.0 if k == "acc@1" else None) for k in SCORE_KEYS}
SCORER = {"@scorers": "spacy-text2node.linker_scorer.v1"}


@Language.factory(
    FACTORY,
    assigns=ASSIGNS,
    default_config={
        "model": DEFAULT_MODEL,
        "spans": {"@misc": "spacy-text2node.ents_getter.v1"},
        "index": dataclasses.asdict(IndexSettings()),
        "search": dataclasses.asdict(SearchSettings()),
        "training": dataclasses.asdict(TrainingSettings()),
        "runtime": dataclasses.asdict(RuntimeSettings()),
        "seed": 0,
        "scorer": SCORER,
    },
    default_score_weights=SCORE_WEIGHTS,
)
def make_text2node_linker(
    nlp: Language,
    name: str,
    model: Model,
    *,
    spans: Union[str, SpanSource],
    index: Dict[str, Any],
    search: Dict[str, Any],
    training: Dict[str, Any],
    runtime: Dict[str, Any],
    seed: int,
    scorer: Optional[Callable],
) -> Text2NodeLinker:
    """Create a text2node_linker.

    model (Model): a phrase mapper (`spacy-text2node.PhraseMapperCNN.v1`, `...BiLSTM.v1`, `...Mean.v1`).
    spans (SpanSource / str): what to link: a span getter (`spacy-text2node.ents_getter.v1`,
        `.doc_getter.v1`, `.noun_chunks_getter.v1`, `.span_group_getter.v1`) or its string
        form "ents", "doc", "noun_chunks", "spans:<key>".
    index (Dict[str, Any]): node space and index settings (`settings.IndexSettings`).
    search (Dict[str, Any]): search settings (`settings.SearchSettings`).
    training (Dict[str, Any]): the mapper's loss (`settings.TrainingSettings`).
    runtime (Dict[str, Any]): cache and threads (`settings.RuntimeSettings`); the pipeline's
        config wins over the values saved with a trained linker.
    seed (int): random seed for sampling negatives, building the neighbour index and calibration folds.
    scorer (Optional[Callable]): the scorer.
    RETURNS (Text2NodeLinker): the component.
    """
    return Text2NodeLinker(
        nlp.vocab,
        model,
        name,
        spans=spans,
        index=settings_block("index", index, IndexSettings),
        search=settings_block("search", search, SearchSettings),
        training=settings_block("training", training, TrainingSettings),
        runtime=settings_block("runtime", runtime, RuntimeSettings),
        seed=seed,
        scorer=scorer,
    )


LEGACY_DEFAULTS: Dict[str, Any] = {
    "model": DEFAULT_MODEL,
    "spans": "ents",
    "k": 5,
    "threshold": 0.2,
    "candidates": "all",
    "memory": True,
    "node_space": "node2vec+text",
    "text_weight": 0.5,
    "text_dim": 0,
    "fusion_weight": 0.5,
    "ann_candidates": 50,
    "lexical_candidates": 20,
    "max_df": 0.03,
    "n_trees": 20,
    "search_k": -1,
    "temperature": 0.05,
    "n_negatives": 1024,
    "hard_negatives": 8,
    "distance_weight": 0.2,
    "cache_size": 50000,
    "n_threads": 0,
    "seed": 0,
    "scorer": SCORER,
}


@Language.factory(LEGACY_FACTORY, assigns=ASSIGNS, default_config=LEGACY_DEFAULTS, default_score_weights=SCORE_WEIGHTS)
def make_legacy_text2node_linker(
    nlp: Language,
    name: str,
    model: Model,
    *,
    spans: str,
    k: int,
    threshold: float,
    candidates: str,
    memory: bool,
    node_space: str,
    text_weight: float,
    text_dim: int,
    fusion_weight: float,
    ann_candidates: int,
    lexical_candidates: int,
    max_df: float,
    n_trees: int,
    search_k: int,
    temperature: float,
    n_negatives: int,
    hard_negatives: int,
    distance_weight: float,
    cache_size: int,
    n_threads: int,
    seed: int,
    scorer: Optional[Callable],
) -> Text2NodeLinker:
    """The linker with flat settings, as configs written before the settings blocks have
    them (each name is the one of its block in `make_text2node_linker`)."""
    flat = dict(locals())
    blocks = group_settings(flat)
    return make_text2node_linker(
        nlp,
        name,
        model,
        spans=spans,
        index=blocks["index"],
        search=blocks["search"],
        training=blocks["training"],
        runtime=blocks["runtime"],
        seed=seed,
        scorer=scorer,
    )
