"""The `text2node_linker` component: map spans to taxonomy concepts (Text2Node).

span tokens -> word vectors -> phrase mapper (CNN / BiLSTM / mean) -> point in node space
-> annoy candidates fused with a lexical char 3-gram channel -> `span.kb_id_` and
`span._.text2node_candidates`.
"""

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from itertools import islice
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.strings import get_string_id
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_get_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer

from ..index import LexicalIndex, NodeIndex, _acc1, build_node_space, node_text_vectors, principal_components
from ..ml.mapper import mapper_dims, set_mapper_dims, spans_with_vectors  # registers the architectures too
from ..scoring import ranking_scores
from ..taxonomy import Taxonomy
from . import manifest as mf

logger = logging.getLogger("spacy_text2node")

CANDIDATES_EXT = "text2node_candidates"
GOLD_EXT = "text2node_gold"
USER_DATA_KEY = "text2node_linker"
DOC_LABEL = "CONCEPT"

if not Span.has_extension(CANDIDATES_EXT):
    Span.set_extension(CANDIDATES_EXT, default=None)
if not Span.has_extension(GOLD_EXT):
    Span.set_extension(GOLD_EXT, default=None)

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

SCORE_KEYS = ("acc@1", "acc@5", "mrr", "tree_distance", "nil_rate")


# spans per index search, one per thread at a time (bounds memory; results do not depend
# on it). Linking P1's first 2,000 GEM phrases on 2 threads: 2,970 phrases/s with 64,
# 3,400 with 256, 3,350 with 512, 2,150 with 1,024 (one chunk per batch: one thread);
# the whole test set's peak RSS moved by under 50 MB between 64 and 1,024
SEARCH_CHUNK = 256
# spans per static mapper call inside a chunk (a span's output does not depend on the others)
MAP_CHUNK = 64
# settings that only change how a loaded linker runs, not what it returns: the values of
# the pipeline's config (e.g. `spacy.load(..., config=...)`) win over the saved cfg
RUNTIME_SETTINGS = ("cache_size", "n_threads")


_BLAS_CONTROLLER: Any = None


def blas_threads(n: int) -> ContextManager[Any]:
    """A context in which the BLAS libraries loaded in this process (numpy's OpenBLAS)
    use at most n threads (process-wide; restored on exit). A no-op without threadpoolctl."""
    global _BLAS_CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return nullcontext()
    if _BLAS_CONTROLLER is None:
        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=n, user_api="blas")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@Language.factory(
    "text2node_linker",
    assigns=["token.ent_kb_id", "span._.text2node_candidates"],
    default_config={
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
        "scorer": {"@scorers": "spacy-text2node.linker_scorer.v1"},
    },
    default_score_weights={f"text2node_{k}": (1.0 if k == "acc@1" else None) for k in SCORE_KEYS},
)
def make_text2node_linker(
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
) -> "Text2NodeLinker":
    """Create a text2node_linker.

    model (Model): a phrase mapper (`spacy-text2node.PhraseMapperCNN.v1`, `...BiLSTM.v1`, `...Mean.v1`).
    spans (str): what to link: "ents", "doc" (the whole doc as one entity), "noun_chunks"
        or "spans:<key>" (a span group).
    k (int): candidates kept per span.
    threshold (float): candidates whose similarity (the larger of the fixed fusion score
        and the lexical cosine, both in [0, 1]) is below this are dropped; a span left
        with none is NIL (kb_id_ "").
    candidates (str): "all" concepts, or only the "leaves" (concepts without children,
        e.g. ICD-10-CM's billable codes).
    memory (bool): keep the training phrases (those that are not already a string of their
        concept) as a second lexical index; its cosine is a reranker feature and its
        matches are candidates. Used only once the linker is calibrated.
    node_space (str): "node2vec" or "node2vec+text".
    text_weight (float): weight of the text part of node space.
    text_dim (int): keep this many principal components of the text part of node space
        (0: the word vectors' full width). Shrinks the index and speeds up annoy and the
        mapper's output layer.
    fusion_weight (float): a in `a * cos_node + (1 - a) * cos_lexical`.
    ann_candidates (int): candidates from annoy.
    lexical_candidates (int): candidates from the lexical channel.
    max_df (float): lexical n-grams in more than this fraction of strings are not used
        for lexical retrieval (they still count in the score).
    n_trees (int): annoy trees.
    search_k (int): annoy search_k (-1: default).
    temperature (float): InfoNCE temperature.
    n_negatives (int): random negative concepts per batch.
    hard_negatives (int): per gold concept, this many taxonomy siblings and this many
        node-space neighbours are added as negatives.
    distance_weight (float): weight of the paper's cosine distance to the gold node vector.
    cache_size (int): results of this many distinct span texts are kept, so a mention
        that repeats (common in clinical notes) is linked once per process. Used only with
        a static-vector mapper (its output depends on the span's words alone); 0 disables.
    n_threads (int): threads that map and search a batch's spans in parallel, SEARCH_CHUNK
        spans each (0: one per available CPU, at most 8; 1: none). Results do not depend on
        it. Set 1 when several processes share the CPUs (the bulk runner's workers do).
    seed (int): random seed for sampling negatives and building annoy.
    scorer (Optional[Callable]): the scorer.
    RETURNS (Text2NodeLinker): the component.
    """
    return Text2NodeLinker(
        nlp.vocab,
        model,
        name,
        spans=spans,
        k=k,
        threshold=threshold,
        candidates=candidates,
        memory=memory,
        node_space=node_space,
        text_weight=text_weight,
        text_dim=text_dim,
        fusion_weight=fusion_weight,
        ann_candidates=ann_candidates,
        lexical_candidates=lexical_candidates,
        max_df=max_df,
        n_trees=n_trees,
        search_k=search_k,
        temperature=temperature,
        n_negatives=n_negatives,
        hard_negatives=hard_negatives,
        distance_weight=distance_weight,
        cache_size=cache_size,
        n_threads=n_threads,
        seed=seed,
        scorer=scorer,
    )


