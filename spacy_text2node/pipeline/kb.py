"""`Text2NodeKB`: a spaCy `KnowledgeBase` over a taxonomy and its node-space index, so
spaCy's own `entity_linker` (or anything written against `spacy.kb`) can take our
candidates; `build_index`, which makes node space and the index from a taxonomy; and
`build_memory`, the index of a linker's training phrases.

A candidate's entity is a concept id, its `prior_prob` our search score and its
`entity_vector` the concept's row of node space (`entity_vector_length` is node space's
width). Without an encoder (a trained linker's mapper, as `Text2NodeLinker.kb` has) the
KB searches the lexical channel only.

    [components.entity_linker]
    factory = "entity_linker"
    entity_vector_length = 16          # node space's width
    generate_empty_kb = {"@misc": "spacy-text2node.empty_kb.v1"}

    [initialize.components.entity_linker.kb_loader]
    @misc = "spacy-text2node.taxonomy_kb.v1"
    taxonomy = {"@misc": "spacy-text2node.TaxonomyDir.v1", "path": "corpus/taxonomy"}
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union, cast

import numpy as np
import srsly
from spacy import util
from spacy.kb import Candidate, KnowledgeBase
from spacy.strings import get_string_id
from spacy.tokens import Span
from spacy.training import Example
from spacy.util import registry
from spacy.vocab import Vocab

from ..errors import LinkerNotReadyError
from ..index import LexicalIndex, NodeIndex, build_node_space, node_text_vectors, normalize_text, principal_components
from ..taxonomy import Taxonomy
from .serialize import part_loaders
from .settings import IndexSettings, SearchSettings, settings_block
from .spans import SpanSource, training_spans

logger = logging.getLogger("spacy_text2node")

# maps spans to (n, entity_vector_length) query vectors of node space
Encoder = Callable[[Sequence[Span]], np.ndarray]


class Text2NodeKB(KnowledgeBase):
    """A knowledge base of taxonomy concepts, searched through node space and the lexical channel."""

    def __init__(
        self,
        vocab: Vocab,
        entity_vector_length: int = 0,
        *,
        taxonomy: Optional[Taxonomy] = None,
        index: Optional[NodeIndex] = None,
        search: Optional[SearchSettings] = None,
        leaves_only: bool = False,
        encoder: Optional[Encoder] = None,
    ) -> None:
        """Create the KB.

        vocab (Vocab): the shared vocab (concept ids and mention texts go to its strings).
        entity_vector_length (int): node space's width (taken from `index` when it is given).
        taxonomy (Optional[Taxonomy]): the concepts (None: an empty KB, to fill by `from_disk`).
        index (Optional[NodeIndex]): node space and lexical index of the taxonomy.
        search (Optional[SearchSettings]): k, threshold and the channels' candidate counts.
        leaves_only (bool): return only concepts without children.
        encoder (Optional[Encoder]): maps mentions into node space (None: lexical channel only).
        """
        if index is not None:
            entity_vector_length = index.dim
        super().__init__(vocab, entity_vector_length)
        self.taxonomy = taxonomy
        self.index = index
        self.search = search or SearchSettings()
        self.leaves_only = leaves_only
        self.encoder = encoder
        self._check()

    def _check(self) -> None:
        if self.index is not None and self.index.dim != self.entity_vector_length:
            raise ValueError(
                f"Text2NodeKB: node space has {self.index.dim} dimensions but entity_vector_length is "
                f"{self.entity_vector_length}; set the entity_linker's entity_vector_length to {self.index.dim}."
            )
        if self.taxonomy is not None and self.index is not None and len(self.index) != len(self.taxonomy):
            raise ValueError(f"Text2NodeKB: the index has {len(self.index)} rows, the taxonomy {len(self.taxonomy)}.")

    def is_empty(self) -> bool:
        """No taxonomy or index yet (spaCy's entity_linker refuses to run on an empty KB)."""
        return self.taxonomy is None or self.index is None

    def __len__(self) -> int:
        return 0 if self.taxonomy is None else len(self.taxonomy)

    @property
    def supports_prior_probs(self) -> bool:
        return True

    def allowed(self) -> Optional[np.ndarray]:
        """A bool per concept: may it be returned (None: all)."""
        if not self.leaves_only:
            return None
        assert self.taxonomy is not None and self.index is not None
        if self.index.is_leaf is None:
            self.index.is_leaf = leaf_mask(self.taxonomy)
        return self.index.is_leaf

    def ranked(self, mentions: Sequence[Span]) -> List[List[Tuple[int, float]]]:
        """Ranked (node index, score) per mention."""
        if self.taxonomy is None or self.index is None:
            raise LinkerNotReadyError("Text2NodeKB is empty: load it (from_disk) or build it with a kb loader.")
        if not mentions:
            return []
        if self.encoder is not None:
            Y = np.asarray(self.encoder(mentions), dtype="float32")
        else:
            Y = np.zeros((len(mentions), self.index.dim), dtype="float32")
        s = self.search
        return self.index.search(
            Y,
            [m.text for m in mentions],
            k=s.k,
            ann_candidates=s.ann_candidates,
            lexical_candidates=s.lexical_candidates,
            fusion_weight=s.fusion_weight,
            search_k=s.search_k,
            ef=s.ef_search,
            allowed=self.allowed(),
            threshold=s.threshold,
        )

    def get_candidates_batch(self, mentions: Iterable[Span]) -> List[List[Candidate]]:
        """Candidates per mention, best first: entity = concept id, prior_prob = search score."""
        mentions = list(mentions)
        strings = self.vocab.strings
        out = []
        for mention, ranked in zip(mentions, self.ranked(mentions)):
            alias = strings.add(mention.text)
            cands = []
            for n, score in ranked:
                cid = self.taxonomy.id_at(n)  # type: ignore[union-attr]
                cands.append(Candidate(self, strings.add(cid), 0, self.index.space[n].tolist(), alias, float(score)))  # type: ignore[union-attr]
            out.append(cands)
        return out

    def get_candidates(self, mention: Span) -> List[Candidate]:
        return self.get_candidates_batch([mention])[0]

    def get_vector(self, entity: str) -> List[float]:
        """The concept's row of node space."""
        if self.taxonomy is None or self.index is None:
            raise LinkerNotReadyError("Text2NodeKB is empty: it has no vectors.")
        return self.index.space[self.taxonomy.index(entity)].tolist()

    # serialization ----------------------------------------------------------------------
    def _cfg(self) -> Dict[str, Any]:
        return {"search": dataclasses.asdict(self.search), "leaves_only": self.leaves_only}

    def _load_cfg(self, cfg: Dict[str, Any]) -> None:
        self.search = settings_block("search", cfg.get("search"), SearchSettings)
        self.leaves_only = bool(cfg.get("leaves_only", False))

    def to_bytes(self, **kwargs: Any) -> bytes:
        if self.taxonomy is None or self.index is None:
            raise LinkerNotReadyError("Text2NodeKB is empty: nothing to serialize.")
        return srsly.msgpack_dumps(
            {"cfg": self._cfg(), "taxonomy": self.taxonomy.to_bytes(), "index": self.index.to_bytes()}
        )

    def from_bytes(self, bytes_data: bytes, *, exclude: Tuple[str, ...] = tuple()) -> "Text2NodeKB":
        msg = srsly.msgpack_loads(bytes_data)
        self._load_cfg(msg["cfg"])
        self.taxonomy = Taxonomy.from_bytes(msg["taxonomy"])
        self.index = NodeIndex.from_bytes(msg["index"])
        self._check()
        return self

    def to_disk(self, path: Union[str, Path], exclude: Iterable[str] = tuple()) -> None:
        if self.taxonomy is None or self.index is None:
            raise LinkerNotReadyError("Text2NodeKB is empty: nothing to save.")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        serialize: Dict[str, Callable[[Path], None]] = {
            "cfg": lambda p: srsly.write_json(p, self._cfg()),
            "taxonomy": lambda p: self.taxonomy.to_disk(p),  # type: ignore[union-attr]
            "index": lambda p: self.index.to_disk(p),  # type: ignore[union-attr]
        }
        util.to_disk(path, serialize, exclude)

    def from_disk(self, path: Union[str, Path], exclude: Iterable[str] = tuple()) -> "Text2NodeKB":
        util.from_disk(Path(path), part_loaders(self, on_disk=True), exclude)
        self._check()
        return self


def build_index(
    vocab: Vocab, taxonomy: Taxonomy, node_vectors: Any, settings: IndexSettings, *, seed: int = 0
) -> Tuple[NodeIndex, bool]:
    """Node space, its nearest-neighbour index and the lexical channel of a taxonomy.

    vocab (Vocab): its word vectors make the text part of node space.
    taxonomy (Taxonomy): the concepts.
    node_vectors (np.ndarray / NodeVectors / None): node2vec vectors, one row per concept in
        taxonomy order (None: a text-only node space).
    settings (IndexSettings): node space and index settings.
    seed (int): the neighbour index's seed.
    RETURNS (Tuple[NodeIndex, bool]): the index, and whether node vectors went into it.
    """
    nv = None
    if node_vectors is not None:
        if hasattr(node_vectors, "check"):
            node_vectors.check(taxonomy)
        nv = np.asarray(node_vectors, dtype="float32")
        if nv.ndim != 2 or nv.shape[0] != len(taxonomy):
            raise ValueError(
                f"text2node_linker: node_vectors has shape {nv.shape} but the taxonomy has {len(taxonomy)} concepts; "
                "compute node vectors for this taxonomy (one row per concept, in taxonomy order)."
            )
    elif settings.node_space == "node2vec":
        logger.warning("text2node_linker: no node_vectors given; node space is text-only.")
    texts, string_node_arr = taxonomy.strings()
    text_vecs = None
    if settings.node_space == "node2vec+text" or nv is None:
        if vocab.vectors.shape[0] == 0:
            if nv is None:
                raise ValueError(
                    "text2node_linker: no node_vectors and no word vectors: nothing to build node space from."
                )
        else:
            text_vecs = node_text_vectors(
                texts, string_node_arr, len(taxonomy), vectors_table(vocab), lambda ws: find_rows(vocab, ws)
            )
            if settings.text_dim:
                text_vecs = principal_components(text_vecs, settings.text_dim)
    space = build_node_space(nv, text_vecs, text_weight=settings.text_weight)
    logger.info(
        "text2node_linker: node space %s x %s; building lexical channel and %s index", *space.shape, settings.ann
    )
    lexical = LexicalIndex.build(texts, cast(Sequence[int], string_node_arr), len(taxonomy), max_df=settings.max_df)
    is_leaf = leaf_mask(taxonomy)
    # with candidates = "leaves", the neighbour index holds only the leaves (smaller, and no over-fetching)
    ann_items = np.flatnonzero(is_leaf) if settings.candidates == "leaves" else None
    index = NodeIndex(
        space,
        lexical,
        ann=settings.ann,
        n_trees=settings.n_trees,
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construction=settings.hnsw_ef_construction,
        seed=seed,
        is_leaf=is_leaf,
        ann_items=ann_items,
    )
    return index, nv is not None


@registry.misc("spacy-text2node.taxonomy_kb.v1")
def taxonomy_kb(
    taxonomy: Taxonomy,
    node_vectors: Any = None,
    index: Optional[Dict[str, Any]] = None,
    search: Optional[Dict[str, Any]] = None,
    seed: int = 0,
) -> Callable[[Vocab], Text2NodeKB]:
    """A kb_loader (e.g. for spaCy's `entity_linker`) that builds a Text2NodeKB of a
    taxonomy with the pipeline's word vectors (lexical channel only: no mapper).

    taxonomy (Taxonomy): the concepts (e.g. `spacy-text2node.TaxonomyDir.v1`).
    node_vectors: node2vec vectors in taxonomy order (e.g. `spacy-text2node.NodeVectors.v1`), or None.
    index (Optional[Dict[str, Any]]): index settings (the linker's [index] block).
    search (Optional[Dict[str, Any]]): search settings (the linker's [search] block).
    seed (int): the neighbour index's seed.
    """
    index_settings = settings_block("index", index, IndexSettings)
    search_settings = settings_block("search", search, SearchSettings)

    def load(vocab: Vocab) -> Text2NodeKB:
        built, _ = build_index(vocab, taxonomy, node_vectors, index_settings, seed=seed)
        return Text2NodeKB(
            vocab,
            taxonomy=taxonomy,
            index=built,
            search=search_settings,
            leaves_only=index_settings.candidates == "leaves",
        )

    return load


@registry.misc("spacy-text2node.empty_kb.v1")
def empty_kb() -> Callable[[Vocab, int], Text2NodeKB]:
    """`generate_empty_kb` for spaCy's entity_linker: an empty Text2NodeKB (filled by its
    kb_loader at initialize, or by from_disk when the pipeline loads)."""

    def make(vocab: Vocab, entity_vector_length: int) -> Text2NodeKB:
        return Text2NodeKB(vocab, entity_vector_length)

    return make


def leaf_mask(taxonomy: Taxonomy) -> np.ndarray:
    """A bool per concept: has it no children."""
    return np.asarray([taxonomy.is_leaf(c) for c in taxonomy.ids], dtype=bool)


def vectors_table(vocab: Vocab) -> np.ndarray:
    """The vocab's vector table as a numpy array."""
    data = vocab.vectors.data
    return data if isinstance(data, np.ndarray) else data.get()


def find_rows(vocab: Vocab, ws: List[str]) -> np.ndarray:
    """Rows of the words in the vocab's vector table (-1: none)."""
    keys = np.asarray([get_string_id(w) for w in ws], dtype="uint64")
    return np.asarray(vocab.vectors.find(keys=keys), dtype="int64")


def build_memory(
    examples: Iterable[Example], taxonomy: Taxonomy, source: SpanSource, lexical: LexicalIndex, max_df: float
) -> Optional[LexicalIndex]:
    """A lexical index of the training phrases (the gold spans of `examples`, as `source`
    finds them) that are not already one of their concept's strings (None when there are
    none): the linker's memory."""
    own: Dict[int, set] = {}
    for key, nodes in lexical.exact.items():
        for n in nodes:
            own.setdefault(n, set()).add(key)
    seen, texts, nodes_of = set(), [], []
    for eg in examples:
        offs, golds = training_spans(source, eg)
        for (s, e), g in zip(offs, golds):
            text = eg.predicted[s:e].text
            key = normalize_text(text)
            if not key:
                continue
            for cid in g:
                if cid not in taxonomy:
                    continue
                n = taxonomy.index(cid)
                if key in own.get(n, ()) or (key, n) in seen:
                    continue
                seen.add((key, n))
                texts.append(text)
                nodes_of.append(n)
    if not texts:
        return None
    logger.info("text2node_linker: memory of %d training phrases", len(texts))
    string_node = cast(Sequence[int], np.asarray(nodes_of, dtype="int32"))
    return LexicalIndex.build(texts, string_node, len(taxonomy), max_df=max_df)
