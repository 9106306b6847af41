"""Skip-gram with negative sampling over integer walks, compiled with numba.

The model is word2vec's skip-gram (as gensim's `sg=1, hs=0`): for each position `i`
of a walk, a window of `window - b` positions on each side (`b` drawn uniformly from
`0 .. window-1`); each context node's input vector is trained to predict the node at
`i` against `negative` noise nodes drawn from the unigram distribution raised to
0.75; frequent nodes are subsampled with gensim's formula; the learning rate decays
linearly from `alpha` to `min_alpha` over the run.

One difference makes it fast: the noise nodes are drawn once per centre position
and shared by all the context nodes of its window (Ji et al. 2016, "Parallelizing
Word2Vec in Shared and Distributed Memory"). The window's updates then become small
dense matrix products over a few rows that stay in cache, instead of one scattered
vector update per (context, noise) pair. Threads update the shared matrices without
locks (Hogwild), as word2vec and gensim do. A context node that occurs several times
in one window is gathered once and its gradient multiplied by its count, which is
exactly the block update of its repeated rows. The logistic function is read from a
table, as in word2vec.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Tuple

import numpy as np
from numba import njit

from .walks import SALT_TRAIN, next_below, next_float, seed_state


def alias_table(weights: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Walker's alias table for sampling indices in proportion to `weights`.

    weights (np.ndarray): non-negative weights, not all zero.
    RETURNS (Tuple[np.ndarray, np.ndarray]): (prob float64, alias int32).
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.shape[0]
    total = w.sum()
    if n == 0 or total <= 0:
        raise ValueError("alias_table needs at least one positive weight.")
    scaled = w * (n / total)
    prob = np.ones(n, dtype=np.float64)
    alias = np.arange(n, dtype=np.int32)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s = small.pop()
        g = large.pop()
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = scaled[g] + scaled[s] - 1.0
        if scaled[g] < 1.0:
            small.append(g)
        else:
            large.append(g)
    return prob, alias


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """Gensim's subsampling: the probability of keeping each occurrence of a node.

    counts (np.ndarray): occurrences of each node in the walks.
    sample (float): the threshold (gensim's `sample`, 1e-3 by default); 0 keeps all.
    RETURNS (np.ndarray): float32 keep probabilities in [0, 1].
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones(counts.shape[0], dtype=np.float32)
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (np.sqrt(counts / threshold) + 1.0) * threshold / counts
    keep[~np.isfinite(keep)] = 1.0
    return np.minimum(keep, 1.0).astype(np.float32)


MAX_EXP = 8.0
SIG_SIZE = 4096
SIG_SCALE = SIG_SIZE / (2 * MAX_EXP)
# the logistic function tabulated at bin centres over [-MAX_EXP, MAX_EXP] (as word2vec does)
SIGMOID = (1.0 / (1.0 + np.exp(-((np.arange(SIG_SIZE) + 0.5) / SIG_SCALE - MAX_EXP)))).astype(np.float32)


@njit(inline="always", cache=True)
def _draw(state, prob, alias):
    state, k = next_below(state, prob.shape[0])
    state, u = next_float(state)
    if u < prob[k]:
        return state, k
    return state, alias[k]


@njit(nogil=True, fastmath=True, cache=True)
def _train_rows(
    walks,
    lengths,
    ranks,
    lo,
    hi,
    syn0,
    syn1,
    prob,
    alias,
    keep,
    window,
    negative,
    alpha0,
    min_alpha,
    total,
    seed,
    subsample,
):
    """Train on walks lo..hi-1 of a chunk; `ranks` are their global positions."""
    dim = syn0.shape[1]
    max_len = walks.shape[1]
    sigmoid = SIGMOID
    toks = np.empty(max_len, dtype=np.int32)
    ctx = np.empty(2 * window, dtype=np.int32)
    mult = np.empty(2 * window, dtype=np.float32)
    tgt = np.empty(negative + 1, dtype=np.int32)
    lab = np.empty(negative + 1, dtype=np.float32)
    g = np.empty((2 * window, negative + 1), dtype=np.float32)
    neu = np.empty((2 * window, dim), dtype=np.float32)
    tg = np.empty((negative + 1, dim), dtype=np.float32)
    cb = np.empty((2 * window, dim), dtype=np.float32)
    tb = np.empty((negative + 1, dim), dtype=np.float32)
    n_pairs = 0
    for r in range(lo, hi):
        rank = ranks[r]
        state = seed_state(seed, rank, SALT_TRAIN)
        alpha = np.float32(alpha0 - (alpha0 - min_alpha) * (rank / total))
        m = 0
        for t in range(lengths[r]):
            w = walks[r, t]
            if subsample:
                kp = keep[w]
                if kp < 1.0:
                    state, u = next_float(state)
                    if u > kp:
                        continue
            toks[m] = w
            m += 1
        if m < 2:
            continue
        for i in range(m):
            state, b = next_below(state, window)
            s = i - window + b
            if s < 0:
                s = 0
            e = i + window + 1 - b
            if e > m:
                e = m
            # distinct context nodes of the window, with their multiplicity: the
            # batched update of a repeated node is its single update times the count
            nb = 0
            for j in range(s, e):
                if j != i:
                    c = toks[j]
                    found = False
                    for bj in range(nb):
                        if ctx[bj] == c:
                            mult[bj] += 1.0
                            found = True
                            break
                    if not found:
                        ctx[nb] = c
                        mult[nb] = 1.0
                        nb += 1
                    n_pairs += 1
            if nb == 0:
                continue
            w = toks[i]
            tgt[0] = w
            lab[0] = 1.0
            nt = 1
            for _ in range(negative):
                state, x = _draw(state, prob, alias)
                if x == w:
                    continue
                tgt[nt] = x
                lab[nt] = 0.0
                nt += 1
            # gather the block's rows, then the nb x nt scores and gradients
            for bi in range(nb):
                c = ctx[bi]
                for d in range(dim):
                    cb[bi, d] = syn0[c, d]
                    neu[bi, d] = 0.0
            for k in range(nt):
                t = tgt[k]
                for d in range(dim):
                    tb[k, d] = syn1[t, d]
                    tg[k, d] = 0.0
            for bi in range(nb):
                mb = mult[bi] * alpha
                for k in range(nt):
                    f = np.float32(0.0)
                    for d in range(dim):
                        f += cb[bi, d] * tb[k, d]
                    if f >= MAX_EXP:
                        sig = np.float32(1.0)
                    elif f <= -MAX_EXP:
                        sig = np.float32(0.0)
                    else:
                        sig = sigmoid[int((f + MAX_EXP) * SIG_SCALE)]
                    g[bi, k] = (lab[k] - sig) * mb
            for bi in range(nb):
                for k in range(nt):
                    gk = g[bi, k]
                    for d in range(dim):
                        neu[bi, d] += gk * tb[k, d]
                        tg[k, d] += gk * cb[bi, d]
            for k in range(nt):
                t = tgt[k]
                for d in range(dim):
                    syn1[t, d] += tg[k, d]
            for bi in range(nb):
                c = ctx[bi]
                for d in range(dim):
                    syn0[c, d] += neu[bi, d]
    return n_pairs


def train_chunk(
    walks: np.ndarray,
    lengths: np.ndarray,
    ranks: np.ndarray,
    syn0: np.ndarray,
    syn1: np.ndarray,
    prob: np.ndarray,
    alias: np.ndarray,
    keep: np.ndarray,
    *,
    window: int,
    negative: int,
    alpha: float,
    min_alpha: float,
    total: int,
    seed: int,
    workers: int,
) -> int:
    """Run SGNS updates over one chunk of walks, in place on `syn0` and `syn1`.

    walks (np.ndarray): int32 walks, one per row.
    lengths (np.ndarray): int32 length of each walk.
    ranks (np.ndarray): int64 global position of each walk in the training run
        (sets its learning rate and seeds its random stream).
    syn0 (np.ndarray): float32 input vectors (the node vectors), updated in place.
    syn1 (np.ndarray): float32 output vectors, updated in place.
    prob (np.ndarray): alias-table probabilities of the noise distribution.
    alias (np.ndarray): alias-table aliases of the noise distribution.
    keep (np.ndarray): float32 subsampling keep probability per node.
    window (int): maximum context distance.
    negative (int): noise nodes per centre position.
    alpha (float): initial learning rate.
    min_alpha (float): final learning rate.
    total (int): number of walks in the whole run (for the learning-rate schedule).
    seed (int): the random seed.
    workers (int): threads; 1 runs serially and deterministically.
    RETURNS (int): the number of (context, centre) pairs trained.
    """
    subsample = bool((keep < 1.0).any())
    args = (
        prob,
        alias,
        keep,
        int(window),
        int(negative),
        float(alpha),
        float(min_alpha),
        float(total),
        np.uint64(seed),
        subsample,
    )
    n = walks.shape[0]
    workers = min(int(workers), max(1, n))
    if workers <= 1:
        return int(_train_rows(walks, lengths, ranks, 0, n, syn0, syn1, *args))
    # Hogwild: the kernel releases the GIL; each thread trains a slice of the chunk
    bounds = np.linspace(0, n, workers + 1).astype(np.int64)
    with ThreadPoolExecutor(workers) as pool:
        jobs = [
            pool.submit(_train_rows, walks, lengths, ranks, int(lo), int(hi), syn0, syn1, *args)
            for lo, hi in zip(bounds[:-1], bounds[1:])
        ]
        return int(sum(job.result() for job in jobs))