def _has_alnum(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def check_spans_setting(spans: Any) -> str:
    """Validate the linker's `spans` setting.

    spans (Any): the value: "ents", "doc", "noun_chunks" or "spans:<key>".
    RETURNS (str): the value.
    """
    if not isinstance(spans, str) or not (spans in ("ents", "doc", "noun_chunks") or spans.startswith("spans:")):
        raise ValueError(
            f"text2node_linker: spans={spans!r} is not one of 'ents' (the mentions in doc.ents), 'doc' (each doc "
            f"is one phrase), 'noun_chunks', 'spans:<key>' (a span group)."
        )
    return spans


def _gold_ids(span: Span) -> List[str]:
    gold = span._.get(GOLD_EXT) if Span.has_extension(GOLD_EXT) else None
    if gold:
        return [str(g) for g in gold]
    return [span.kb_id_] if span.kb_id_ else []


def score_linking(examples: Iterable[Example], *, taxonomy: Optional[Taxonomy] = None, **kwargs) -> Dict[str, Any]:
    """Ranking scores of the linker over the gold spans of the reference docs.

    A gold span (reference `doc.ents` with a kb_id or `_.text2node_gold`) is matched to the
    prediction at the same character offsets; a span with no prediction counts as wrong.
    A prediction is right when it is in the span's `_.text2node_gold` (fallback kb_id_).

    examples (Iterable[Example]): the examples, predicted docs annotated by the linker.
    taxonomy (Optional[Taxonomy]): for the mean tree distance.
    RETURNS (Dict[str, Any]): text2node_acc@1, acc@5, mrr, tree_distance, nil_rate.
    """
    examples = list(examples)
    if not examples:
        raise ValueError(
            "text2node_linker: no examples to score. `spacy evaluate` reads only .spacy files (DocBin): "
            "for JSONL phrase pairs or PubTator files run `text2node evaluate MODEL DATA`."
        )
    ranked: List[List[str]] = []
    gold: List[List[str]] = []
    for eg in examples:
        preds = eg.predicted.user_data.get(USER_DATA_KEY, {})
        for ent in eg.reference.ents:
            g = _gold_ids(ent)
            if not g:
                continue
            cands = preds.get(f"{ent.start_char}:{ent.end_char}") or []
            ranked.append([c[0] for c in cands])
            gold.append(g)
    if not gold:
        return {f"text2node_{k}": None for k in SCORE_KEYS}
    if taxonomy is not None:
        known = [[x for x in g if x in taxonomy] for g in gold]
        scores = ranking_scores(ranked, gold, ks=(1, 5), taxonomy=None)
        pairs = [(r, g) for r, g in zip(ranked, known) if g]
        tax_scores = (
            ranking_scores([r for r, _ in pairs], [g for _, g in pairs], ks=(1,), taxonomy=taxonomy) if pairs else {}
        )
        scores["tree_distance"] = tax_scores.get("tree_distance")
        scores["nil_rate"] = float(np.mean([len(r) == 0 for r in ranked]))
    else:
        scores = ranking_scores(ranked, gold, ks=(1, 5), taxonomy=None)
        scores["tree_distance"] = None
        scores["nil_rate"] = float(np.mean([len(r) == 0 for r in ranked]))
    out: Dict[str, Any] = {}
    for key in SCORE_KEYS:
        v = scores.get(key)
        out[f"text2node_{key}"] = None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)
    return out


@registry.scorers("spacy-text2node.linker_scorer.v1")
def make_linker_scorer() -> Callable:
    """The linker scorer: acc@1, acc@5, MRR, mean tree distance and NIL rate."""
    return score_linking


