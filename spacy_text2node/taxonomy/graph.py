"""Graph queries over a taxonomy's is-a edges, held as parent and child index lists in node order.

These work on node positions only; `Taxonomy` maps concept ids to positions and back.
"""

from __future__ import annotations

from collections import deque
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

Adjacency = Sequence[Sequence[int]]


def up_distances(parents: Adjacency, i: int) -> Dict[int, int]:
    """Shortest number of is-a edges from node i up to each of its ancestors (and 0 for i itself)."""
    dist = {i: 0}
    queue = deque([i])
    while queue:
        n = queue.popleft()
        for p in parents[n]:
            if p not in dist:
                dist[p] = dist[n] + 1
                queue.append(p)
    return dist


def ancestors(parents: Adjacency, i: int) -> List[int]:
    """The ancestors of node i, nearest first (ties by node position)."""
    d = up_distances(parents, i)
    return [j for j, k in sorted(d.items(), key=lambda x: (x[1], x[0])) if k > 0]


def descendants(children: Adjacency, start: int) -> List[int]:
    """The descendants of node `start`, breadth first."""
    seen = {start}
    out = []
    queue = deque([start])
    while queue:
        n = queue.popleft()
        for c in children[n]:
            if c not in seen:
                seen.add(c)
                out.append(c)
                queue.append(c)
    return out


def depths(parents: Adjacency, children: Adjacency) -> np.ndarray:
    """Depth of every node: edges on the shortest path up to a root (roots have depth 0)."""
    n = len(parents)
    depth = np.full(n, -1, dtype=np.int32)
    queue = deque(i for i in range(n) if not parents[i])
    for i in queue:
        depth[i] = 0
    while queue:
        i = queue.popleft()
        for c in children[i]:
            if depth[c] < 0:
                depth[c] = depth[i] + 1
                queue.append(c)
    return depth


def common_ancestor_distance(parents: Adjacency, ia: int, ib: int) -> Optional[int]:
    """Edges from node ia to node ib through their nearest common ancestor, or None if they have none.

    The common ancestor c minimising up(a, c) + up(b, c) is used, where up() is the
    shortest is-a path.
    """
    if ia == ib:
        return 0
    da, db = up_distances(parents, ia), up_distances(parents, ib)
    common = [da[k] + db[k] for k in da.keys() & db.keys()]
    return min(common) if common else None


def csr(
    parents: Sequence[Tuple[int, ...]], children: Sequence[Tuple[int, ...]], undirected: bool = True
) -> Tuple[np.ndarray, np.ndarray]:
    """Adjacency as CSR arrays (indptr int64, indices int32), neighbours of each node sorted.

    undirected (bool): neighbours are parents and children; False gives parents only.
    RETURNS (Tuple[np.ndarray, np.ndarray]): indptr of length n + 1, indices.
    """
    n = len(parents)
    lists = [(parents[i] + children[i]) if undirected else parents[i] for i in range(n)]
    counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.fromiter((j for x in lists for j in sorted(x)), dtype=np.int32, count=int(indptr[-1]))
    return indptr, indices
