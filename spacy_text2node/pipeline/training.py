"""The mapper's training objective: InfoNCE over in-batch golds, sampled and hard
negatives, plus the cosine distance to the gold node vector."""

from __future__ import annotations

from typing import Dict, List, Set, Tuple

import numpy as np

from ..index import NodeIndex
from ..taxonomy import Taxonomy
from .settings import TrainingSettings


class NegativeSampler:
    """Negative concepts for a batch: random ones, and per gold concept its taxonomy
    siblings and its node-space neighbours (both cached per concept)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.siblings: Dict[int, np.ndarray] = {}
        self.neighbours: Dict[int, np.ndarray] = {}

    def reset(self) -> None:
        """Forget the cached siblings and neighbours (a new taxonomy or index)."""
        self.siblings, self.neighbours = {}, {}

    def __call__(
        self, gold_first: np.ndarray, taxonomy: Taxonomy, index: NodeIndex, settings: TrainingSettings
    ) -> np.ndarray:
        """Sorted unique node indices: the golds and their negatives."""
        n = len(taxonomy)
        parts = [gold_first]
        if settings.n_negatives > 0:
            parts.append(self.rng.integers(0, n, size=min(settings.n_negatives, n)))
        h = settings.hard_negatives
        if h > 0:
            for g in np.unique(gold_first):
                g = int(g)
                sib = self.siblings.get(g)
                if sib is None:
                    s: Set[int] = set()
                    for p in taxonomy.parent_indices(g):
                        s.update(taxonomy.child_indices(p))
                    s.discard(g)
                    sib = np.asarray(sorted(s), dtype="int64")
                    self.siblings[g] = sib
                if len(sib) > h:
                    sib = self.rng.choice(sib, size=h, replace=False)
                parts.append(sib)
                nb = self.neighbours.get(g)
                if nb is None:
                    nb = np.asarray(index.node_neighbours(g, h), dtype="int64")
                    self.neighbours[g] = nb
                parts.append(nb)
        return np.unique(np.concatenate(parts).astype("int64"))


def loss_and_grad(
    Y: np.ndarray,
    gold_first: np.ndarray,
    gold_all: List[List[int]],
    space: np.ndarray,
    candidates: np.ndarray,
    settings: TrainingSettings,
) -> Tuple[float, np.ndarray]:
    """InfoNCE loss and its gradient for mapper outputs `Y`.

    Y (np.ndarray): (b, d) mapper outputs.
    gold_first (np.ndarray): the first gold node of each span.
    gold_all (List[List[int]]): all gold nodes of each span (the others are not negatives).
    space (np.ndarray): node space (rows L2-normalised).
    candidates (np.ndarray): sorted node indices holding the golds and the negatives.
    settings (TrainingSettings): temperature and distance weight.
    RETURNS (Tuple[float, np.ndarray]): the loss and d_loss/d_Y.
    """
    b = Y.shape[0]
    norms = np.linalg.norm(Y, axis=1, keepdims=True) + 1e-8
    Yn = Y / norms
    C = candidates
    SC = space[C]
    logits = (Yn @ SC.T) / settings.temperature
    pos = np.searchsorted(C, gold_first)
    # other right answers of a multi-gold span are not negatives
    for r, idx in enumerate(gold_all):
        if len(idx) > 1:
            for j in idx[1:]:
                p = np.searchsorted(C, j)
                if p < len(C) and C[p] == j and p != pos[r]:
                    logits[r, p] = -1e9
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    probs = e / e.sum(axis=1, keepdims=True)
    loss = float(-np.log(probs[np.arange(b), pos] + 1e-12).sum())
    d_logits = probs
    d_logits[np.arange(b), pos] -= 1.0
    d_Yn = (d_logits @ SC) / settings.temperature
    T = space[gold_first]
    w = settings.distance_weight
    if w > 0:
        loss += float(w * (1.0 - (Yn * T).sum(1)).sum())
        d_Yn -= w * T
    d_Yn /= b
    d_Y = (d_Yn - Yn * (d_Yn * Yn).sum(1, keepdims=True)) / norms
    return loss, d_Y.astype("float32")
