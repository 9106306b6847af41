"""Quality of node vectors without a linker: how near each node's parent is."""

from __future__ import annotations

from typing import Dict, Union

import numpy as np

from ..taxonomy import Taxonomy


def _as_matrix(taxonomy: Taxonomy, vectors) -> np.ndarray:
    arr = np.asarray(getattr(vectors, "vectors", vectors), dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != len(taxonomy):
        raise ValueError(
            f"Node vectors of shape {arr.shape} do not fit taxonomy {taxonomy.name!r} "
            f"with {len(taxonomy):,} nodes: pass one row per node, in the taxonomy's order."
        )
    return arr


def parent_ranks(
    taxonomy: Taxonomy,
    vectors,
    n_samples: int = 2000,
    seed: int = 0,
    batch_size: int = 256,
) -> Dict[str, np.ndarray]:
    """The rank of each sampled node's nearest parent among all other nodes by cosine.

    A fixed sample (by `seed`) of nodes that have at least one parent is drawn; for
    each, all other nodes are ranked by cosine similarity to it, and the rank (1 =
    nearest) of its best-ranked parent is kept. Ties count against the parent. A
    zero vector has cosine 0 to everything.

    taxonomy (Taxonomy): the taxonomy the vectors are aligned to.
    vectors (Union[np.ndarray, NodeVectors]): one row per node, in node order.
    n_samples (int): how many nodes to sample (all of them if fewer have a parent).
    seed (int): the sampling seed.
    batch_size (int): sampled nodes scored per matrix product.
    RETURNS (Dict[str, np.ndarray]): "nodes" (sampled indices) and "ranks" (int64).
    """
    X = _as_matrix(taxonomy, vectors)
    with_parent = np.asarray([i for i in range(len(taxonomy)) if taxonomy.parent_indices(i)], dtype=np.int64)
    if with_parent.size == 0:
        raise ValueError(f"Taxonomy {taxonomy.name!r} has no node with a parent: parent MRR is undefined.")
    rng = np.random.default_rng(seed)
    k = min(int(n_samples), with_parent.size)
    nodes = np.sort(rng.choice(with_parent, size=k, replace=False))
    norms = np.linalg.norm(X, axis=1)
    norms[norms == 0] = 1.0
    Xn = X / norms[:, None]
    ranks = np.empty(k, dtype=np.int64)
    for s in range(0, k, batch_size):
        batch = nodes[s : s + batch_size]
        sims = Xn[batch] @ Xn.T
        for j, i in enumerate(batch):
            row = sims[j]
            own = row[i]
            row[i] = -np.inf
            best = max(row[p] for p in taxonomy.parent_indices(int(i)))
            ranks[s + j] = int(np.count_nonzero(row >= best))
            row[i] = own
    return {"nodes": nodes, "ranks": ranks}


def parent_mrr(
    taxonomy: Taxonomy,
    vectors,
    n_samples: int = 2000,
    seed: int = 0,
) -> float:
    """Mean reciprocal rank of a node's parent among its nearest neighbours by cosine.

    taxonomy (Taxonomy): the taxonomy the vectors are aligned to.
    vectors (Union[np.ndarray, NodeVectors]): one row per node, in node order.
    n_samples (int): how many nodes with a parent to sample.
    seed (int): the sampling seed.
    RETURNS (float): the MRR in (0, 1]; 1 means every parent is the nearest node.
    """
    ranks = parent_ranks(taxonomy, vectors, n_samples=n_samples, seed=seed)["ranks"]
    return float(np.mean(1.0 / ranks))


def parent_report(
    taxonomy: Taxonomy,
    vectors,
    n_samples: int = 2000,
    seed: int = 0,
) -> Dict[str, Union[float, int]]:
    """Parent MRR plus hits@1/@10 and the median rank, for reports and the CLI."""
    ranks = parent_ranks(taxonomy, vectors, n_samples=n_samples, seed=seed)["ranks"]
    return {
        "parent_mrr": float(np.mean(1.0 / ranks)),
        "parent_hits@1": float(np.mean(ranks <= 1)),
        "parent_hits@10": float(np.mean(ranks <= 10)),
        "parent_median_rank": float(np.median(ranks)),
        "n_samples": int(ranks.size),
    }