class Text2NodeLinker(TrainablePipe):
    """Link spans to taxonomy concepts with a trained phrase mapper and a node-space index."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "text2node_linker",
        *,
        spans: str = "ents",
        k: int = 5,
        threshold: float = 0.2,
        candidates: str = "all",
        memory: bool = True,
        node_space: str = "node2vec+text",
        text_weight: float = 0.5,
        text_dim: int = 0,
        fusion_weight: float = 0.5,
        ann_candidates: int = 50,
        lexical_candidates: int = 20,
        max_df: float = 0.03,
        n_trees: int = 20,
        search_k: int = -1,
        temperature: float = 0.05,
        n_negatives: int = 1024,
        hard_negatives: int = 8,
        distance_weight: float = 0.2,
        cache_size: int = 50000,
        n_threads: int = 0,
        seed: int = 0,
        scorer: Optional[Callable] = score_linking,
    ) -> None:
        """Initialize the linker (see `make_text2node_linker` for the arguments)."""
        check_spans_setting(spans)
        if candidates not in ("all", "leaves"):
            raise ValueError(f"text2node_linker: candidates={candidates!r} must be 'all' or 'leaves'.")
        if node_space not in ("node2vec", "node2vec+text"):
            raise ValueError(f"text2node_linker: node_space={node_space!r} must be 'node2vec' or 'node2vec+text'.")
        if int(n_threads) < 0:
            raise ValueError(
                f"text2node_linker: n_threads={n_threads!r} must be 0 (one per available CPU) or a positive number."
            )
        if int(text_dim) < 0:
            raise ValueError(
                f"text2node_linker: text_dim={text_dim!r} must be 0 (full width) or a positive number of components."
            )
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict[str, Any] = dict(
            spans=spans,
            k=k,
            threshold=threshold,
            candidates=candidates,
            memory=memory,
            node_space=node_space,
            text_weight=text_weight,
            text_dim=int(text_dim),
            fusion_weight=fusion_weight,
            ann_candidates=ann_candidates,
            lexical_candidates=lexical_candidates,
            max_df=max_df,
            n_trees=n_trees,
            search_k=search_k,
            temperature=temperature,
            n_negatives=n_negatives,
            hard_negatives=hard_negatives,
            distance_weight=distance_weight,
            cache_size=cache_size,
            n_threads=int(n_threads),
            seed=seed,
            nI=None,
            nO=None,
            has_node_vectors=None,
        )
        self.taxonomy: Optional[Taxonomy] = None
        self.index: Optional[NodeIndex] = None
        self._rng = np.random.default_rng(seed)
        self._sibling_cache: Dict[int, np.ndarray] = {}
        self._neighbour_cache: Dict[int, np.ndarray] = {}
        self._results: Dict[str, List[Tuple[int, float]]] = {}
        self._results_key: Any = None
        self._vectors_seen: Dict[Any, Dict[str, Any]] = {}  # vectors_fingerprint per table (see _check_vectors)

    # helpers ----------------------------------------------------------------------------
    def _require_ready(self) -> None:
        if self.taxonomy is None or self.index is None:
            raise ValueError(
                f"The '{self.name}' component has no taxonomy/index yet: call nlp.initialize() with "
                f"[initialize.components.{self.name}] taxonomy (and node_vectors), or load a trained pipeline."
            )

    def spans_of(self, doc: Doc) -> List[Span]:
        """The spans this component links in `doc` (see the `spans` setting)."""
        mode = self.cfg["spans"]
        if mode == "ents":
            return list(doc.ents)
        if mode == "doc":
            return [doc[:]]
        if mode == "noun_chunks":
            return list(doc.noun_chunks)
        key = mode.split(":", 1)[1]
        return list(doc.spans[key]) if key in doc.spans else []

    def _training_spans(self, eg: Example) -> Tuple[List[Tuple[int, int]], List[List[str]]]:
        """Token offsets in the predicted doc and gold ids of each gold span of an example."""
        mode = self.cfg["spans"]
        ref = eg.reference
        if mode.startswith("spans:"):
            key = mode.split(":", 1)[1]
            gold_spans = list(ref.spans[key]) if key in ref.spans else list(ref.ents)
        else:
            gold_spans = list(ref.ents)
        offsets, golds = [], []
        for span in gold_spans:
            g = _gold_ids(span)
            if not g:
                continue
            pred = eg.predicted.char_span(span.start_char, span.end_char, alignment_mode="expand")
            if pred is None:
                continue
            offsets.append((pred.start, pred.end))
            golds.append(g)
        return offsets, golds

    def _gold_index(self, golds: List[List[str]]) -> Tuple[np.ndarray, List[List[int]]]:
        tax = self.taxonomy
        first, alls = [], []
        for g in golds:
            idx = []
            for cid in g:
                try:
                    idx.append(tax.index(cid))
                except KeyError:
                    raise ValueError(
                        f"text2node_linker: gold concept {cid!r} is not in taxonomy {tax.name!r} "
                        f"({len(tax)} concepts). Fix the training data or use the taxonomy it was made for."
                    ) from None
            first.append(idx[0])
            alls.append(idx)
        return np.asarray(first, dtype="int64"), alls

    # prediction -------------------------------------------------------------------------
    def predict(self, docs: Iterable[Doc]) -> List[List[List[Tuple[int, float]]]]:
        """Ranked (node index, score) candidates for each span of each doc.

        docs (Iterable[Doc]): the docs.
        RETURNS (List[List[List[Tuple[int, float]]]]): per doc, per span, candidates.
        """
        docs = list(docs)
        self._require_ready()
        spans = [self.spans_of(doc) for doc in docs]
        offsets = [(i, s.start, s.end) for i, ss in enumerate(spans) for s in ss]
        texts = [s.text for ss in spans for s in ss]
        flat = self.rank(docs, offsets, texts)
        out, j = [], 0
        for ss in spans:
            out.append(flat[j : j + len(ss)])
            j += len(ss)
        return out

    def _max_tokens(self) -> int:
        for node in self.model.walk():
            if node.name == "t2n_span_embed":
                return int(node.attrs["max_tokens"])
        return 32

    def rank(
        self, docs: Sequence[Doc], offsets: List[Tuple[int, int, int]], texts: Sequence[str], k: Optional[int] = None
    ) -> List[List[Tuple[int, float]]]:
        """Ranked (node index, fused score) for spans given as (doc index, start, end).

        Candidates below the threshold are dropped (a NIL span gets an empty list), and so is
        a span without a letter or digit: punctuation is never a concept, whatever vectors
        its characters get from a subword model.
        """
        if not offsets:
            return []
        linkable = [i for i, t in enumerate(texts) if _has_alnum(t)]
        if len(linkable) < len(texts):
            out: List[List[Tuple[int, float]]] = [[] for _ in texts]
            sub = [offsets[i] for i in linkable], [texts[i] for i in linkable]
            for i, r in zip(linkable, self.rank(docs, sub[0], sub[1], k)):
                out[i] = r
            return out
        cfg = self.cfg
        k = k or cfg["k"]
        cache = self._result_cache(k, docs)
        if cache is None:
            return self._search(docs, offsets, texts, k)
        todo = [i for i, t in enumerate(texts) if t not in cache]
        if todo:
            # distinct texts once each (a batch often repeats a mention)
            first: Dict[str, int] = {}
            for i in todo:
                first.setdefault(texts[i], i)
            idx = list(first.values())
            res = self._search(docs, [offsets[i] for i in idx], [texts[i] for i in idx], k)
            if len(cache) + len(idx) > cfg["cache_size"]:
                cache.clear()
            for i, r in zip(idx, res):
                cache[texts[i]] = r
        return [list(cache[t]) for t in texts]

    def _search(
        self, docs: Sequence[Doc], offsets: List[Tuple[int, int, int]], texts: Sequence[str], k: int
    ) -> List[List[Tuple[int, float]]]:
        cfg = self.cfg
        allowed = self._allowed()
        static = self._static_mapper()
        # a context-reading mapper (tok2vec listener) runs once over the whole batch; a
        # static one per chunk, in the chunk's thread (its output for a span does not
        # depend on the other spans of the chunk: see ml.mapper.RowBlockOps)
        Y_all = None if static else self._mapped(docs, offsets)

        # spans are independent: searching SEARCH_CHUNK at a time bounds the candidate
        # tables' memory whatever the batch size, and lets threads share the chunks
        # (BLAS, annoy and the numba kernels release the GIL; the shared index is only read)
        def chunk(a: int) -> List[List[Tuple[int, float]]]:
            b = min(a + SEARCH_CHUNK, len(texts))
            if static:  # the mapper's intermediate arrays for 256 spans took 22 MB: 64 at a time
                Y = np.concatenate(
                    [self._mapped(docs, offsets[c : min(c + MAP_CHUNK, b)]) for c in range(a, b, MAP_CHUNK)]
                )
            else:
                Y = Y_all[a:b]
            return self.index.search(
                Y,
                texts[a:b],
                k=k,
                ann_candidates=cfg["ann_candidates"],
                lexical_candidates=cfg["lexical_candidates"],
                fusion_weight=cfg["fusion_weight"],
                search_k=cfg["search_k"],
                allowed=allowed,
                threshold=cfg["threshold"],
            )

        starts = list(range(0, len(texts), SEARCH_CHUNK))
        threads = min(self._n_threads(), len(starts))
        # numpy's BLAS (the mapper) always runs one thread here: our threads are the
        # parallelism, and a product's rounding depends on BLAS's thread count, so one
        # thread everywhere makes scores the same in any process (bulk workers run one)
        with blas_threads(1):
            if threads > 1:
                with ThreadPoolExecutor(threads, thread_name_prefix=self.name) as pool:
                    parts = list(pool.map(chunk, starts))
            else:
                parts = [chunk(a) for a in starts]
        return [r for part in parts for r in part]

    def _n_threads(self) -> int:
        n = int(self.cfg.get("n_threads", 0) or 0)
        return n if n > 0 else min(8, available_cpus())

    def _result_cache(self, k: int, docs: Sequence[Doc]) -> Optional[Dict[str, List[Tuple[int, float]]]]:
        """Check the docs' word vectors (`_check_vectors`), then the span-text result cache
        for them: emptied whenever a setting, the index, the model, the vectors or the
        docs' vector hook changed; None when disabled or when the mapper reads context."""
        vectors = self._check_vectors(docs[0].vocab)["fingerprint"]
        if int(self.cfg.get("cache_size", 0) or 0) <= 0 or not self._static_mapper():
            return None
        hook = docs[0].user_token_hooks.get("vector")
        key = (
            k,
            id(self.index),
            id(self.index.reranker),
            vectors,
            id(getattr(hook, "__self__", hook)),
            tuple(sorted((a, str(b)) for a, b in self.cfg.items())),
        )
        if key != self._results_key:
            self._results = {}
            self._results_key = key
        return self._results

    def _static_mapper(self) -> bool:
        for node in self.model.walk():
            if node.name == "t2n_span_embed":
                return len(node.layers) == 0
        return False

    def _mapped(self, docs: Sequence[Doc], offsets: List[Tuple[int, int, int]]) -> np.ndarray:
        """Mapper outputs; spans without any word vector (punctuation, unknown words) get a
        zero row, so only the lexical channel links them."""
        Y = self.model.predict((list(docs), offsets))
        Y = np.array(self.model.ops.to_numpy(Y), dtype="float32")
        Y[~spans_with_vectors(docs, offsets, self._max_tokens())] = 0.0
        return Y

    def _allowed(self) -> Optional[np.ndarray]:
        if self.cfg.get("candidates", "all") == "all":
            items = self.index.ann_items
            if items is not None and len(items) < len(self.index):
                raise ValueError(
                    f"{self.name}: candidates is 'all' but this linker's annoy index holds only {len(items)} of "
                    f"{len(self.index)} concepts (it was initialized with candidates = 'leaves'); set candidates back "
                    "to 'leaves', or re-initialize (spacy train / build_linker_nlp) with candidates = 'all'."
                )
            return None
        if self.index.is_leaf is None:
            self.index.is_leaf = _leaf_mask(self.taxonomy)
        return self.index.is_leaf

    def calibrate(
        self,
        docs: Sequence[Doc],
        offsets: List[Tuple[int, int, int]],
        texts: Sequence[str],
        golds: Sequence[Sequence[str]],
        *,
        l2_words: Optional[float] = None,
        select: Optional[
            Tuple[Sequence[Doc], List[Tuple[int, int, int]], Sequence[str], Sequence[Sequence[str]]]
        ] = None,
    ) -> Dict[str, float]:
        """Fit the reranker (the learned fusion of the lexical, node-space and word-overlap
        channels) on development spans that the mapper did not train on.

        Spans whose text is a string of a concept the linker can return are left out: such
        a text is found by exact match at prediction anyway, and its candidates' features
        are biased (the node-space text vector of its concept is built from that very
        string), so learning from it would overrate the node channel. A string of a
        concept that is not a candidate (a parent code when `candidates` is "leaves") is
        kept: no candidate's vector holds it.

        Raises ValueError when no such span is left (e.g. dev pairs that are all
        inclusion terms of the taxonomy): the linker then keeps the fixed fusion.

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
        RETURNS (Dict[str, float]): spans given, spans used, spans with a right candidate,
            and their acc@1 before and after.
        """
        from ..index import Reranker, normalize_text

        self._require_ready()
        if not texts:
            raise ValueError("text2node_linker.calibrate: no development spans.")
        gold_idx = self._gold_index([list(g) for g in golds])[1]  # raises on unknown concepts
        exact = self.index.lexical.exact
        allowed = self._allowed()

        def candidate_string(text: str) -> bool:  # a string of a concept that can be linked to
            nodes = exact.get(normalize_text(text), ())
            return any(allowed is None or allowed[n] for n in nodes)

        keep = [i for i, t in enumerate(texts) if not candidate_string(t)]
        if not keep:
            raise ValueError(
                f"text2node_linker.calibrate: all {len(texts)} development texts are strings of concepts the linker "
                "links to (labels or synonyms); calibration needs text worded differently (e.g. mentions from documents, "
                "codes of another terminology, or parent labels paired with their default child: "
                "spacy_text2node.datasets.gem.default_child_pairs). The linker keeps its fixed fusion."
            )
        n_given = len(texts)
        offsets = [offsets[i] for i in keep]
        texts = [texts[i] for i in keep]
        gold_idx = [gold_idx[i] for i in keep]
        cfg = self.cfg
        t, gold = self._calibration_table(docs, offsets, texts, gold_idx)
        ni, bounds = t["ni"], t["bounds"]

        def acc1(score: np.ndarray) -> float:
            return _acc1(score, ni, bounds, gold)

        init = Reranker.initial_dense(float(cfg["fusion_weight"]))
        cv: Dict[float, float] = {}
        val: Dict[float, float] = {}
        if l2_words is None and select is not None:
            s_docs, s_offsets, s_texts, s_golds = select
            if not s_texts:
                raise ValueError(
                    "text2node_linker.calibrate: the selection spans are empty; give held-out pairs or drop `select`."
                )
            tv, gv = self._calibration_table(
                s_docs, s_offsets, s_texts, self._gold_index([list(g) for g in s_golds])[1]
            )
            l2_words, val = Reranker.select_l2_on(t, bounds, gold, tv, tv["bounds"], gv, init=init)
        elif l2_words is None:
            if len(texts) < 20:
                l2_words = 0.01
                logger.warning(
                    "text2node_linker.calibrate: %d development spans are too few to choose the word penalty; using %s.",
                    len(texts),
                    l2_words,
                )
            else:
                l2_words, cv = Reranker.select_l2(t, bounds, gold, init=init, seed=int(cfg.get("seed", 0)))
        rr = Reranker.fit(t, bounds, gold, l2_words=l2_words, init=init)
        self.index.reranker = rr
        self._results_key = None
        n_with = int(sum(gold[bounds[i] : bounds[i + 1]].any() for i in range(len(texts))))
        info = {
            "given": n_given,
            "queries": len(texts),
            "with_right_candidate": n_with,
            "acc@1_before": acc1(t["fused"]),
            "acc@1_after": acc1(rr.score(t)),
            "l2_words": float(l2_words),
        }
        info.update({f"cv_acc@1_l2={k:g}": v for k, v in cv.items()})
        info.update({f"select_acc@1_l2={k:g}": v for k, v in val.items()})
        info.update({f"w_{k}": float(w) for k, w in zip(Reranker.dense_names(), rr.dense)})
        self.cfg["calibrated"] = True
        logger.info("text2node_linker.calibrate: %s", info)
        return info

    def _calibration_table(
        self,
        docs: Sequence[Doc],
        offsets: List[Tuple[int, int, int]],
        texts: Sequence[str],
        gold_idx: Sequence[Sequence[int]],
    ) -> Tuple[Dict[str, object], np.ndarray]:
        """Candidates and features of spans as an uncalibrated linker retrieves them (their
        own strings left out), and a bool per pair: is it a right candidate."""
        cfg = self.cfg
        Y = self._mapped(list(docs), offsets)
        saved, self.index.reranker = self.index.reranker, None  # a failed fit keeps the old reranker
        try:
            t = self.index.pair_table(
                Y,
                texts,
                ann_candidates=cfg["ann_candidates"],
                lexical_candidates=cfg["lexical_candidates"],
                fusion_weight=cfg["fusion_weight"],
                search_k=cfg["search_k"],
                allowed=self._allowed(),
                leave_out_exact=True,
            )
        finally:
            self.index.reranker = saved
        ni, bounds = t["ni"], t["bounds"]
        gold = np.zeros(len(ni), dtype=bool)
        for i, g in enumerate(gold_idx):
            a, e = bounds[i], bounds[i + 1]
            gold[a:e] = np.isin(ni[a:e], g)
        return t, gold

    def set_annotations(self, docs: Iterable[Doc], preds: List[List[List[Tuple[int, float]]]]) -> None:
        """Set kb_id_ and `_.text2node_candidates` on the linked spans."""
        tax = self.taxonomy
        mode = self.cfg["spans"]
        for doc, doc_preds in zip(docs, preds):
            spans = self.spans_of(doc)
            store = doc.user_data.setdefault(USER_DATA_KEY, {})
            cands_per_span = []
            for span, cands in zip(spans, doc_preds):
                c = [(tax.id_at(n), tax.label(tax.id_at(n)), float(s)) for n, s in cands]
                cands_per_span.append(c)
                # string keys: user_data must survive Doc.to_bytes / DocBin (n_process > 1)
                store[f"{span.start_char}:{span.end_char}"] = c
            best = [c[0][0] if c else "" for c in cands_per_span]
            if mode == "ents":
                for span, kb in zip(spans, best):
                    for token in span:
                        token.ent_kb_id_ = kb
                spans = list(doc.ents)
            elif mode == "doc":
                doc.ents = [Span(doc, 0, len(doc), label=DOC_LABEL, kb_id=best[0])] if len(doc) else []
                spans = list(doc.ents) if len(doc) else spans
            elif mode.startswith("spans:"):
                key = mode.split(":", 1)[1]
                new = [Span(doc, s.start, s.end, label=s.label, kb_id=kb) for s, kb in zip(spans, best)]
                doc.spans[key] = new
                spans = list(doc.spans[key])
            for span, c in zip(spans, cands_per_span):
                span._.set(CANDIDATES_EXT, c)

    # training ---------------------------------------------------------------------------
    def _negatives(self, gold_first: np.ndarray) -> np.ndarray:
        cfg = self.cfg
        n = len(self.taxonomy)
        parts = [gold_first]
        if cfg["n_negatives"] > 0:
            parts.append(self._rng.integers(0, n, size=min(cfg["n_negatives"], n)))
        h = cfg["hard_negatives"]
        if h > 0:
            for g in np.unique(gold_first):
                g = int(g)
                sib = self._sibling_cache.get(g)
                if sib is None:
                    s = set()
                    for p in self.taxonomy.parent_indices(g):
                        s.update(self.taxonomy.child_indices(p))
                    s.discard(g)
                    sib = np.asarray(sorted(s), dtype="int64")
                    self._sibling_cache[g] = sib
                if len(sib) > h:
                    sib = self._rng.choice(sib, size=h, replace=False)
                parts.append(sib)
                nb = self._neighbour_cache.get(g)
                if nb is None:
                    nb = np.asarray(self.index.neighbours(g, h), dtype="int64")
                    self._neighbour_cache[g] = nb
                parts.append(nb)
        return np.unique(np.concatenate(parts).astype("int64"))

    def _loss_and_grad(
        self, Y: np.ndarray, gold_first: np.ndarray, gold_all: List[List[int]]
    ) -> Tuple[float, np.ndarray]:
        """InfoNCE over in-batch golds + sampled + hard negatives, plus cosine distance."""
        cfg = self.cfg
        space = self.index.space
        b = Y.shape[0]
        norms = np.linalg.norm(Y, axis=1, keepdims=True) + 1e-8
        Yn = Y / norms
        C = self._negatives(gold_first)
        SC = space[C]
        logits = (Yn @ SC.T) / cfg["temperature"]
        pos = np.searchsorted(C, gold_first)
        # other right answers of a multi-gold span are not negatives
        for r, idx in enumerate(gold_all):
            if len(idx) > 1:
                for j in idx[1:]:
                    p = np.searchsorted(C, j)
                    if p < len(C) and C[p] == j and p != pos[r]:
                        logits[r, p] = -1e9
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        probs = e / e.sum(axis=1, keepdims=True)
        loss = float(-np.log(probs[np.arange(b), pos] + 1e-12).sum())
        d_logits = probs
        d_logits[np.arange(b), pos] -= 1.0
        d_Yn = (d_logits @ SC) / cfg["temperature"]
        T = space[gold_first]
        w = cfg["distance_weight"]
        if w > 0:
            loss += float(w * (1.0 - (Yn * T).sum(1)).sum())
            d_Yn -= w * T
        d_Yn /= b
        d_Y = (d_Yn - Yn * (d_Yn * Yn).sum(1, keepdims=True)) / norms
        return loss, d_Y.astype("float32")

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
        self._require_ready()
        docs, offsets, golds = [], [], []
        for i, eg in enumerate(examples):
            docs.append(eg.predicted)
            offs, g = self._training_spans(eg)
            offsets.extend((i, s, e) for s, e in offs)
            golds.extend(g)
        if not offsets:
            return losses
        gold_first, gold_all = self._gold_index(golds)  # raises on unknown concepts
        # spans without any word vector are linked by the lexical channel only (their mapper
        # output is ignored at prediction), so the mapper does not train on them
        keep = spans_with_vectors(docs, offsets, self._max_tokens())
        if not keep.all():
            offsets = [o for o, k in zip(offsets, keep) if k]
            gold_first = gold_first[keep]
            gold_all = [g for g, k in zip(gold_all, keep) if k]
            if not offsets:
                return losses
        self._results_key = None  # the model changes: cached results are stale
        Y, backprop = self.model.begin_update((docs, offsets))
        loss, d_Y = self._loss_and_grad(self.model.ops.to_numpy(Y), gold_first, gold_all)
        backprop(self.model.ops.asarray2f(d_Y))
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], scores) -> Tuple[float, np.ndarray]:
        """Loss and gradient of the mapper outputs `scores` for the gold spans of `examples`."""
        golds: List[List[str]] = []
        for eg in examples:
            golds.extend(self._training_spans(eg)[1])
        gold_first, gold_all = self._gold_index(golds)
        return self._loss_and_grad(self.model.ops.to_numpy(scores), gold_first, gold_all)

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        taxonomy: Optional[Taxonomy] = None,
        node_vectors: Any = None,
    ) -> None:
        """Build node space and the index, and initialize the mapper.

        get_examples (Callable[[], Iterable[Example]]): training examples (a sample
            initializes the model; their gold concepts are checked against the taxonomy).
        nlp (Language): the pipeline (its tokenizer splits the concept labels).
        taxonomy (Taxonomy): the taxonomy to link to (required).
        node_vectors (np.ndarray / NodeVectors / None): node2vec vectors, one row per
            concept in taxonomy order. None builds a text-only node space (a warning is logged).
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
        self.taxonomy = taxonomy
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
        elif self.cfg["node_space"] == "node2vec":
            logger.warning("text2node_linker: no node_vectors given; node space is text-only.")
        texts, string_node = [], []
        for i, cid in enumerate(taxonomy.ids):
            for t in taxonomy.texts(cid):
                texts.append(t)
                string_node.append(i)
        string_node_arr = np.asarray(string_node, dtype="int32")
        text_vecs = None
        if self.cfg["node_space"] == "node2vec+text" or nv is None:
            if self.vocab.vectors.shape[0] == 0:
                if nv is None:
                    raise ValueError(
                        "text2node_linker: no node_vectors and no word vectors: nothing to build node space from."
                    )
            else:
                text_vecs = node_text_vectors(
                    texts,
                    string_node_arr,
                    len(taxonomy),
                    _vectors_table(self.vocab),
                    lambda ws: _find_rows(self.vocab, ws),
                )
                if self.cfg.get("text_dim", 0):
                    text_vecs = principal_components(text_vecs, self.cfg["text_dim"])
        space = build_node_space(nv, text_vecs, text_weight=self.cfg["text_weight"])
        logger.info("text2node_linker: node space %s x %s; building lexical channel and annoy index", *space.shape)
        lexical = LexicalIndex.build(texts, string_node_arr, len(taxonomy), max_df=self.cfg["max_df"])
        is_leaf = _leaf_mask(taxonomy)
        # with candidates = "leaves", annoy holds only the leaves (smaller, and no over-fetching)
        ann_items = np.flatnonzero(is_leaf) if self.cfg.get("candidates", "all") == "leaves" else None
        self.index = NodeIndex(
            space, lexical, n_trees=self.cfg["n_trees"], seed=self.cfg["seed"], is_leaf=is_leaf, ann_items=ann_items
        )
        self.cfg["nO"] = int(space.shape[1])
        self.cfg["has_node_vectors"] = nv is not None
        self._sibling_cache, self._neighbour_cache = {}, {}
        self._results_key = None
        if self.cfg.get("memory", True):
            self.index.memory = self._build_memory(get_examples(), lexical)
        sample = list(islice(get_examples(), 10))
        docs, offsets, golds = [], [], []
        for i, eg in enumerate(sample):
            docs.append(eg.predicted)
            offs, g = self._training_spans(eg)
            offsets.extend((i, s, e) for s, e in offs)
            golds.extend(g)
        if golds:
            self._gold_index(golds)
        if not offsets:
            docs, offsets = [Doc(self.vocab, words=["x"])], [(0, 0, 1)]
        set_mapper_dims(self.model, nI=None, nO=self.cfg["nO"])
        self.model.initialize(X=(docs, offsets))
        self.cfg["nI"] = mapper_dims(self.model)[0]
        self.cfg[mf.VECTORS_KEY] = mf.vectors_fingerprint(self.vocab.vectors)  # checked at load and use

    def _build_memory(self, examples: Iterable[Example], lexical: "LexicalIndex") -> Optional["LexicalIndex"]:
        """A lexical index of the training phrases that are not already one of their
        concept's strings (None when there are none)."""
        from ..index import normalize_text

        tax = self.taxonomy
        own = {}
        for key, nodes in lexical.exact.items():
            for n in nodes:
                own.setdefault(n, set()).add(key)
        seen, texts, nodes = set(), [], []
        for eg in examples:
            offs, golds = self._training_spans(eg)
            for (s, e), g in zip(offs, golds):
                text = eg.predicted[s:e].text
                key = normalize_text(text)
                if not key:
                    continue
                for cid in g:
                    if cid not in tax:
                        continue
                    n = tax.index(cid)
                    if key in own.get(n, ()) or (key, n) in seen:
                        continue
                    seen.add((key, n))
                    texts.append(text)
                    nodes.append(n)
        if not texts:
            return None
        logger.info("text2node_linker: memory of %d training phrases", len(texts))
        return LexicalIndex.build(texts, np.asarray(nodes, dtype="int32"), len(tax), max_df=self.cfg["max_df"])

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, Any]:
        """Score a batch of examples (see `score_linking`)."""
        if self.scorer is None:
            return {}
        return self.scorer(examples, taxonomy=self.taxonomy, **kwargs)

    def add_label(self, label: str) -> int:  # pragma: no cover - not label based
        raise NotImplementedError

    # serialization ----------------------------------------------------------------------
    def _load_cfg(self, saved: Dict[str, Any]) -> None:
        """Take the saved settings, except the runtime ones (RUNTIME_SETTINGS): those keep
        the values this component was created with, i.e. the pipeline's config."""
        if not isinstance(saved, dict):
            raise ValueError(f"a JSON {type(saved).__name__}, not an object of settings")
        keep = {key: self.cfg[key] for key in RUNTIME_SETTINGS if key in self.cfg}
        self.cfg.pop(mf.VECTORS_KEY, None)  # a linker saved before vectors were recorded has none
        self.cfg.update(saved)
        self.cfg.update(keep)

    def _check_vectors(self, vocab: Vocab) -> Dict[str, Any]:
        """Raise unless `vocab`'s word vectors are the ones the linker was trained with
        (`manifest.check_vectors`); the fingerprint is computed once per table.
        RETURNS (Dict[str, Any]): the table's shape and fingerprint."""
        key = mf.vectors_identity(vocab.vectors)
        now = self._vectors_seen.get(key)
        if now is None:
            if len(self._vectors_seen) > 16:
                self._vectors_seen.clear()
            now = self._vectors_seen[key] = mf.vectors_fingerprint(vocab.vectors)
        mf.check_vectors(self.cfg.get(mf.VECTORS_KEY), now, self.name)
        return now

    def _loaded(self, manifest: Optional[Dict[str, Any]], source: Any) -> "Text2NodeLinker":
        if manifest is not None and self.taxonomy is not None:
            mf.check_taxonomy(self.taxonomy, manifest.get("taxonomy"), source)
        self._check_vectors(self.vocab)  # nlp.from_disk / from_bytes load the vocab first
        self._rng = np.random.default_rng(self.cfg.get("seed", 0))
        self._results_key = None
        return self

    def _restore_dims(self) -> None:
        set_mapper_dims(self.model, nI=self.cfg.get("nI"), nO=self.cfg.get("nO"))

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        self._require_ready()
        serialize = {
            "cfg": lambda: srsly.json_dumps(self.cfg),
            "taxonomy": lambda: self.taxonomy.to_bytes(),
            "index": lambda: self.index.to_bytes(),
            "model": lambda: self.model.to_bytes(),
        }
        return mf.pack_parts(serialize, exclude, taxonomy=mf.taxonomy_record(self.taxonomy))

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "Text2NodeLinker":
        def load_model(b: bytes) -> None:
            self._restore_dims()
            self.model.from_bytes(b)

        def load_taxonomy(b: bytes) -> None:
            self.taxonomy = Taxonomy.from_bytes(b)

        def load_index(b: bytes) -> None:
            self.index = NodeIndex.from_bytes(b)

        deserialize = {
            "cfg": lambda b: self._load_cfg(srsly.json_loads(b)),
            "taxonomy": load_taxonomy,
            "index": load_index,
            "model": load_model,
        }
        manifest = mf.unpack_parts(bytes_data, deserialize, exclude, self.name)
        return self._loaded(manifest, f"{self.name} (serialized bytes), part 'taxonomy'")

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        self._require_ready()
        path = util.ensure_path(path)
        serialize = {
            "cfg": lambda p: srsly.write_json(p, self.cfg),
            "taxonomy": lambda p: self.taxonomy.to_disk(p),
            "index": lambda p: self.index.to_disk(p),
            "model": lambda p: p.write_bytes(self.model.to_bytes()),
        }
        util.to_disk(path, serialize, exclude)
        mf.write_manifest(
            path, "text2node_linker", taxonomy=mf.taxonomy_record(self.taxonomy), vectors=self.cfg.get(mf.VECTORS_KEY)
        )

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "Text2NodeLinker":
        path = util.ensure_path(path)
        manifest = mf.read_manifest(path, self.name)
        if manifest is not None:  # before anything is read: names a missing, changed or swapped file
            mf.check_files(path, manifest, exclude)

        def load_model(p: Path) -> None:
            self._restore_dims()
            with p.open("rb") as f:
                self.model.from_bytes(f.read())

        def load_taxonomy(p: Path) -> None:
            self.taxonomy = Taxonomy.from_disk(p)

        def load_index(p: Path) -> None:
            self.index = NodeIndex.from_disk(p)

        deserialize = {
            "cfg": lambda p: self._load_cfg(srsly.read_json(p)),
            "taxonomy": load_taxonomy,
            "index": load_index,
            "model": load_model,
        }
        util.from_disk(path, mf.guarded(deserialize, self.name), exclude)
        return self._loaded(manifest, path / "taxonomy" / "taxonomy.msgpack")


def _leaf_mask(taxonomy: Taxonomy) -> np.ndarray:
    return np.asarray([taxonomy.is_leaf(c) for c in taxonomy.ids], dtype=bool)


def _vectors_table(vocab: Vocab) -> np.ndarray:
    data = vocab.vectors.data
    return data if isinstance(data, np.ndarray) else data.get()


def _find_rows(vocab: Vocab, ws: List[str]) -> np.ndarray:
    keys = np.asarray([get_string_id(w) for w in ws], dtype="uint64")
    return np.asarray(vocab.vectors.find(keys=keys), dtype="int64")
