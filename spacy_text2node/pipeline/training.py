"""The mapper's training objective: InfoNCE over in-batch golds, sampled and hard
negatives, plus the cosine distance to the gold node vector, and optionally BioSyn's
synonym-marginalised term over the taxonomy's strings as the mapper maps them."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from ..index import NodeIndex, normalize_text
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
    Yn, norms = _unit_rows(Y)
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
    return loss, _back_through_unit_rows(d_Yn, Yn, norms)


def _unit_rows(Y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Y's rows over their norms, and the norms (+ 1e-8, so a zero row stays finite)."""
    norms = np.linalg.norm(Y, axis=1, keepdims=True) + 1e-8
    return Y / norms, norms


def _back_through_unit_rows(d_Yn: np.ndarray, Yn: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """d_loss/d_Y from d_loss/d_Yn, for Yn = `_unit_rows(Y)` (float32)."""
    return ((d_Yn - Yn * (d_Yn * Yn).sum(1, keepdims=True)) / norms).astype("float32")


# maps texts taken whole to mapper outputs, without gradient
MapFn = Callable[[Sequence[str]], np.ndarray]


class SynonymTable:
    """Every string (label and synonym) of the taxonomy mapped by the mapper being trained,
    without gradient: the candidates of the synonym-marginalised term. Remapped every
    `synonym_refresh` steps, as BioSyn re-encodes its candidates while it trains."""

    def __init__(self) -> None:
        self.texts: List[str] = []  # tokenized again at each remap: docs of them all are large
        self.norm = np.zeros(0, dtype=object)  # normalised text of each string
        self.indptr = np.zeros(1, dtype="int64")  # strings of node i: indptr[i]:indptr[i + 1]
        self.node = np.zeros(0, dtype="int64")
        self.rows: Optional[np.ndarray] = None  # the mapped strings, L2-normalised
        self.steps = 0

    def reset(self) -> None:
        """Forget the strings (a new taxonomy)."""
        self.__init__()  # type: ignore[misc]

    def step(self, taxonomy: Taxonomy, every: int, map_texts: MapFn) -> None:
        """Count a training step; build or remap the table when due."""
        if not self.texts:
            texts, node = taxonomy.strings()
            self.texts = texts
            self.norm = np.asarray([normalize_text(t) for t in texts], dtype=object)
            self.node = node.astype("int64")
            self.indptr = np.concatenate([[0], np.cumsum(np.bincount(self.node, minlength=len(taxonomy)))])
        if self.rows is None or self.steps % every == 0:
            self.rows = _unit_rows(map_texts(self.texts))[0].astype("float32")
        self.steps += 1


def synonym_loss_and_grad(
    Y: np.ndarray,
    texts: Sequence[str],
    gold_all: List[List[int]],
    candidates: np.ndarray,
    table: SynonymTable,
    temperature: float,
) -> Tuple[float, np.ndarray]:
    """BioSyn's synonym-marginalised loss and its gradient for mapper outputs `Y`:
    -log of the softmax mass of the gold concepts' strings among the strings of the
    candidate concepts (cosines over `temperature`). A span's own string (same normalised
    text) is not a candidate, so a label learns from its synonyms only; a span left with
    no string of a gold concept adds nothing.

    Y (np.ndarray): (b, d) mapper outputs.
    texts (Sequence[str]): the spans' texts.
    gold_all (List[List[int]]): all gold nodes of each span.
    candidates (np.ndarray): node indices whose strings are the candidates.
    table (SynonymTable): the mapped strings.
    temperature (float): softmax temperature.
    RETURNS (Tuple[float, np.ndarray]): the summed loss and d_loss/d_Y (averaged over spans).
    """
    b = Y.shape[0]
    zero = np.zeros_like(Y, dtype="float32")
    starts, ends = table.indptr[candidates], table.indptr[np.asarray(candidates) + 1]
    sidx = np.concatenate([np.arange(a, e) for a, e in zip(starts, ends)] or [np.zeros(0, dtype="int64")])
    if table.rows is None or not len(sidx):
        return 0.0, zero
    S = table.rows[sidx]
    Yn, norms = _unit_rows(Y)
    logits = (Yn @ S.T) / temperature
    own = table.norm[sidx][None, :] == np.asarray([normalize_text(t) for t in texts], dtype=object)[:, None]
    pos = np.stack([np.isin(table.node[sidx], g) for g in gold_all]) & ~own
    has = pos.any(axis=1)
    if not has.any():
        return 0.0, zero
    logits[own] = -1e9
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    p = e / e.sum(axis=1, keepdims=True)
    p_pos = np.where(pos, p, 0.0)
    mass = p_pos.sum(axis=1)
    loss = float(-np.log(mass[has] + 1e-12).sum())
    d_logits = p - p_pos / (mass[:, None] + 1e-12)
    d_logits[~has] = 0.0
    d_Yn = (d_logits @ S) / temperature / b
    return loss, _back_through_unit_rows(d_Yn, Yn, norms)
