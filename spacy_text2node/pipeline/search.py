"""How the linker finds a span's candidates: the mapper puts the span in node space, the
index searches it with the lexical channel (`NodeIndex.search`), in chunks shared by
threads, with a cache of the results of span texts already seen."""

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import spacy
from spacy.tokens import Doc
from spacy.vocab import Vocab
from thinc.api import Model

from ..index import NodeIndex
from ..index.dictionary import probability
from ..index.text import l2_normalize, quantize_rows
from ..ml.mapper import context_free
from ..ml.static_vectors import StaticInputCache, TokenInputCache, predict_embedded, predict_static, spans_with_vectors
from ..taxonomy import Taxonomy
from .kb import leaf_mask
from .settings import SearchSettings

Ranked = List[List[Tuple[int, float]]]
Offsets = List[Tuple[int, int, int]]

# spans per index search, one per thread at a time (bounds memory; results do not depend on it)
SEARCH_CHUNK = 256
# spans per static mapper call inside a chunk (a span's output does not depend on the others)
MAP_CHUNK = 64
# taxonomy strings tokenized at a time by `map_strings` (bounds the docs held at once)
STRING_CHUNK = 4096

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


def _chunk_docs(docs: Sequence[Doc], offsets: Offsets) -> Tuple[List[Doc], Offsets]:
    """The docs that a chunk's spans are in, and the spans renumbered into them: a mapper
    with an `embed` runs it over the docs it is given, so a chunk of 64 spans of a
    4,096-doc batch would embed all 4,096."""
    ids = sorted({i for i, _, _ in offsets})
    if len(ids) == len(docs):
        return list(docs), offsets
    new = {i: j for j, i in enumerate(ids)}
    return [docs[i] for i in ids], [(new[i], a, b) for i, a, b in offsets]


