"""Compiled (numba) kernels of LexicalDense's features.

* `_map_lookup` / `_map_insert` (probing with `_map_slot`): an open-addressing hash map from token keys
  (uint64) to word ids, the index of `features._WordTable`.
* `_tfidf_kernel`: per doc, the sublinear TF-IDF weights of its hashed word and
  character n-gram buckets, written as CSR arrays or, at prediction, multiplied
  into a dense table straight away.
"""

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _map_slot(k, map_keys, map_vals, mask):  # pragma: no cover - compiled
    """The slot of key `k`: the one holding it, or the empty one (value < 0) where it goes."""
    j = np.int64(k & mask)
    while map_vals[j] >= 0 and map_keys[j] != k:
        j = np.int64((np.uint64(j) + np.uint64(1)) & mask)
    return j


@numba.njit(cache=True, nogil=True)
def _map_lookup(keys, map_keys, map_vals, out):  # pragma: no cover - compiled
    mask = np.uint64(len(map_keys) - 1)
    for i in range(len(keys)):
        v = map_vals[_map_slot(keys[i], map_keys, map_vals, mask)]
        out[i] = v if v >= 0 else -1


@numba.njit(cache=True, nogil=True)
def _map_insert(keys, vals, map_keys, map_vals):  # pragma: no cover - compiled
    mask = np.uint64(len(map_keys) - 1)
    for i in range(len(keys)):
        j = _map_slot(keys[i], map_keys, map_vals, mask)
        map_keys[j] = keys[i]
        map_vals[j] = vals[i]


@numba.njit(cache=True, nogil=True)
def _tfidf_kernel(
    doc_ptr,
    tok_wid,
    n_words,
    unigram,
    ngrams,
    char_ptr,
    char_idx,
    idf,
    use_words,
    use_chars,
    out_ptr,
    out_idx,
    out_val,
    sublinear,
    table,
    dense,
):  # pragma: no cover
    """Per doc: count its distinct words; per block, count buckets in a dense
    scratch array (no sort), each distinct word's character n-grams once, times
    its count; then write (1 + ln tf) * idf, L2-normalised, for each touched bucket
    into the CSR arrays; or, when `table` has rows, add the row's product with
    `table` into `dense` instead (prediction: no CSR matrix is built)."""
    fused = table.shape[0] > 0
    n_cols = table.shape[1]
    acc = np.zeros(n_cols, dtype=np.float64)
    n_docs = len(doc_ptr) - 1
    n_ng = ngrams.shape[1]
    counts = np.zeros(len(idf), dtype=np.int32)
    wcount = np.zeros(n_words, dtype=np.int32)
    nnz = 0
    for d in range(n_docs):
        s, e = doc_ptr[d], doc_ptr[d + 1]
        out_ptr[d] = nnz
        uw = np.empty(e - s, dtype=np.int64)
        n_uw = 0
        for t in range(s, e):
            w = tok_wid[t]
            if wcount[w] == 0:
                uw[n_uw] = w
                n_uw += 1
            wcount[w] += 1
        for block in range(2):
            m = 0
            if block == 0:
                if not use_words:
                    continue
                touched = np.empty(n_uw + (e - s) * n_ng, dtype=np.int64)
                for k in range(n_uw):
                    w = uw[k]
                    b = unigram[w]
                    if counts[b] == 0:
                        touched[m] = b
                        m += 1
                    counts[b] += wcount[w]
                for t in range(s, e):
                    for g in range(n_ng):
                        b = ngrams[t, g]
                        if b >= 0:
                            if counts[b] == 0:
                                touched[m] = b
                                m += 1
                            counts[b] += 1
            else:
                if not use_chars:
                    continue
                size = 0
                for k in range(n_uw):
                    size += char_ptr[uw[k] + 1] - char_ptr[uw[k]]
                touched = np.empty(size, dtype=np.int64)
                for k in range(n_uw):
                    w = uw[k]
                    c = wcount[w]
                    for j in range(char_ptr[w], char_ptr[w + 1]):
                        b = char_idx[j]
                        if counts[b] == 0:
                            touched[m] = b
                            m += 1
                        counts[b] += c
            start = nnz
            sq = 0.0
            if fused:
                acc[:] = 0.0
            for k in range(m):
                b = touched[k]
                c = counts[b]
                w8 = (sublinear[c] if c < len(sublinear) else 1.0 + math.log(c)) * idf[b]
                counts[b] = 0
                if w8 > 0.0:
                    sq += w8 * w8
                    if fused:
                        for q in range(n_cols):
                            acc[q] += w8 * table[b, q]
                    else:
                        out_idx[nnz] = b
                        out_val[nnz] = w8
                        nnz += 1
            if sq > 0.0:
                inv = 1.0 / math.sqrt(sq)
                if fused:
                    for q in range(n_cols):
                        dense[d, q] += acc[q] * inv
                else:
                    for k in range(start, nnz):
                        out_val[k] *= inv
        for k in range(n_uw):
            wcount[uw[k]] = 0
    out_ptr[n_docs] = nnz
    return nnz
