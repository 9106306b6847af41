"""Second-order (node2vec) biased random walks on CSR arrays, compiled with numba.

A biased step from `cur` (having come from `prev`) uses rejection sampling, as in
KnightKing (Yang et al., SOSP 2019): propose a neighbour `x` of `cur` uniformly, and
accept it with probability `w(x) / max_w`, where `w = 1/p` if `x == prev`, `1` if `x`
is a neighbour of `prev` and `1/q` otherwise. The neighbour test is a binary search in
`prev`'s sorted row, so a step costs O(log degree) expected time and needs no
per-edge transition tables, however large the hubs are.

Every walk has its own random stream, seeded from `(seed, walk id)`, so the walks are
the same for a given seed whatever the number of threads or the chunking. The
kernels release the GIL (`nogil`), so plain Python threads run them in parallel.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Tuple

import numpy as np
from numba import njit

SALT_WALK = 0x5EED0001
SALT_TRAIN = 0x5EED0002

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


@njit(inline="always", cache=True)
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline="always", cache=True)
def seed_state(seed, stream, salt):
    """The initial state of the random stream `stream` (a walk id) for `seed`."""
    return _mix(_mix(np.uint64(seed) ^ np.uint64(salt)) + np.uint64(stream) * _GOLDEN)


@njit(inline="always", cache=True)
def next_u64(state):
    """splitmix64: returns (new state, 64 random bits)."""
    state = state + _GOLDEN
    return state, _mix(state)


@njit(inline="always", cache=True)
def next_float(state):
    """Returns (new state, a uniform float in [0, 1))."""
    state, z = next_u64(state)
    return state, float(z >> _S11) * _INV53


@njit(inline="always", cache=True)
def next_below(state, m):
    """Returns (new state, a uniform integer in [0, m))."""
    state, u = next_float(state)
    r = int(u * m)
    if r >= m:
        r = m - 1
    return state, r


@njit(inline="always", cache=True)
def _is_neighbour(indptr, indices, a, b):
    lo = indptr[a]
    hi = indptr[a + 1]
    while lo < hi:
        mid = (lo + hi) >> 1
        v = indices[mid]
        if v < b:
            lo = mid + 1
        elif v > b:
            hi = mid
        else:
            return True
    return False


@njit(cache=True)
def _one_walk(indptr, indices, start, out, inv_p, inv_q, max_w, state):
    """Write one walk from `start` into `out`; return its length (1 if isolated)."""
    length = out.shape[0]
    out[0] = start
    cur = start
    deg = indptr[cur + 1] - indptr[cur]
    if deg == 0:
        return 1
    state, r = next_below(state, deg)
    prev = cur
    cur = indices[indptr[cur] + r]
    out[1] = cur
    for t in range(2, length):
        base = indptr[cur]
        deg = indptr[cur + 1] - base
        while True:
            state, r = next_below(state, deg)
            x = indices[base + r]
            if x == prev:
                w = inv_p
            elif _is_neighbour(indptr, indices, prev, x):
                w = 1.0
            else:
                w = inv_q
            if w >= max_w:
                break
            state, u = next_float(state)
            if u * max_w < w:
                break
        prev = cur
        cur = x
        out[t] = cur
    return length


@njit(nogil=True, cache=True)
def _walks_serial(indptr, indices, walk_ids, n_nodes, walk_length, inv_p, inv_q, seed, out, lengths):
    max_w = max(inv_p, max(1.0, inv_q))
    for i in range(walk_ids.shape[0]):
        wid = walk_ids[i]
        state = seed_state(seed, wid, SALT_WALK)
        lengths[i] = _one_walk(indptr, indices, wid % n_nodes, out[i], inv_p, inv_q, max_w, state)


def random_walks(
    indptr: np.ndarray,
    indices: np.ndarray,
    walk_ids: np.ndarray,
    *,
    walk_length: int,
    p: float = 1.0,
    q: float = 1.0,
    seed: int = 0,
    parallel: bool = True,
    threads: int = 2,
) -> Tuple[np.ndarray, np.ndarray]:
    """Generate the node2vec walks with the given ids.

    Walk `k` starts at node `k % n_nodes` (so ids `0 .. n*num_walks-1` are `num_walks`
    walks from every node) and is the same for a given seed however it is computed.

    indptr (np.ndarray): CSR row pointers (int64, length n + 1); rows sorted.
    indices (np.ndarray): CSR column indices (int32).
    walk_ids (np.ndarray): which walks to generate (int64).
    walk_length (int): nodes per walk, the start node included.
    p (float): return parameter (a step back to the previous node has weight 1/p).
    q (float): in-out parameter (a step away from the previous node has weight 1/q).
    seed (int): the random seed.
    parallel (bool): use several threads.
    threads (int): how many threads when parallel.
    RETURNS (Tuple[np.ndarray, np.ndarray]): walks (int32, len(walk_ids) x
        walk_length; entries past a walk's length are undefined) and lengths (int32:
        walk_length, or 1 for a walk from an isolated node).
    """
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    walk_ids = np.ascontiguousarray(walk_ids, dtype=np.int64)
    n = indptr.shape[0] - 1
    out = np.empty((walk_ids.shape[0], walk_length), dtype=np.int32)
    lengths = np.empty(walk_ids.shape[0], dtype=np.int32)
    args = (n, walk_length, 1.0 / p, 1.0 / q, np.uint64(seed))
    n_threads = min(threads, max(1, walk_ids.shape[0] // 1024)) if parallel else 1
    if n_threads <= 1:
        _walks_serial(indptr, indices, walk_ids, *args, out, lengths)
    else:
        # the kernel releases the GIL: plain threads, one slice of the walks each
        bounds = np.linspace(0, walk_ids.shape[0], n_threads + 1).astype(np.int64)
        with ThreadPoolExecutor(n_threads) as pool:
            jobs = [
                pool.submit(_walks_serial, indptr, indices, walk_ids[lo:hi], *args, out[lo:hi], lengths[lo:hi])
                for lo, hi in zip(bounds[:-1], bounds[1:])
            ]
            for job in jobs:
                job.result()
    return out, lengths


@njit(nogil=True, cache=True)
def _count_tokens(walks, lengths, counts):
    for i in range(walks.shape[0]):
        for j in range(lengths[i]):
            counts[walks[i, j]] += 1


def count_tokens(
    walks: np.ndarray, lengths: np.ndarray, n_nodes: int, counts: Optional[np.ndarray] = None
) -> np.ndarray:
    """How often each node occurs in the walks (int64, length n_nodes), added to `counts`."""
    if counts is None:
        counts = np.zeros(n_nodes, dtype=np.int64)
    _count_tokens(walks, lengths, counts)
    return counts
