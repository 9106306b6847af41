"""Subword pieces for words no vector table has.

Two kinds of pieces:

- character n-grams hashed into buckets exactly as spaCy's floret `Vectors` hash them
  (MurmurHash3 over the n-grams of `<word>`, spaCy's own hashing code is used), with a
  bucket table *fitted* so that the mean of a known word's bucket rows reproduces its
  vector (least squares, solved with CGLS over all dimensions at once). This gives
  subwords to any static table (GloVe, word2vec, distilled) and is also how a gensim
  FastText model is exported to spaCy floret vectors (its own n-gram vectors are the
  starting point of the fit, so fastText's subword information is kept).
- WordPiece pieces (BERT-style greedy longest match) with a piece-vector table, e.g.
  the input embeddings of a transformer.
"""

from __future__ import annotations

import logging
import unicodedata
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from numba import njit, prange
from scipy import sparse
from spacy.vectors import Vectors
from tqdm import tqdm

logger = logging.getLogger("spacy_text2node")


def floret_hasher(n_buckets: int, minn: int, maxn: int, hash_count: int, hash_seed: int = 0) -> Vectors:
    """A tiny floret `Vectors` used only for its n-gram and hash functions."""
    return Vectors(
        data=np.zeros((max(1, n_buckets), 1), dtype=np.float32),
        mode="floret",
        minn=minn,
        maxn=maxn,
        hash_count=hash_count,
        hash_seed=hash_seed,
    )


def floret_rows(
    words: Sequence[str], hasher: Vectors, n_buckets: int, *, whole_word: bool = True
) -> Tuple[np.ndarray, np.ndarray]:
    """Bucket rows of each word in spaCy floret order, as CSR arrays (indptr, indices).

    Duplicated rows are kept, because spaCy averages over the full list.
    whole_word (bool): include the whole `<word>` key first, as spaCy floret does;
        False keeps only the n-grams (how fastText builds a vector for an unseen word).
    """
    indptr = np.zeros(len(words) + 1, dtype=np.int64)
    out: List[int] = []
    get_ngrams = hasher._get_ngrams
    get_hashes = hasher._get_ngram_hashes
    skip = 0 if whole_word else 1
    for i, w in enumerate(words):
        if w:
            ngrams = get_ngrams(w)[skip:]
            if not ngrams:
                ngrams = get_ngrams(w)[:1]
            for ng in ngrams:
                out.extend(get_hashes(ng))
        indptr[i + 1] = len(out)
    indices = (np.asarray(out, dtype=np.uint64) % np.uint64(n_buckets)).astype(np.int64)
    return indptr, indices


@njit(parallel=True, nogil=True, cache=True)
def _csr_dense(indptr, indices, data, X, out):
    n = len(indptr) - 1
    d = X.shape[1]
    for i in prange(n):
        for j in range(indptr[i], indptr[i + 1]):
            c = indices[j]
            v = data[j]
            for k in range(d):
                out[i, k] += v * X[c, k]


def _matmul(A: sparse.csr_matrix, X: np.ndarray) -> np.ndarray:
    out = np.zeros((A.shape[0], X.shape[1]), dtype=np.float32)
    _csr_dense(A.indptr, A.indices, A.data, np.ascontiguousarray(X, dtype=np.float32), out)
    return out


def _mean_matrix(indptr: np.ndarray, indices: np.ndarray, n_cols: int) -> sparse.csr_matrix:
    counts = np.diff(indptr)
    vals = np.repeat(1.0 / np.maximum(counts, 1), counts).astype(np.float32)
    A = sparse.csr_matrix((vals, indices, indptr), shape=(len(indptr) - 1, n_cols))
    A.sum_duplicates()
    return A


