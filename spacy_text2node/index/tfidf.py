"""Fitting the lexical channel's matrices on the taxonomy's strings.

The char n-gram TF-IDF is scikit-learn's `TfidfVectorizer(analyzer="char_wb",
ngram_range=(3, 3))` given our words (lower-cased unicode \\w+ runs, joined by spaces):
raw counts, smoothed IDF ln((1 + n) / (1 + df)) + 1, L2 rows (tests/test_index.py checks
it); its columns are in order of first occurrence.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, List, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

from .text import char_ngrams, normalize_text, word_set


def char_tfidf(texts: Sequence[str]) -> Tuple[Dict[str, int], np.ndarray, sp.csr_matrix]:
    """TF-IDF of the char 3-grams of the words of each string.

    texts (Sequence[str]): the strings.
    RETURNS (Tuple[Dict[str, int], np.ndarray, sp.csr_matrix]): n-gram -> column, the
        float32 IDF per column, and the (strings, n-grams) float32 rows of unit norm.
    """
    vocab: Dict[str, int] = {}
    indptr = [0]
    indices: List[int] = []
    data: List[float] = []
    for t in texts:
        for g, v in Counter(char_ngrams(t)).items():
            indices.append(vocab.setdefault(g, len(vocab)))
            data.append(float(v))
        indptr.append(len(indices))
    m = sp.csr_matrix(
        (np.asarray(data, dtype="float32"), np.asarray(indices, dtype="int32"), np.asarray(indptr, dtype="int64")),
        shape=(len(texts), len(vocab)),
    )
    df = np.bincount(m.indices, minlength=len(vocab)).astype("float64")
    idf = (np.log((1 + len(texts)) / (1 + df)) + 1.0).astype("float32")
    return vocab, idf, normalize_rows(m @ sp.diags(idf))


def word_matrix(texts: Sequence[str]) -> Tuple[Dict[str, int], sp.csr_matrix]:
    """Binary (strings, words) matrix of the distinct stemmed words of each string.

    RETURNS (Tuple[Dict[str, int], sp.csr_matrix]): word -> column (first occurrence), the matrix.
    """
    vocab: Dict[str, int] = {}
    indptr: List[int] = [0]
    indices: List[int] = []
    for t in texts:
        indices.extend(vocab.setdefault(w, len(vocab)) for w in word_set(t))
        indptr.append(len(indices))
    m = sp.csr_matrix(
        (np.ones(len(indices), dtype="float32"), np.asarray(indices, dtype="int32"), np.asarray(indptr, dtype="int64")),
        shape=(len(texts), len(vocab)),
    )
    return vocab, m


def exact_table(texts: Sequence[str], string_node: Sequence[int]) -> Dict[str, List[int]]:
    """Normalised string (`normalize_text`) -> the nodes that have it, in order, once each."""
    exact: Dict[str, List[int]] = {}
    for t, node in zip(texts, string_node):
        key = normalize_text(t)
        if key:
            nodes = exact.setdefault(key, [])
            if int(node) not in nodes:
                nodes.append(int(node))
    return exact


def normalize_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    """float32 rows of unit L2 norm (zero rows stay zero)."""
    m = sp.csr_matrix(m, dtype="float32")
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms).astype("float32") @ m)
