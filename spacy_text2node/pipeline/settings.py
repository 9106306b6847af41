"""The linker's settings, in the blocks of its config: what builds the index, how it is
searched, how the mapper is trained and how a loaded linker runs.

    [components.text2node_linker.index]     candidates, memory, node_space, text_weight, text_dim, max_df, ann,
                                            n_trees, hnsw_m, hnsw_ef_construction
    [components.text2node_linker.search]    k, threshold, fusion_weight, ann_candidates, lexical_candidates, search_k,
                                            ef_search
    [components.text2node_linker.training]  temperature, n_negatives, hard_negatives, distance_weight,
                                            synonym_weight, synonym_refresh
    [components.text2node_linker.runtime]   cache_size, n_threads

Each block is validated by `settings_block`: an unknown name or a bad value raises a
`SettingsError` that names the block and the setting. The component keeps the settings
flat in its `cfg` (the file saved with the pipeline), as before the blocks existed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Dict, Mapping, Optional, Tuple, Type, TypeVar

from thinc.api import Config

from ..errors import SettingsError
from ..index.neighbours import ANN_KINDS

NAME = "text2node_linker"

DEFAULT_LINKER_MODEL = """
[model]
@architectures = "spacy-text2node.PhraseMapperCNN.v1"
width = 128
depth = 2
window = 1
nO = null
max_tokens = 32
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_LINKER_MODEL)["model"]

ARCHITECTURES = {
    "cnn": "spacy-text2node.PhraseMapperCNN.v1",
    "bilstm": "spacy-text2node.PhraseMapperBiLSTM.v1",
    "mean": "spacy-text2node.PhraseMapperMean.v1",
}


@dataclass(frozen=True)
class IndexSettings:
    """What `initialize` builds: node space, its nearest-neighbour index and the lexical channels.

    candidates (str): "all" concepts, or only the "leaves" (concepts without children,
        e.g. ICD-10-CM's billable codes); with "leaves" the neighbour index holds only the leaves.
    memory (bool): keep the training phrases (those that are not already a string of their
        concept) as a second lexical index; used once the linker is calibrated.
    node_space (str): "node2vec" or "node2vec+text".
    text_weight (float): weight of the text part of node space.
    text_dim (int): principal components kept of the text part (0: the word vectors' width).
    max_df (float): lexical n-grams in more than this fraction of strings are not used for
        retrieval (they still count in the score).
    ann (str): the nearest-neighbour index over node space: "hnsw" (an HNSW graph, usearch)
        or "annoy" (a forest of random-projection trees, what linkers were built with before).
    n_trees (int): annoy trees.
    hnsw_m (int): HNSW links per node.
    hnsw_ef_construction (int): HNSW candidates considered while building.
    """

    candidates: str = "all"
    memory: bool = True
    node_space: str = "node2vec+text"
    text_weight: float = 0.5
    text_dim: int = 0
    max_df: float = 0.03
    ann: str = "hnsw"
    n_trees: int = 20
    hnsw_m: int = 16
    hnsw_ef_construction: int = 128

    def check(self) -> None:
        _one_of("index", "candidates", self.candidates, ("all", "leaves"))
        _one_of("index", "node_space", self.node_space, ("node2vec", "node2vec+text"))
        _one_of("index", "ann", self.ann, ANN_KINDS)
        _at_least("index", "text_dim", self.text_dim, 0, "0 (full width) or a positive number of components")
        _at_least("index", "n_trees", self.n_trees, 1, "a positive number")
        _at_least("index", "hnsw_m", self.hnsw_m, 2, "2 or more")
        _at_least("index", "hnsw_ef_construction", self.hnsw_ef_construction, 1, "a positive number")


