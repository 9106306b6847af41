"""The `text2node_linker` component: map spans to taxonomy concepts (Text2Node).

span tokens -> word vectors -> phrase mapper (CNN / BiLSTM / mean) -> point in node space
-> nearest-neighbour (HNSW) candidates fused with a lexical char 3-gram channel -> `span.kb_id_` and
`span._.text2node_candidates` (the one place the predictions are kept).

The factories are in `factories`, the settings blocks in `settings`, the KB and index
building in `kb`, the loss in `training`, calibration in `calibrate`, the scorer in `scoring`.
"""

import dataclasses
import logging
import re
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Model, Optimizer

from ..errors import LinkerNotReadyError, UnknownConceptError
from ..index import NodeIndex, PhraseDictionary
from ..ml.mapper import mapper_dims, set_mapper_dims  # registers the architectures too
from ..ml.row_ops import batched_products
from ..ml.static_vectors import StaticInputCache, TokenInputCache, spans_with_vectors
from ..taxonomy import Taxonomy
from . import calibrate as calibration
from . import manifest as mf
from .composite import keep_whole
from .kb import Text2NodeKB, build_index, build_memory
from .scoring import SCORE_KEYS, make_linker_scorer, score_linking
from .search import MAP_CHUNK, SEARCH_CHUNK, LinkerSearch, Offsets, Ranked, available_cpus, blas_threads
from .serialize import LinkerSerialization
from .settings import (
    ARCHITECTURES,
    DEFAULT_LINKER_MODEL,
    DEFAULT_MODEL,
    IndexSettings,
    RuntimeSettings,
    SearchSettings,
    TrainingSettings,
    block_from_cfg,
    flat_settings,
)
from .spans import (
    CANDIDATES_EXT,
    CONCEPTS_EXT,
    GOLD_EXT,
    SpanSource,
    check_spans_setting,
    gold_ids,
    span_source,
    training_spans,
)
from .training import NegativeSampler, SynonymTable, loss_and_grad, synonym_loss_and_grad

logger = logging.getLogger("spacy_text2node")

_WORD = re.compile(r"\w+|[^\w\s]")
ABBREVIATIONS_EXT = "text2node_abbreviations"  # set by the text2node_abbreviations component

__all__ = [
    "ARCHITECTURES",
    "CANDIDATES_EXT",
    "CONCEPTS_EXT",
    "DEFAULT_LINKER_MODEL",
    "DEFAULT_MODEL",
    "GOLD_EXT",
    "MAP_CHUNK",
    "SCORE_KEYS",
    "SEARCH_CHUNK",
    "Text2NodeLinker",
    "available_cpus",
    "blas_threads",
    "check_spans_setting",
    "gold_ids",
    "make_linker_scorer",
    "score_linking",
]