def _has_alnum(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


class LinkerSearch:
    """rank / map_spans / allowed_nodes of `Text2NodeLinker`."""

    name: str
    vocab: Any
    model: Model
    cfg: Dict[str, Any]
    taxonomy: Optional[Taxonomy]
    index: Optional[NodeIndex]
    _results: Dict[str, List[Tuple[int, float]]]
    _results_key: Any
    _static_inputs: StaticInputCache
    _token_inputs: TokenInputCache
    _strings_stale = False  # the mapper changed since the index's strings were mapped

    if TYPE_CHECKING:  # the component's, declared for the type checker only

        @property
        def search_settings(self) -> SearchSettings: ...

        def check_vectors(self, vocab: Any) -> Dict[str, Any]: ...

        def vectors_fingerprint(self, vocab: Any) -> Dict[str, Any]: ...

        def results_changed(self) -> None: ...

        def require_ready(self) -> None: ...

    def _max_tokens(self) -> int:
        for node in self.model.walk():
            if node.name == "t2n_span_embed":
                return int(node.attrs["max_tokens"])
        return 32

    def rank(
        self,
        docs: Sequence[Doc],
        offsets: Offsets,
        texts: Sequence[str],
        k: Optional[int] = None,
        *,
        nil_cut: bool = True,
        dictionary: bool = True,
    ) -> Ranked:
        """Ranked (node index, fused score) for spans given as (doc index, start, end).

        Candidates below the threshold are dropped (a NIL span gets an empty list), and so is
        a span without a letter or digit: punctuation is never a concept, whatever vectors
        its characters get from a subword model. With dictionary, a text in the phrase
        dictionary gets its concept first (`dictionary_first`). With nil_cut, a span whose
        best candidate's probability is under `min_probability` is NIL too (see `nil_cut`).
        """
        k = k or self.cfg["k"]
        ranked = self._rank(docs, offsets, texts, k)
        if dictionary and self.index is not None and self.index.dictionary is not None:
            ranked = self.dictionary_first([self.dictionary_hit(t) for t in texts], ranked, k)
        return self.nil_cut(ranked) if nil_cut else ranked

    def dictionary_hit(self, text: str) -> Optional[Tuple[int, int]]:
        """(node index, annotations) of a text in the index's phrase dictionary whose
        concept may be returned (the `candidates` setting), or None."""
        table = self.index.dictionary if self.index is not None else None
        hit = table.lookup(text) if table is not None and _has_alnum(text) else None
        if hit is None:
            return None
        allowed = self.allowed_nodes()
        return hit if allowed is None or allowed[hit[0]] else None

    def dictionary_first(self, hits: Sequence[Optional[Tuple[int, int]]], ranked: Ranked, k: int) -> Ranked:
        """The rankings, each query with a phrase dictionary hit (`dictionary_hit` of its
        text, or None) with the dictionary's concept first (`PhraseDictionary`): with a
        calibrated linker the scores are the mixture p * dictionary + (1 - p) * model, p =
        `probability` of the phrase's annotations; otherwise the concept takes the best
        score of the ranking."""
        mixture = self.scores_are_probabilities
        out = list(ranked)
        for i, hit in enumerate(hits):
            if hit is None:
                continue
            node, count = hit
            own = next((s for n, s in ranked[i] if n == node), 0.0)
            rest = [(n, s) for n, s in ranked[i] if n != node]
            if mixture:
                p = probability(count)
                best = p + (1.0 - p) * own
                rest = [(n, (1.0 - p) * s) for n, s in rest]
            else:
                best = max([own] + [s for _, s in rest])
            out[i] = [(node, float(best))] + rest[: k - 1]
        return out

    @property
    def scores_are_probabilities(self) -> bool:
        """Whether the scores are probabilities among a query's candidates (a calibrated
        linker's, with a fitted reranker), so that scores of different queries compare."""
        return self.index is not None and self.index.reranker is not None

    def nil_cut(self, ranked: Ranked) -> Ranked:
        """The queries' candidate lists, each emptied (NIL) when a calibrated linker's best
        candidate has a probability under `min_probability`."""
        cut = self.search_settings.min_probability
        if cut <= 0 or not self.scores_are_probabilities:
            return ranked
        return [r if r and r[0][1] >= cut else [] for r in ranked]

    def _rank(self, docs: Sequence[Doc], offsets: Offsets, texts: Sequence[str], k: Optional[int]) -> Ranked:
        if not offsets:
            return []
        linkable = [i for i, t in enumerate(texts) if _has_alnum(t)]
        if len(linkable) < len(texts):
            out: Ranked = [[] for _ in texts]
            sub = [offsets[i] for i in linkable], [texts[i] for i in linkable]
            for i, r in zip(linkable, self._rank(docs, sub[0], sub[1], k)):
                out[i] = r
            return out
        cfg = self.cfg
        k = k or cfg["k"]
        cache = self._result_cache(k, docs)
        if cache is None:
            return self._search(docs, offsets, texts, k)
        # this batch's results: the cached ones taken now, as a full cache is emptied below
        found = {t: cache[t] for t in texts if t in cache}
        todo = [i for i, t in enumerate(texts) if t not in found]
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
                found[texts[i]] = cache[texts[i]] = r
        return [list(found[t]) for t in texts]

    def _search(self, docs: Sequence[Doc], offsets: Offsets, texts: Sequence[str], k: int) -> Ranked:
        s = self.search_settings
        self.fresh_strings()
        index = self.index
        assert index is not None
        allowed = self.allowed_nodes()
        static = self._context_free_mapper()
        # a context-reading mapper (tok2vec listener) runs once over the whole batch; a
        # static one per chunk, in the chunk's thread (its output for a span does not
        # depend on the other spans of the chunk: see ml.row_ops.RowBlockOps)
        Y_all = None if static else self.map_spans(docs, offsets)

        # spans are independent: searching SEARCH_CHUNK at a time bounds the candidate
        # tables' memory whatever the batch size, and lets threads share the chunks
        # (BLAS, annoy and the numba kernels release the GIL; the shared index is only read):
        # the chunks are mapped, an HNSW index searches all of them at once, and then each
        # chunk's candidates are gathered and scored
        starts = list(range(0, len(texts), SEARCH_CHUNK))
        threads = min(self._n_threads(), len(starts))

        def mapped(a: int) -> np.ndarray:
            b = min(a + SEARCH_CHUNK, len(texts))
            return self.map_spans_in_chunks(docs, offsets[a:b]) if Y_all is None else Y_all[a:b]

        def chunk(a: int, Y: np.ndarray, found: Optional[List[np.ndarray]]) -> Ranked:
            return index.search(
                Y,
                texts[a : a + len(Y)],
                k=k,
                ann_candidates=s.ann_candidates,
                lexical_candidates=s.lexical_candidates,
                fusion_weight=s.fusion_weight,
                search_k=s.search_k,
                ef=s.ef_search,
                allowed=allowed,
                threshold=s.threshold,
                node_found=found,
            )

        # numpy's BLAS (the mapper) always runs one thread here: our threads are the
        # parallelism, and a product's rounding depends on BLAS's thread count, so one
        # thread everywhere makes scores the same in any process (bulk workers run one)
        with blas_threads(1), ThreadPoolExecutor(max(1, threads), thread_name_prefix=self.name) as pool:
            run: Callable[..., Iterator[Any]] = pool.map if threads > 1 else map
            Ys = list(run(mapped, starts))
            founds: List[Optional[List[np.ndarray]]] = [None] * len(starts)
            if index.ann_kind == "hnsw" and Ys:
                # usearch holds the GIL while it searches: the whole batch in one call, on
                # its own threads (a row's neighbours do not depend on the batch)
                found = index.node_candidates(
                    np.concatenate(Ys),
                    ann_candidates=s.ann_candidates,
                    fusion_weight=s.fusion_weight,
                    search_k=s.search_k,
                    ef=s.ef_search,
                    allowed=allowed,
                    threads=threads,
                )
                founds = [found[a : a + SEARCH_CHUNK] for a in starts]
            parts = list(run(chunk, starts, Ys, founds))
        return [r for part in parts for r in part]

    def _n_threads(self) -> int:
        n = int(self.cfg.get("n_threads", 0) or 0)
        return n if n > 0 else min(8, available_cpus())

    def _result_cache(self, k: int, docs: Sequence[Doc]) -> Optional[Dict[str, List[Tuple[int, float]]]]:
        """Check the docs' word vectors (`check_vectors`), then the span-text result cache
        for them: emptied whenever a setting, the index, the model, the vectors or the
        docs' vector hook changed; None when disabled or when the mapper reads context."""
        vectors = self.check_vectors(docs[0].vocab)["fingerprint"]
        if int(self.cfg.get("cache_size", 0) or 0) <= 0 or not self._context_free_mapper():
            return None
        assert self.index is not None
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

    def _context_free_mapper(self) -> bool:
        """Static vectors or a context-free `embed`: a span's row depends on its tokens
        alone (cacheable by text, mappable chunk by chunk, the strings mappable)."""
        return context_free(self.model)

    def map_spans(self, docs: Sequence[Doc], offsets: Offsets, *, cached: bool = True) -> np.ndarray:
        """Mapper outputs; spans without any word vector (punctuation, unknown words) get a
        zero row, so only the lexical channel links them. A mapper on static vectors takes
        its input layer's rows of known words from a cache (`predict_static`), one with a
        context-free embed its rows of token forms seen before (`predict_embedded`), unless
        `cached` is False (while training: the weights change)."""
        fast = None
        if docs and cached:
            table_key = self.vectors_fingerprint(docs[0].vocab)["fingerprint"]
            fast = predict_static(self.model, docs, offsets, self._static_inputs, table_key)
            if fast is None:
                fast = predict_embedded(self.model, docs, offsets, self._token_inputs, table_key)
        if fast is not None:
            Y, with_vectors = fast
        else:
            Y, with_vectors = self.model.predict((list(docs), offsets)), None
        Y = np.array(self.model.ops.to_numpy(Y), dtype="float32")
        if with_vectors is None:
            with_vectors = spans_with_vectors(docs, offsets, self._max_tokens())
        Y[~with_vectors] = 0.0
        return Y

    def map_strings(self) -> None:
        """Map every label and synonym of the taxonomy with the current mapper into the
        index (`NodeIndex.strings`: unit rows as int8, a scale each), for the reranker's "siamese"
        feature; saved with the index. `calibrate` calls it. Only a static mapper's
        strings are mapped: one that reads a pipeline's context (a tok2vec listener)
        gets no strings, and the feature is 0."""
        self.require_ready()
        assert self.taxonomy is not None and self.index is not None
        self._strings_stale = False
        self.results_changed()
        if not self._context_free_mapper():
            self.drop_strings()
            return
        texts = self.taxonomy.strings()[0]
        self.index.strings, self.index.strings_scale = quantize_rows(l2_normalize(self.map_texts(texts)))

    def map_texts(self, texts: Sequence[str], *, cached: bool = True) -> np.ndarray:
        """Mapper outputs of texts taken whole (the taxonomy's strings), tokenized
        STRING_CHUNK at a time so that only one chunk's docs are alive; without the input
        cache if not `cached` (while training)."""
        make_doc = string_tokenizer(self.vocab)
        rows = [np.zeros((0, int(self.cfg.get("nO") or 0)), dtype="float32")]
        for a in range(0, len(texts), STRING_CHUNK):
            docs = [make_doc(t) for t in texts[a : a + STRING_CHUNK]]
            if cached:
                rows.append(self.map_spans_in_chunks(docs, [(i, 0, len(d)) for i, d in enumerate(docs)]))
            else:
                rows.append(self.map_whole_docs(docs))
        return np.concatenate(rows)

    def drop_strings(self) -> None:
        """Take the mapped strings out of the index: the siamese feature is 0 and costs
        nothing (a mapper that reads context, or a calibration that found no gain)."""
        assert self.index is not None
        self.index.strings = self.index.strings_scale = None
        self.results_changed()

    def model_changed(self) -> None:
        """The mapper's weights changed (a training step): cached results are stale, and so
        are the index's mapped strings (remapped when next needed: `fresh_strings`)."""
        self.results_changed()
        self._strings_stale = True

    def use_params(self, params: Dict[Any, Any]) -> Iterator[None]:
        """Link with other weights inside `nlp.use_params(params)` (spacy train evaluates and
        saves with the optimizer's parameter averages so): the cached results and the mapped
        strings follow the weights in, and back out. A generator, as spaCy's pipes have it
        (`Language.use_params` steps it in and out)."""
        with self.model.use_params(params):
            self.model_changed()
            yield
        self.model_changed()

    def fresh_strings(self) -> None:
        """Remap the index's strings if the mapper changed since they were mapped (before a
        search or a save)."""
        if self._strings_stale and self.index is not None and self.index.strings is not None:
            self.map_strings()

    def map_whole_docs(self, docs: List[Doc]) -> np.ndarray:
        """The mapper's outputs for whole docs, without gradient and without the input cache
        (the weights change while training); zero rows for docs without any word vector."""
        parts = [
            self.map_spans(chunk, [(i, 0, len(d)) for i, d in enumerate(chunk)], cached=False)
            for chunk in (docs[a : a + MAP_CHUNK] for a in range(0, len(docs), MAP_CHUNK))
        ]
        return np.concatenate(parts) if parts else np.zeros((0, int(self.cfg.get("nO") or 0)), dtype="float32")

    def map_spans_in_chunks(self, docs: Sequence[Doc], offsets: Offsets) -> np.ndarray:
        """`map_spans` MAP_CHUNK spans at a time, as linking maps with a static mapper: the
        mapper's intermediate arrays stay small, and a span's row does not depend on the chunk."""
        chunks = [_chunk_docs(docs, offsets[c : c + MAP_CHUNK]) for c in range(0, len(offsets), MAP_CHUNK)]
        parts = [self.map_spans(chunk_docs, chunk_offsets) for chunk_docs, chunk_offsets in chunks]
        return np.concatenate(parts) if parts else self.map_spans(docs, offsets)

    def allowed_nodes(self) -> Optional[np.ndarray]:
        """A bool per concept: may it be returned (None: all, the `candidates` setting)."""
        assert self.index is not None and self.taxonomy is not None
        if self.cfg.get("candidates", "all") == "all":
            items = self.index.ann_items
            if items is not None and len(items) < len(self.index):
                raise ValueError(
                    f"{self.name}: candidates is 'all' but this linker's neighbour index holds only {len(items)} of "
                    f"{len(self.index)} concepts (it was initialized with candidates = 'leaves'); set candidates back "
                    "to 'leaves', or re-initialize (spacy train / build_linker_nlp) with candidates = 'all'."
                )
            return None
        if self.index.is_leaf is None:
            self.index.is_leaf = leaf_mask(self.taxonomy)
        return self.index.is_leaf


def string_tokenizer(vocab: Vocab) -> Callable[[str], Doc]:
    """The tokenizer of the taxonomy's strings: the vocab language's default one (the
    component does not see its pipeline's own)."""
    return spacy.blank(vocab.lang or "en", vocab=vocab).make_doc