@dataclass(frozen=True)
class SearchSettings:
    """How the index is searched for a span.

    k (int): candidates kept per span.
    threshold (float): candidates whose similarity (the larger of the fixed fusion score
        and the lexical cosine, both in [0, 1]) is below this are dropped; a span left
        with none is NIL (kb_id_ "").
    fusion_weight (float): a in `a * cos_node + (1 - a) * cos_lexical`.
    ann_candidates (int): candidates from the neighbour index in node space.
    lexical_candidates (int): candidates from the lexical channel.
    search_k (int): annoy's search_k (-1: annoy's default).
    ef_search (int): the HNSW index's search breadth (at least ann_candidates is used).
    abbreviations (bool): a span that is a short form defined in its document (set by the
        `text2node_abbreviations` component in front) is searched as its long form.
    composite (bool): a coordinated mention ("breast and ovarian cancer") is split into its
        parts, each searched on its own; the span gets one concept per part in
        `span._.text2node_concepts`. A calibrated linker searches the whole mention too and
        keeps it whole when its best concept is at least as probable as the least sure
        part's ("hereditary breast and ovarian cancer": one syndrome). Off by default:
        taxonomy labels such as ICD-10-CM's often join two conditions in one concept.
    min_probability (float): a calibrated linker (one with a fitted reranker, whose scores
        are probabilities among a span's candidates) leaves a span NIL when its best
        candidate's probability is below this: a mention finder's false finds tend to have
        no clear best concept. 0 (the default) never does; no effect without a reranker.
    """

    k: int = 5
    threshold: float = 0.2
    fusion_weight: float = 0.5
    ann_candidates: int = 50
    lexical_candidates: int = 20
    search_k: int = -1
    ef_search: int = 50
    abbreviations: bool = True
    composite: bool = False
    min_probability: float = 0.0

    def check(self) -> None:
        _at_least("search", "k", self.k, 1, "a positive number")
        if not 0.0 <= float(self.min_probability) < 1.0:
            raise SettingsError(
                f"{NAME}: [search] min_probability={self.min_probability!r} must be in [0, 1) "
                "(0: a span is never left NIL for a low probability)."
            )
        _at_least("search", "ann_candidates", self.ann_candidates, 0, "0 or more")
        _at_least("search", "lexical_candidates", self.lexical_candidates, 0, "0 or more")
        _at_least("search", "ef_search", self.ef_search, 0, "0 or more")


@dataclass(frozen=True)
class TrainingSettings:
    """The mapper's loss.

    temperature (float): InfoNCE temperature.
    n_negatives (int): random negative concepts per batch.
    hard_negatives (int): per gold concept, this many taxonomy siblings and this many
        node-space neighbours are added as negatives.
    distance_weight (float): weight of the cosine distance to the gold node vector.
    synonym_weight (float): weight of the synonym-marginalised term (BioSyn's loss): the
        probability mass of the gold concepts' strings among the strings of the batch's
        candidate concepts, each string mapped by the mapper itself (0: off).
    synonym_refresh (int): with synonym_weight > 0, the taxonomy's strings are mapped again
        every this many training steps (without gradient).
    """

    temperature: float = 0.05
    n_negatives: int = 1024
    hard_negatives: int = 8
    distance_weight: float = 0.2
    synonym_weight: float = 0.0
    synonym_refresh: int = 500

    def check(self) -> None:
        if not self.temperature > 0:
            raise SettingsError(f"{NAME}: [training] temperature={self.temperature!r} must be above 0.")
        _at_least("training", "n_negatives", self.n_negatives, 0, "0 or more")
        _at_least("training", "hard_negatives", self.hard_negatives, 0, "0 or more")
        if not float(self.synonym_weight) >= 0:
            raise SettingsError(f"{NAME}: [training] synonym_weight={self.synonym_weight!r} must be 0 (off) or more.")
        _at_least("training", "synonym_refresh", self.synonym_refresh, 1, "a positive number of steps")