class Text2NodeLinker(LinkerSearch, LinkerSerialization, TrainablePipe):
    """Link spans to taxonomy concepts with a trained phrase mapper and a node-space index."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "text2node_linker",
        *,
        spans: Any = "ents",
        index: Optional[IndexSettings] = None,
        search: Optional[SearchSettings] = None,
        training: Optional[TrainingSettings] = None,
        runtime: Optional[RuntimeSettings] = None,
        seed: int = 0,
        scorer: Optional[Callable] = score_linking,
    ) -> None:
        """Initialize the linker (see `factories.make_text2node_linker` for the arguments)."""
        blocks: List[Any] = [index or IndexSettings(), search or SearchSettings(), training or TrainingSettings()]
        blocks.append(runtime or RuntimeSettings())
        for b in blocks:
            b.check()
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        # flat, as saved with the pipeline (component/cfg); the blocks are read from it
        self.cfg: Dict[str, Any] = {"spans": check_spans_setting(spans), **flat_settings(*blocks), "seed": seed}
        self.cfg.update(nI=None, nO=None, has_node_vectors=None)
        self.taxonomy: Optional[Taxonomy] = None
        self.index: Optional[NodeIndex] = None
        self._negatives = NegativeSampler(seed)
        self._synonyms = SynonymTable()  # the taxonomy's strings as the mapper maps them (synonym_weight)
        self._kb: Optional[Text2NodeKB] = None
        self._results: Dict[str, List[Tuple[int, float]]] = {}
        self._results_key: Any = None
        self._vectors_seen: Dict[Any, Dict[str, Any]] = {}  # vectors_fingerprint per table (see check_vectors)
        self._static_inputs = StaticInputCache()  # the mapper's input layer per vector row (see map_spans)
        self._token_inputs = TokenInputCache()  # the same per token form, after a context-free embed

    # settings and helpers ---------------------------------------------------------------
    @property
    def span_source(self) -> SpanSource:
        """The spans this component links (the `spans` setting)."""
        return span_source(self.cfg["spans"])

    @property
    def search_settings(self) -> SearchSettings:
        return block_from_cfg(SearchSettings, self.cfg)

    @property
    def training_settings(self) -> TrainingSettings:
        return block_from_cfg(TrainingSettings, self.cfg)

    @property
    def kb(self) -> Text2NodeKB:
        """The taxonomy and index as a spaCy KnowledgeBase, searched with this linker's
        mapper and settings (e.g. `entity_linker.set_kb(lambda vocab: linker.kb)`)."""
        self.require_ready()
        kb = self._kb
        if kb is None or kb.index is not self.index or kb.taxonomy is not self.taxonomy:
            kb = self._kb = Text2NodeKB(self.vocab, taxonomy=self.taxonomy, index=self.index, encoder=self._encode)
        kb.search = self.search_settings
        kb.leaves_only = self.cfg.get("candidates", "all") == "leaves"
        return kb

    def _encode(self, spans: Sequence[Span]) -> np.ndarray:
        self.fresh_strings()  # the KB searches the index with these outputs
        docs: List[Doc] = []
        where: Dict[int, int] = {}
        offsets = []
        for s in spans:
            i = where.setdefault(id(s.doc), len(docs))
            if i == len(docs):
                docs.append(s.doc)
            offsets.append((i, s.start, s.end))
        return self.map_spans(docs, offsets)

    def require_ready(self) -> None:
        """Raise LinkerNotReadyError unless the linker has a taxonomy and an index."""
        if self.taxonomy is None or self.index is None:
            raise LinkerNotReadyError(
                f"The '{self.name}' component has no taxonomy/index yet: call nlp.initialize() with "
                f"[initialize.components.{self.name}] taxonomy (and node_vectors), or load a trained pipeline."
            )

    def spans_of(self, doc: Doc) -> List[Span]:
        """The spans this component links in `doc` (see the `spans` setting)."""
        return self.span_source(doc)

    def gold_index(self, golds: List[List[str]]) -> Tuple[np.ndarray, List[List[int]]]:
        """Node indices of gold concept ids: the first per span, and all per span."""
        tax = self.taxonomy
        assert tax is not None
        first, alls = [], []
        for g in golds:
            idx = []
            for cid in g:
                try:
                    idx.append(tax.index(cid))
                except KeyError:
                    raise UnknownConceptError(
                        f"text2node_linker: gold concept {cid!r} is not in taxonomy {tax.name!r} "
                        f"({len(tax)} concepts). Fix the training data or use the taxonomy it was made for."
                    ) from None
            first.append(idx[0])
            alls.append(idx)
        return np.asarray(first, dtype="int64"), alls

    def results_changed(self) -> None:
        """Empty the result cache (the model, index or reranker changed)."""
        self._results_key = None

    # prediction -------------------------------------------------------------------------
    def predict(self, docs: Iterable[Doc]) -> List[List[Ranked]]:
        """Ranked (node index, score) candidates for each span of each doc: one list per
        query of the span (one query, or one per part of a composite mention).

        With a calibrated linker, a composite mention is searched whole as well as part by
        part, and stays whole when the whole's best candidate is at least as probable as
        the least sure part's (`composite.keep_whole`: "hereditary breast and ovarian
        cancer" is one syndrome in CTD MEDIC, "breast and ovarian cancer" two cancers).

        A span whose text, as written, is in the phrase dictionary is searched as written
        (no long form, no parts) and gets the dictionary's concept first (`dictionary_first`):
        the dictionary's phrases are mentions as they were annotated.

        docs (Iterable[Doc]): the docs.
        RETURNS (List[List[List[List[Tuple[int, float]]]]]): per doc, per span, per query, candidates.
        """
        docs = list(docs)
        self.require_ready()
        spans = [self.spans_of(doc) for doc in docs]
        qdocs: List[Doc] = list(docs)
        offsets: Offsets = []
        texts: List[str] = []
        counts: List[List[Tuple[int, int]]] = []  # per span: (parts, whole queries after them)
        in_dictionary: List[Optional[Tuple[int, int]]] = []  # per query: its span's dictionary hit
        settings = self.search_settings
        # only probabilities of different queries compare (see composite.keep_whole)
        unsplit = dataclasses.replace(settings, composite=False) if self.scores_are_probabilities else None
        for i, ss in enumerate(spans):
            counts.append([])
            for s in ss:
                hit = self.dictionary_hit(s.text)
                queries = [(i, s.start, s.end, s.text)] if hit else self.span_queries(i, s, qdocs, settings)
                whole = self.span_queries(i, s, qdocs, unsplit) if len(queries) > 1 and unsplit else []
                counts[-1].append((len(queries), len(whole)))
                for q_doc, start, end, text in queries + whole:
                    offsets.append((q_doc, start, end))
                    texts.append(text)
                    in_dictionary.append(hit)
        k = self.cfg["k"]
        flat = self.rank(qdocs, offsets, texts, k, nil_cut=False, dictionary=False)
        found = [j for j, hit in enumerate(in_dictionary) if hit is not None]
        if found:
            firsts = self.dictionary_first([in_dictionary[j] for j in found], [flat[j] for j in found], k)
            for j, r in zip(found, firsts):
                flat[j] = r
        out: List[List[Ranked]] = []
        j = 0
        for per_span in counts:
            out.append([])
            for n, n_whole in per_span:
                parts, whole_r = flat[j : j + n], flat[j + n : j + n + n_whole]
                if whole_r and keep_whole(whole_r[0], parts):
                    parts = whole_r
                out[-1].append(self.nil_cut(parts))
                j += n + n_whole
        return out

    def span_queries(
        self, i: int, span: Span, docs: List[Doc], settings: Optional[SearchSettings] = None
    ) -> List[Tuple[int, int, int, str]]:
        """What is searched for a span: (doc index, start, end, text) per query.

        A short form defined in the document is searched as its long form, and a mention
        with one inside as its text with the long form written out (`abbreviations`,
        `expand_short_forms`); a coordinated mention is split into its parts (`composite`).
        A rewritten text or a part is a small doc appended to `docs` (with the span's
        doc's vector hooks).

        i (int): the index of the span's doc in `docs`.
        span (Span): the span.
        docs (List[Doc]): the batch's docs; part docs are appended.
        settings (Optional[SearchSettings]): the search settings (read from the cfg when None).
        RETURNS (List[Tuple[int, int, int, str]]): the queries.
        """
        settings = settings or self.search_settings
        text, expanded = span.text, False
        use = settings.abbreviations and Doc.has_extension(ABBREVIATIONS_EXT)
        pairs = span.doc._.get(ABBREVIATIONS_EXT) if use else None
        if pairs:
            from .abbreviations import expand_short_forms, long_form

            whole = long_form(span, pairs)
            if whole is not None:
                span, text = whole, whole.text
            else:
                inner = expand_short_forms(span, pairs)  # "cerebral ALD" -> "cerebral adrenoleukodystrophy"
                if inner is not None:
                    text, expanded = inner, True
        parts = [text]
        if settings.composite:
            from .composite import split_composite

            parts = split_composite(text)
        if len(parts) == 1 and not expanded:
            return [(i, span.start, span.end, span.text)]
        queries = []
        for part in parts:  # each a small doc with the span's doc's vector hooks
            words = _WORD.findall(part)
            part_doc = Doc(self.vocab, words=words)
            part_doc.user_token_hooks.update(span.doc.user_token_hooks)
            part_doc.user_span_hooks.update(span.doc.user_span_hooks)
            docs.append(part_doc)
            queries.append((len(docs) - 1, 0, len(words), part))
        return queries

    def calibrate(
        self,
        docs: Sequence[Doc],
        offsets: Offsets,
        texts: Sequence[str],
        golds: Sequence[Sequence[str]],
        *,
        l2_words: Optional[float] = None,
        select: Optional[calibration.Spans] = None,
        siamese: Optional[bool] = None,
    ) -> Dict[str, float]:
        """Fit the reranker (the learned fusion of the lexical, node-space, siamese and
        word-overlap channels; `map_strings` first) on development spans the mapper did not train on.

        Spans whose text is a string of a concept the linker can return are left out: such
        a text is found by exact match at prediction anyway, and its candidates' features
        are biased (the node-space text vector of its concept is built from that very
        string), so learning from it would overrate the node channel. A string of a
        concept that is not a candidate (a parent code when `candidates` is "leaves") is
        kept: no candidate's vector holds it.

        Raises NotCalibratableError (a ValueError) when no such span is left (e.g. dev
        pairs that are all inclusion terms of the taxonomy): the linker keeps the fixed fusion.

        docs, offsets, texts: the spans, as for `rank`.
        golds (Sequence[Sequence[str]]): right concept ids per span.
        l2_words (Optional[float]): L2 penalty of the per-word weights; None picks it from
            `Reranker.L2_GRID` by 2-fold cross-validation over the spans, or by `select`.
        select: other held-out spans (docs, offsets, texts, golds) worded unlike the
            calibration spans, e.g. synonyms of the taxonomy: the penalty is the one whose
            reranker, fitted on the calibration spans, has the best acc@1 on them (their own
            strings left out of the exact matches and lexical features, as in calibration).
            Cross-validation only measures the calibration spans' own kind of text; when
            they are a proxy (P3's default-child pairs), it picks the weakest penalty and
            the word weights overfit the proxy.
        siamese (Optional[bool]): the siamese feature (the taxonomy's strings mapped into
            the index). None drops it where it lowers the held-out acc@1 that chooses the
            penalty (cross-validated, or on `select`): its strings leave the index and
            searches skip its work. True keeps it, False drops it.
        RETURNS (Dict[str, float]): spans given, spans used, spans with a right candidate,
            and their acc@1 before and after.
        """
        return calibration.calibrate(
            self, docs, offsets, texts, golds, l2_words=l2_words, select=select, siamese=siamese
        )

    def set_annotations(self, docs: Iterable[Doc], preds: List[List[Ranked]]) -> None:
        """Set each linked span's kb_id_, `_.text2node_candidates` (concept id, label, score)
        and `_.text2node_concepts` (the linked concept of each part: one for a plain mention)."""
        tax = self.taxonomy
        assert tax is not None
        source = self.span_source
        for doc, doc_preds in zip(docs, preds):
            spans = source(doc)
            per_span = [
                [[(tax.id_at(n), tax.label(tax.id_at(n)), float(s)) for n, s in part] for part in parts]
                for parts in doc_preds
            ]
            firsts = [parts[0] if parts else [] for parts in per_span]
            annotated = source.annotate(doc, spans, [c[0][0] if c else "" for c in firsts])
            for span, parts, c in zip(annotated, per_span, firsts):
                span._.set(CANDIDATES_EXT, c)
                concepts: List[str] = []
                for part in parts:
                    if part and part[0][0] not in concepts:
                        concepts.append(part[0][0])
                span._.set(CONCEPTS_EXT, concepts)

    # training ---------------------------------------------------------------------------
    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch of examples (all spans of the batch in one model call)."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        self.require_ready()
        docs, offsets, golds = self._batch(examples)
        if not offsets:
            return losses
        gold_first, gold_all = self.gold_index(golds)  # raises on unknown concepts
        # spans without any word vector are linked by the lexical channel only (their mapper
        # output is ignored at prediction), so the mapper does not train on them
        keep = spans_with_vectors(docs, offsets, self._max_tokens())
        if not keep.all():
            offsets = [o for o, k in zip(offsets, keep) if k]
            gold_first = gold_first[keep]
            gold_all = [g for g, k in zip(gold_all, keep) if k]
            if not offsets:
                return losses
        self.model_changed()  # cached results and mapped strings are stale
        settings = self.training_settings
        if settings.synonym_weight > 0:
            assert self.taxonomy is not None
            self._synonyms.step(self.taxonomy, settings.synonym_refresh, partial(self.map_texts, cached=False))
        texts = [docs[i][s:e].text for i, s, e in offsets] if settings.synonym_weight > 0 else None
        with batched_products():  # a training step's products need not be batch-invariant
            Y, backprop = self.model.begin_update((docs, offsets))
            loss, d_Y = self._loss_and_grad(self.model.ops.to_numpy(Y), gold_first, gold_all, texts)
            backprop(self.model.ops.asarray2f(d_Y))  # type: ignore[arg-type]
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def _batch(self, examples: Sequence[Example]) -> Tuple[List[Doc], Offsets, List[List[str]]]:
        docs: List[Doc] = []
        offsets: Offsets = []
        golds: List[List[str]] = []
        for i, eg in enumerate(examples):
            docs.append(eg.predicted)
            offs, g = training_spans(self.span_source, eg)
            offsets.extend((i, s, e) for s, e in offs)
            golds.extend(g)
        return docs, offsets, golds

    def _loss_and_grad(
        self, Y: np.ndarray, gold_first: np.ndarray, gold_all: List[List[int]], texts: Optional[Sequence[str]] = None
    ) -> Tuple[float, np.ndarray]:
        """The loss and its gradient; with the spans' texts and synonym_weight > 0, the
        synonym-marginalised term over the strings of the same candidate concepts too."""
        assert self.taxonomy is not None and self.index is not None
        settings = self.training_settings
        negatives = self._negatives(gold_first, self.taxonomy, self.index, settings)
        loss, d_Y = loss_and_grad(Y, gold_first, gold_all, self.index.space, negatives, settings)
        w = settings.synonym_weight
        if texts is not None and w > 0:
            extra, d_extra = synonym_loss_and_grad(Y, texts, gold_all, negatives, self._synonyms, settings.temperature)
            loss, d_Y = loss + w * extra, d_Y + w * d_extra
        return loss, d_Y

    def get_loss(self, examples: Iterable[Example], scores: Any) -> Tuple[float, np.ndarray]:
        """Loss and gradient of the mapper outputs `scores` for the gold spans of `examples`."""
        golds = self._batch(list(examples))[2]
        gold_first, gold_all = self.gold_index(golds)
        return self._loss_and_grad(self.model.ops.to_numpy(scores), gold_first, gold_all)

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        taxonomy: Optional[Taxonomy] = None,
        node_vectors: Any = None,
        dictionary: Union[str, Path, Iterable[Mapping[str, Any]], None] = None,
    ) -> None:
        """Build node space and the index, and initialize the mapper.

        get_examples (Callable[[], Iterable[Example]]): training examples (a sample
            initializes the model; their gold concepts are checked against the taxonomy).
        nlp (Language): the pipeline (its tokenizer splits the concept labels).
        taxonomy (Taxonomy): the taxonomy to link to (required).
        node_vectors (np.ndarray / NodeVectors / None): node2vec vectors, one row per
            concept in taxonomy order. None builds a text-only node space (a warning is logged).
        dictionary (str / Path / Iterable[dict] / None): annotated phrase -> concept pairs,
            a JSONL file as `read_pairs` reads it (e.g. a corpus's training mentions) or the
            pairs: a span whose text always named one concept in them is linked to it
            first (`PhraseDictionary`). None: no dictionary.
        """
        validate_get_examples(get_examples, "Text2NodeLinker.initialize")
        if taxonomy is None:
            raise ValueError(
                f"text2node_linker.initialize needs a taxonomy: set [initialize.components.{self.name}.taxonomy] "
                '(e.g. @misc = "spacy-text2node.TaxonomyDir.v1") or pass taxonomy=.'
            )
        if not isinstance(taxonomy, Taxonomy):
            raise TypeError(
                f"text2node_linker: taxonomy must be a spacy_text2node.Taxonomy, got {type(taxonomy).__name__}."
            )
        settings = block_from_cfg(IndexSettings, self.cfg)
        self.index, has_node_vectors = build_index(self.vocab, taxonomy, node_vectors, settings, seed=self.cfg["seed"])
        self.taxonomy = taxonomy
        self.cfg["nO"] = self.index.dim
        self.cfg["has_node_vectors"] = has_node_vectors
        self._negatives.reset()
        self._synonyms.reset()
        self.results_changed()
        if settings.memory:
            self.index.memory = build_memory(
                get_examples(), taxonomy, self.span_source, self.index.lexical, self.cfg["max_df"]
            )
        if dictionary is not None:
            self.set_dictionary(dictionary)
        docs, offsets, golds = self._batch(list(islice(get_examples(), 10)))
        if golds:
            self.gold_index(golds)
        if not offsets:
            docs, offsets = [Doc(self.vocab, words=["x"])], [(0, 0, 1)]
        set_mapper_dims(self.model, nI=None, nO=self.cfg["nO"])
        self.model.initialize(X=(docs, offsets))
        self.cfg["nI"] = mapper_dims(self.model)[0]
        self.cfg[mf.VECTORS_KEY] = mf.vectors_fingerprint(self.vocab.vectors)  # checked at load and use

    def set_dictionary(self, pairs: Union[str, Path, Iterable[Mapping[str, Any]], None]) -> Dict[str, int]:
        """Link the phrases that annotated pairs always linked to one concept to that
        concept first (`PhraseDictionary`; None removes the dictionary). Saved with the index.

        pairs (str / Path / Iterable[dict] / None): a JSONL file of {"text", "concept",
            "gold"?} pairs (`read_pairs`), or the pairs.
        RETURNS (Dict[str, int]): pairs read, phrases kept, and phrases left out as
            "conflicting" (annotated with different concepts) or "composite" (several at once).
        """
        self.require_ready()
        assert self.taxonomy is not None and self.index is not None
        self.results_changed()
        if pairs is None:
            self.index.dictionary = None
            return {}
        where = "dictionary pairs"
        if isinstance(pairs, (str, Path)):
            from ..readers.linking import read_pairs

            where = str(pairs)
            pairs = read_pairs(pairs, taxonomy=self.taxonomy)
        table, counts = PhraseDictionary.from_pairs(pairs, self.taxonomy, where=where)
        self.index.dictionary = table
        logger.info(
            "%s: dictionary of %d phrases from %d pairs (%s); left out %d annotated with different concepts "
            "and %d with several at once",
            self.name,
            counts["phrases"],
            counts["pairs"],
            where,
            counts["conflicting"],
            counts["composite"],
        )
        return counts

    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        """Score a batch of examples (see `score_linking`)."""
        if self.scorer is None:
            return {}
        return self.scorer(examples, taxonomy=self.taxonomy, **kwargs)

    def add_label(self, label: str) -> int:  # pragma: no cover - not label based
        raise NotImplementedError