def fit_buckets(
    A: sparse.csr_matrix,
    targets: np.ndarray,
    *,
    prior: Optional[np.ndarray] = None,
    max_iter: int = 60,
    tol: float = 1e-3,
    show_progress: bool = False,
) -> np.ndarray:
    """Least-squares bucket table B with A @ B ~= targets (CGLS, all columns at once).

    Starting from `prior` (default: each bucket the weighted mean of the vectors of
    the words that use it), CGLS moves towards the least-squares solution closest to
    the start; stopping after `max_iter` iterations regularizes the fit, so n-grams
    stay meaningful for unseen words. Buckets no word uses keep their start value.

    A (csr_matrix): (n_words, n_buckets) averaging matrix.
    targets (np.ndarray): (n_words, dim) word vectors to reproduce.
    prior (Optional[np.ndarray]): (n_buckets, dim) starting table.
    max_iter (int): iteration cap.
    tol (float): stop when the relative residual changes less than this.
    RETURNS (np.ndarray): the (n_buckets, dim) float32 table.
    """
    targets = np.asarray(targets, dtype=np.float32)
    AT = A.T.tocsr()
    AT.sort_indices()
    if prior is None:
        colsum = np.asarray(AT.sum(axis=1)).ravel().astype(np.float32)
        X: np.ndarray = _matmul(AT, targets) / np.maximum(colsum, 1e-12)[:, None]
    else:
        X = prior.astype(np.float32).copy()
    R = targets - _matmul(A, X)
    S = _matmul(AT, R)
    P = S.copy()
    gamma = np.einsum("ij,ij->j", S, S)
    norm_t = float(np.linalg.norm(targets)) or 1.0
    last = res = float(np.linalg.norm(R)) / norm_t
    logger.info("subword buckets: relative residual %.4f at the start", res)
    i = -1
    it = range(max_iter)
    bar = tqdm(it, desc="fitting subword buckets", disable=not show_progress, leave=False)
    for i in bar:  # noqa: B007 (i is the iteration count logged after the loop)
        Q = _matmul(A, P)
        denom = np.einsum("ij,ij->j", Q, Q)
        alpha = np.where(denom > 0, gamma / np.maximum(denom, 1e-30), 0.0).astype(np.float32)
        X += P * alpha
        R -= Q * alpha
        S = _matmul(AT, R)
        gamma_new = np.einsum("ij,ij->j", S, S)
        beta = np.where(gamma > 0, gamma_new / np.maximum(gamma, 1e-30), 0.0).astype(np.float32)
        P = S + P * beta
        gamma = gamma_new
        res = float(np.linalg.norm(R)) / norm_t
        bar.set_postfix(residual=f"{res:.4f}")
        if abs(last - res) < tol * max(res, 1e-12) or res < 1e-4:
            break
        last = res
    logger.info("subword buckets fitted: relative residual %.4f after %d iterations", res, i + 1)
    return X


def fit_floret_table(
    words: Sequence[str],
    matrix: np.ndarray,
    *,
    n_buckets: int = 100_000,
    minn: int = 3,
    maxn: int = 6,
    hash_count: int = 2,
    hash_seed: int = 0,
    prior: Optional[np.ndarray] = None,
    max_iter: int = 60,
    whole_word: bool = True,
    show_progress: bool = False,
) -> Vectors:
    """Fit a spaCy floret `Vectors` table whose n-gram means reproduce `matrix`.

    words (Sequence[str]): the known words.
    matrix (np.ndarray): their vectors, (len(words), dim).
    n_buckets (int): rows of the hashed table.
    minn (int): shortest character n-gram.
    maxn (int): longest character n-gram.
    hash_count (int): hashes per n-gram (1-4).
    hash_seed (int): MurmurHash seed.
    prior (Optional[np.ndarray]): starting bucket table (n_buckets, dim).
    max_iter (int): CGLS iteration cap.
    whole_word (bool): fit with the whole-word key as spaCy floret uses it (for a
        floret export); False fits the n-grams alone (for unseen words).
    RETURNS (Vectors): a floret-mode table.
    """
    if len(words) == 0:
        raise ValueError("No words to fit subword buckets on: the vector table is empty.")
    hasher = floret_hasher(n_buckets, minn, maxn, hash_count, hash_seed)
    indptr, indices = floret_rows(words, hasher, n_buckets, whole_word=whole_word)
    A = _mean_matrix(indptr, indices, n_buckets)
    table = fit_buckets(A, matrix, prior=prior, max_iter=max_iter, show_progress=show_progress)
    return Vectors(data=table, mode="floret", minn=minn, maxn=maxn, hash_count=hash_count, hash_seed=hash_seed)