@dataclass(frozen=True)
class RuntimeSettings:
    """How a loaded linker runs; results do not depend on these. A pipeline's config
    (e.g. `spacy.load(path, config=...)`) wins over the settings saved with the linker.

    cache_size (int): results of this many distinct span texts are kept, so a mention that
        repeats is linked once per process (static-vector mappers only; 0 disables).
    n_threads (int): threads that map and search a batch's spans in parallel (0: one per
        available CPU, at most 8; 1: none). Set 1 when processes share the CPUs.
    """

    cache_size: int = 50000
    n_threads: int = 0

    def check(self) -> None:
        _at_least("runtime", "n_threads", self.n_threads, 0, "0 (one per available CPU) or a positive number")
        _at_least("runtime", "cache_size", self.cache_size, 0, "0 (no cache) or a positive number")


BLOCKS: Dict[str, Type[Any]] = {
    "index": IndexSettings,
    "search": SearchSettings,
    "training": TrainingSettings,
    "runtime": RuntimeSettings,
}
# settings that only change how a loaded linker runs: the pipeline's config wins over the saved cfg
RUNTIME_SETTINGS: Tuple[str, ...] = tuple(f.name for f in fields(RuntimeSettings))

S = TypeVar("S")


def settings_block(block: str, value: Optional[Mapping[str, Any]], cls: Type[S]) -> S:
    """Validate one block of settings.

    block (str): its name in the config ("index", "search", "training", "runtime").
    value (Optional[Mapping[str, Any]]): the block (missing names take their defaults), or
        an instance of `cls`.
    cls (Type): the block's dataclass.
    RETURNS: the settings.
    """
    if isinstance(value, cls):
        value.check()  # type: ignore[attr-defined]
        return value
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise SettingsError(f"{NAME}: [{block}] must be a block of settings, not {type(value).__name__} {value!r}.")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise SettingsError(
            f"{NAME}: unknown setting(s) {', '.join(unknown)} in [{block}]; the block takes {', '.join(known)}."
        )
    typed: Dict[str, Any] = {}
    for key, v in value.items():
        default = known[key].default
        typed[key] = _typed(block, key, v, type(default))
    out = cls(**typed)
    out.check()  # type: ignore[attr-defined]
    return out


def flat_settings(*blocks: Any) -> Dict[str, Any]:
    """The settings of several blocks in one dict (the component's cfg)."""
    out: Dict[str, Any] = {}
    for b in blocks:
        out.update(dataclasses.asdict(b))
    return out


def group_settings(flat: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Sort flat settings (the previous factory's names) into their blocks; names of no
    block are left out."""
    out: Dict[str, Dict[str, Any]] = {block: {} for block in BLOCKS}
    for block, cls in BLOCKS.items():
        for f in fields(cls):
            if f.name in flat:
                out[block][f.name] = flat[f.name]
    return out


def _typed(block: str, key: str, v: Any, kind: type) -> Any:
    if kind is bool:
        if not isinstance(v, bool):
            raise SettingsError(f"{NAME}: [{block}] {key}={v!r} must be true or false.")
        return v
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise SettingsError(f"{NAME}: [{block}] {key}={v!r} must be a whole number.")
        return v
    if kind is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SettingsError(f"{NAME}: [{block}] {key}={v!r} must be a number.")
        return v  # kept as given: an int stays an int in the saved cfg
    if not isinstance(v, kind):
        raise SettingsError(f"{NAME}: [{block}] {key}={v!r} must be a {kind.__name__}.")
    return v


def _one_of(block: str, key: str, v: Any, allowed: Tuple[str, ...]) -> None:
    if v not in allowed:
        raise SettingsError(f"{NAME}: [{block}] {key}={v!r} must be one of {', '.join(map(repr, allowed))}.")


def _at_least(block: str, key: str, v: int, least: int, what: str) -> None:
    if int(v) < least:
        raise SettingsError(f"{NAME}: [{block}] {key}={v!r} must be {what}.")


def block_from_cfg(cls: Type[S], cfg: Mapping[str, Any]) -> S:
    """A block of settings read from the component's flat cfg (a name it lacks, in a cfg
    saved before the setting existed, takes its default)."""
    return cls(**{f.name: cfg.get(f.name, f.default) for f in fields(cls)})  # type: ignore[arg-type]
