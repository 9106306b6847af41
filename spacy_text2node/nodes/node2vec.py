"""node2vec for a Taxonomy: biased walks, then skip-gram with negative sampling.

The walks are generated and consumed in chunks (a few tens of MB), in a shuffled
order fixed by the seed, so memory stays flat however many walks are asked for:
a first pass counts how often each node occurs (for the noise distribution and the
subsampling), a second regenerates the same walks and trains on them.

Isolated nodes (no parent, no child) have walks of length 1 and so no training
pairs: they keep their random initial vector (uniform in +-0.5/dim, drawn from the
seed). Such a vector is nearly orthogonal to every trained vector, so an isolated
node never comes out as a close neighbour; it is not a zero vector, so cosine and
normalization stay defined.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
from spacy.util import registry
from tqdm import tqdm

from ..taxonomy import Taxonomy
from .io import NodeVectors
from .sgns import alias_table, keep_probabilities, train_chunk
from .walks import count_tokens, random_walks

logger = logging.getLogger("spacy_text2node")


@dataclass
class Node2VecConfig:
    """The parameters of a node2vec run (defaults as the Text2Node set-up).

    dim (int): vector size.
    p (float): return parameter; larger values make walks step back less.
    q (float): in-out parameter; below 1 walks move outwards (DFS-like), above 1 they
        stay local (BFS-like).
    walk_length (int): nodes per walk.
    num_walks (int): walks started from every node.
    window (int): skip-gram context size on each side.
    epochs (int): passes over the walks.
    negative (int): noise nodes per centre position.
    alpha (float): initial learning rate (linear decay to min_alpha).
    min_alpha (float): final learning rate.
    sample (float): subsampling threshold for frequent nodes (gensim's `sample`); 0 = off.
    workers (int): threads; 1 is fully deterministic for a seed.
    seed (int): random seed for walks, initialization, noise and order.
    chunk_size (int): walks generated and trained at a time.
    """

    dim: int = 128
    p: float = 1.0
    q: float = 0.5
    walk_length: int = 80
    num_walks: int = 10
    window: int = 10
    epochs: int = 1
    negative: int = 5
    alpha: float = 0.025
    min_alpha: float = 0.0001
    sample: float = 1e-3
    workers: int = 1
    seed: int = 0
    chunk_size: int = 32768

    def validate(self) -> None:
        """Raise a ValueError naming the bad parameter and what to use instead."""
        checks = [
            (self.p > 0, f"p must be > 0 (got {self.p!r}); p=1 is the neutral return parameter."),
            (self.q > 0, f"q must be > 0 (got {self.q!r}); q=1 is neutral, q<1 explores outwards."),
            (self.dim >= 2, f"dim must be at least 2 (got {self.dim!r}); 128 is usual."),
            (self.walk_length >= 2, f"walk_length must be at least 2 (got {self.walk_length!r}); 80 is usual."),
            (self.num_walks >= 1, f"num_walks must be at least 1 (got {self.num_walks!r})."),
            (self.window >= 1, f"window must be at least 1 (got {self.window!r})."),
            (self.epochs >= 1, f"epochs must be at least 1 (got {self.epochs!r})."),
            (self.negative >= 1, f"negative must be at least 1 (got {self.negative!r}); 5 is usual."),
            (
                self.alpha > 0 and self.min_alpha >= 0,
                f"alpha must be > 0 and min_alpha >= 0 (got {self.alpha!r}, {self.min_alpha!r}).",
            ),
            (self.sample >= 0, f"sample must be >= 0 (got {self.sample!r}); 0 turns subsampling off."),
            (self.workers >= 1, f"workers must be at least 1 (got {self.workers!r})."),
            (self.chunk_size >= 1, f"chunk_size must be at least 1 (got {self.chunk_size!r})."),
            (self.seed >= 0, f"seed must be >= 0 (got {self.seed!r})."),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"node2vec: {message}")


def _threads(workers: int) -> int:
    limit = os.cpu_count() or 1
    if workers > limit:
        logger.warning("node2vec: %d workers asked for but there are %d CPUs; using %d.", workers, limit, limit)
    return max(1, min(workers, limit))


def node2vec_csr(
    indptr: np.ndarray,
    indices: np.ndarray,
    config: Optional[Node2VecConfig] = None,
    *,
    progress: bool = True,
    **params: Any,
) -> Tuple[np.ndarray, Dict[str, Any]]:
    """node2vec on a graph given as CSR arrays (rows sorted, undirected: both directions).

    indptr (np.ndarray): row pointers, length n + 1.
    indices (np.ndarray): neighbours of each node, each row sorted ascending.
    config (Optional[Node2VecConfig]): the parameters; keyword `params` override it.
    progress (bool): show tqdm bars for walks and training.
    RETURNS (Tuple[np.ndarray, Dict[str, Any]]): float32 vectors (n x dim) and stats
        (timings, tokens, pairs).
    """
    cfg = Node2VecConfig(**{**(asdict(config) if config else {}), **params})
    cfg.validate()
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    n = int(indptr.shape[0] - 1)
    if n <= 0:
        raise ValueError("node2vec: the graph is empty (no nodes); load a taxonomy with at least one concept.")
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"node2vec: CSR indices must lie in 0..{n - 1}.")
    workers = _threads(cfg.workers)
    parallel = workers > 1
    total = n * cfg.num_walks
    order = np.random.default_rng(cfg.seed).permutation(total).astype(np.int64)
    chunks = [order[s : s + cfg.chunk_size] for s in range(0, total, cfg.chunk_size)]
    walk_kw: Dict[str, Any] = dict(
        walk_length=cfg.walk_length, p=cfg.p, q=cfg.q, seed=cfg.seed, parallel=parallel, threads=workers
    )

    t0 = time.perf_counter()
    counts = np.zeros(n, dtype=np.int64)
    with tqdm(total=total, desc="node2vec walks", unit="walk", disable=not progress, leave=False) as bar:
        for ids in chunks:
            walks, lengths = random_walks(indptr, indices, ids, **walk_kw)
            count_tokens(walks, lengths, n, counts)
            bar.update(ids.shape[0])
    t_walks = time.perf_counter() - t0

    noise = counts.astype(np.float64) ** 0.75
    if noise.sum() <= 0:
        noise = np.ones(n)
    prob, alias = alias_table(noise)
    keep = keep_probabilities(counts, cfg.sample)
    rng = np.random.default_rng(cfg.seed)
    syn0 = ((rng.random((n, cfg.dim), dtype=np.float32) - 0.5) / cfg.dim).astype(np.float32)
    syn1 = np.zeros((n, cfg.dim), dtype=np.float32)

    t1 = time.perf_counter()
    n_pairs = 0
    run_total = total * cfg.epochs
    with tqdm(total=run_total, desc="node2vec training", unit="walk", disable=not progress, leave=False) as bar:
        done = 0
        for _epoch in range(cfg.epochs):
            for ids in chunks:
                walks, lengths = random_walks(indptr, indices, ids, **walk_kw)
                ranks = np.arange(done, done + ids.shape[0], dtype=np.int64)
                n_pairs += train_chunk(
                    walks,
                    lengths,
                    ranks,
                    syn0,
                    syn1,
                    prob,
                    alias,
                    keep,
                    window=cfg.window,
                    negative=cfg.negative,
                    alpha=cfg.alpha,
                    min_alpha=cfg.min_alpha,
                    total=run_total,
                    seed=cfg.seed,
                    workers=workers,
                )
                done += ids.shape[0]
                bar.update(ids.shape[0])
    t_train = time.perf_counter() - t1
    del syn1
    stats = {
        "walks_s": round(t_walks, 3),
        "train_s": round(t_train, 3),
        "tokens": int(counts.sum()),
        "pairs": int(n_pairs),
        "isolated_nodes": int(np.count_nonzero(np.diff(indptr) == 0)),
        "workers": workers,
    }
    logger.info("node2vec: %d nodes, %d tokens, walks %.1fs, training %.1fs", n, stats["tokens"], t_walks, t_train)
    return syn0, stats


def embed_nodes(
    taxonomy: Taxonomy,
    config: Optional[Node2VecConfig] = None,
    *,
    undirected: bool = True,
    progress: bool = True,
    **params: Any,
) -> NodeVectors:
    """node2vec vectors for every node of a taxonomy, in its node order.

    taxonomy (Taxonomy): the taxonomy; its `csr(undirected)` graph is walked.
    config (Optional[Node2VecConfig]): the parameters; keyword `params` override it
        (dim, p, q, walk_length, num_walks, window, epochs, negative, alpha,
        min_alpha, sample, workers, seed, chunk_size).
    undirected (bool): walk parent and child edges (True, the default) or child ->
        parent edges only.
    progress (bool): show progress bars.
    RETURNS (NodeVectors): the vectors, with the parameters and timings in `cfg`.
    """
    if len(taxonomy) == 0:
        raise ValueError(f"node2vec: taxonomy {taxonomy.name!r} is empty; load one with at least one concept.")
    cfg = Node2VecConfig(**{**(asdict(config) if config else {}), **params})
    cfg.validate()
    indptr, indices = taxonomy.csr(undirected=undirected)
    vectors, stats = node2vec_csr(indptr, indices, cfg, progress=progress)
    meta = {
        "method": "node2vec",
        "taxonomy": taxonomy.name,
        "undirected": undirected,
        "params": asdict(cfg),
        "stats": stats,
    }
    return NodeVectors(taxonomy.ids, vectors, meta)


@registry.misc("spacy-text2node.Node2Vec.v1")
def make_node2vec(
    taxonomy: Taxonomy,
    dim: int = 128,
    p: float = 1.0,
    q: float = 0.5,
    walk_length: int = 80,
    num_walks: int = 10,
    window: int = 10,
    epochs: int = 1,
    negative: int = 5,
    workers: int = 1,
    seed: int = 0,
) -> NodeVectors:
    """Registered function: node2vec vectors for a taxonomy (see `embed_nodes`).

    taxonomy (Taxonomy): e.g. from `spacy-text2node.ICD10CM.v1`.
    RETURNS (NodeVectors): one float32 row per node, in the taxonomy's order.
    """
    return embed_nodes(
        taxonomy,
        dim=dim,
        p=p,
        q=q,
        walk_length=walk_length,
        num_walks=num_walks,
        window=window,
        epochs=epochs,
        negative=negative,
        workers=workers,
        seed=seed,
        progress=False,
    )