def floret_vectors(table: Vectors, words: Sequence[str], *, whole_word: bool = True, chunk: int = 4096) -> np.ndarray:
    """Vectors of `words` from a floret table (with `whole_word` the same result as
    spaCy's `get_batch`): a numpy gather and segment mean, in chunks of words."""
    data = np.asarray(table.data, dtype=np.float32)
    n_buckets = data.shape[0]
    out = np.zeros((len(words), data.shape[1]), dtype=np.float32)
    for start in range(0, len(words), chunk):
        part = words[start : start + chunk]
        indptr, indices = floret_rows(part, table, n_buckets, whole_word=whole_word)
        counts = np.diff(indptr)
        nonempty = counts > 0
        if not nonempty.any():
            continue
        sums = np.add.reduceat(data[indices], indptr[:-1][nonempty], axis=0)
        out[start : start + len(part)][nonempty] = sums / counts[nonempty][:, None]
    return out


# --- WordPiece ---------------------------------------------------------------------


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _is_punct(c: str) -> bool:
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


class WordPieceTokenizer:
    """BERT-style uncased WordPiece: lowercase, strip accents, split punctuation,
    then greedy longest-match pieces (`##` marks a continuation).

    vocab (Sequence[str]): the piece vocabulary, in table order.
    lowercase (bool): lowercase and strip accents first.
    max_chars (int): words longer than this get no pieces.
    """

    def __init__(self, vocab: Sequence[str], *, lowercase: bool = True, max_chars: int = 100):
        self.vocab = list(vocab)
        self.index: Dict[str, int] = {p: i for i, p in enumerate(self.vocab)}
        self.lowercase = lowercase
        self.max_chars = max_chars

    def _words(self, text: str) -> List[str]:
        if self.lowercase:
            text = _strip_accents(text.lower())
        out: List[str] = []
        cur: List[str] = []
        for c in text:
            if c.isspace():
                if cur:
                    out.append("".join(cur))
                    cur = []
            elif _is_punct(c):
                if cur:
                    out.append("".join(cur))
                    cur = []
                out.append(c)
            else:
                cur.append(c)
        if cur:
            out.append("".join(cur))
        return out

    def piece_ids(self, text: str) -> List[int]:
        """Piece rows for a word or short text; unknown stretches are left out."""
        ids: List[int] = []
        for word in self._words(text):
            if len(word) > self.max_chars:
                continue
            start = 0
            found: List[int] = []
            while start < len(word):
                end = len(word)
                hit = None
                while start < end:
                    sub = word[start:end] if start == 0 else "##" + word[start:end]
                    hit = self.index.get(sub)
                    if hit is not None:
                        break
                    end -= 1
                if hit is None:
                    found = []
                    break
                found.append(hit)
                start = end
            ids.extend(found)
        return ids

    def pieces(self, text: str) -> List[str]:
        return [self.vocab[i] for i in self.piece_ids(text)]


def wordpiece_vectors(
    tokenizer: WordPieceTokenizer, table: np.ndarray, words: Iterable[str]
) -> Tuple[np.ndarray, np.ndarray]:
    """Mean piece vector per word; returns (matrix, found) where found[i] is False
    when a word has no known piece (its row is zeros)."""
    words = list(words)
    out = np.zeros((len(words), table.shape[1]), dtype=np.float32)
    found = np.zeros(len(words), dtype=bool)
    for i, w in enumerate(words):
        ids = tokenizer.piece_ids(w)
        if ids:
            out[i] = table[ids].mean(axis=0)
            found[i] = True
    return out, found
