"""Ranking metrics for linking: acc@k, MRR and tree distance in a Taxonomy."""

from __future__ import annotations

from typing import Collection, Dict, Iterable, Optional, Sequence

import numpy as np

from .taxonomy import Taxonomy


def gold_rank(ranked: Sequence[str], gold: Collection[str]) -> Optional[int]:
    """1-based rank of the first gold concept in `ranked`, or None if absent."""
    for r, cid in enumerate(ranked, 1):
        if cid in gold:
            return r
    return None


def tree_distance(pred: str, gold: Collection[str], taxonomy: Taxonomy) -> int:
    """Edges from `pred` to the nearest gold concept through their nearest common ancestor."""
    return min(taxonomy.distance(pred, g) for g in gold)


def ranking_scores(
    ranked: Sequence[Sequence[str]],
    gold: Sequence[Collection[str]],
    *,
    ks: Iterable[int] = (1, 5, 10),
    taxonomy: Optional[Taxonomy] = None,
) -> Dict[str, float]:
    """Acc@k, MRR and (with a taxonomy) mean tree distance of the top prediction.

    ranked (Sequence[Sequence[str]]): per query, candidate ids best first (may be
        empty: a NIL prediction counts as wrong and gets no tree distance).
    gold (Sequence[Collection[str]]): per query, the set of right ids.
    ks (Iterable[int]): the k of each acc@k.
    taxonomy (Taxonomy): for tree distances; None skips them.
    RETURNS (Dict[str, float]): "acc@1", "acc@5"..., "mrr", "n", and with a
        taxonomy "tree_distance" (mean over queries with a prediction) and
        "nil_rate".
    """
    if len(ranked) != len(gold):
        raise ValueError(f"ranked has {len(ranked)} queries but gold has {len(gold)}.")
    ks = sorted(set(ks))
    n = len(gold)
    ranks = [gold_rank(r, g) for r, g in zip(ranked, gold)]
    out: Dict[str, float] = {"n": float(n)}
    for k in ks:
        out[f"acc@{k}"] = float(np.mean([r is not None and r <= k for r in ranks])) if n else 0.0
    out["mrr"] = float(np.mean([1.0 / r if r else 0.0 for r in ranks])) if n else 0.0
    if taxonomy is not None:
        dists = [tree_distance(r[0], g, taxonomy) for r, g in zip(ranked, gold) if len(r)]
        out["tree_distance"] = float(np.mean(dists)) if dists else float("nan")
        out["nil_rate"] = float(np.mean([len(r) == 0 for r in ranked])) if n else 0.0
    return out
