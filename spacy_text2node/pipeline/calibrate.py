"""Calibration: fit the linker's reranker (the learned fusion of its lexical, node-space
and word channels) on development spans the mapper did not train on."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from spacy.tokens import Doc

from ..errors import NotCalibratableError
from ..index import NodeIndex, PairFeatures, Reranker, acc_at_1, normalize_text

if TYPE_CHECKING:
    from .linker import Text2NodeLinker

logger = logging.getLogger("spacy_text2node")

Spans = Tuple[Sequence[Doc], List[Tuple[int, int, int]], Sequence[str], Sequence[Sequence[str]]]


def calibrate(
    linker: "Text2NodeLinker",
    docs: Sequence[Doc],
    offsets: List[Tuple[int, int, int]],
    texts: Sequence[str],
    golds: Sequence[Sequence[str]],
    *,
    l2_words: Optional[float] = None,
    select: Optional[Spans] = None,
    siamese: Optional[bool] = None,
) -> Dict[str, float]:
    """Fit the linker's reranker on development spans (see `Text2NodeLinker.calibrate`).

    Raises NotCalibratableError (a ValueError) when every text is a string of a concept
    the linker can return: the linker then keeps its fixed fusion.
    """
    index = _index(linker)
    if not texts:
        raise ValueError("text2node_linker.calibrate: no development spans.")
    gold_idx = linker.gold_index([list(g) for g in golds])[1]  # raises on unknown concepts
    exact = index.lexical.exact
    allowed = linker.allowed_nodes()

    def candidate_string(text: str) -> bool:  # a string of a concept that can be linked to
        nodes = exact.get(normalize_text(text), ())
        return any(allowed is None or allowed[n] for n in nodes)

    keep = [i for i, t in enumerate(texts) if not candidate_string(t)]
    if not keep:
        raise NotCalibratableError(
            f"text2node_linker.calibrate: all {len(texts)} development texts are strings of concepts the linker "
            "links to (labels or synonyms); calibration needs text worded differently (e.g. mentions from documents, "
            "codes of another terminology, or parent labels paired with their default child: "
            "spacy_text2node.datasets.gem.default_child_pairs). The linker keeps its fixed fusion."
        )
    if siamese is False:
        linker.drop_strings()
    else:
        linker.map_strings()  # the siamese feature's strings, as this mapper maps them
    n_given = len(texts)
    offsets = [offsets[i] for i in keep]
    texts = [texts[i] for i in keep]
    gold_idx = [gold_idx[i] for i in keep]
    cfg = linker.cfg
    t, gold = calibration_table(linker, docs, offsets, texts, gold_idx)
    ni, bounds = t.ni, t.bounds

    def acc1(score: np.ndarray) -> float:
        return acc_at_1(score, ni, bounds, gold)

    init = Reranker.initial_dense(float(cfg["fusion_weight"]))
    auto = siamese is None and index.strings is not None
    sel = None
    if select is not None and (l2_words is None or auto):
        s_docs, s_offsets, s_texts, s_golds = select
        if not s_texts:
            raise ValueError(
                "text2node_linker.calibrate: the selection spans are empty; give held-out pairs or drop `select`."
            )
        sel = calibration_table(linker, s_docs, s_offsets, s_texts, linker.gold_index([list(g) for g in s_golds])[1])
    seed = int(cfg.get("seed", 0))
    chosen = _penalty(t, gold, sel, l2_words, init, seed, measure=auto)
    info_siamese: Dict[str, float] = {}
    if auto:  # drop the feature where it links fewer held-out spans right
        t0, sel0 = _without_siamese(t), None if sel is None else (_without_siamese(sel[0]), sel[1])
        without = _penalty(t0, gold, sel0, l2_words, init, seed, measure=True)
        scores = {"siamese_acc@1_with": chosen.score, "siamese_acc@1_without": without.score}
        info_siamese = {k: v for k, v in scores.items() if v is not None}
        if chosen.score is not None and without.score is not None and chosen.score < without.score:
            linker.drop_strings()
            t, chosen = t0, without
    info_siamese["siamese"] = float(index.strings is not None)
    l2_words = chosen.l2
    rr = Reranker.fit(t, bounds, gold, l2_words=l2_words, init=init)
    index.reranker = rr
    linker.results_changed()
    n_with = sum(bool(gold[bounds[i] : bounds[i + 1]].any()) for i in range(len(texts)))
    info = {
        "given": n_given,
        "queries": len(texts),
        "with_right_candidate": n_with,
        "acc@1_before": acc1(t.fused),
        "acc@1_after": acc1(rr.score(t)),
        "l2_words": float(l2_words),
    }
    info.update(info_siamese)
    info.update({f"cv_acc@1_l2={k:g}": v for k, v in chosen.cv.items()})
    info.update({f"select_acc@1_l2={k:g}": v for k, v in chosen.val.items()})
    info.update({f"w_{k}": float(w) for k, w in zip(Reranker.dense_names(), rr.dense)})
    cfg["calibrated"] = True
    logger.info("text2node_linker.calibrate: %s", info)
    return info


class _Penalty(NamedTuple):
    l2: float  # the word penalty
    cv: Dict[float, float]  # cross-validated acc@1 per penalty tried
    val: Dict[float, float]  # acc@1 on the selection spans per penalty tried
    score: Optional[float]  # the held-out acc@1 at `l2` (None: not measured)


def _penalty(
    t: PairFeatures,
    gold: np.ndarray,
    sel: Optional[Tuple[PairFeatures, np.ndarray]],
    l2_words: Optional[float],
    init: np.ndarray,
    seed: int,
    *,
    measure: bool,
) -> _Penalty:
    """The word penalty (given, chosen on the selection spans, or by 2-fold cross-validation)
    and its held-out acc@1; with a given penalty that is measured only if `measure`."""
    bounds = t.bounds
    n = len(bounds) - 1
    grid = Reranker.L2_GRID if l2_words is None else (l2_words,)
    if sel is not None:
        l2, val = Reranker.select_l2_on(t, bounds, gold, sel[0], sel[0].bounds, sel[1], init=init, grid=grid)
        return _Penalty(l2, {}, val if l2_words is None else {}, val[l2])
    if l2_words is not None and not (measure and n >= 4):
        return _Penalty(float(l2_words), {}, {}, None)
    if l2_words is None and n < 20:
        logger.warning(
            "text2node_linker.calibrate: %d development spans are too few to choose the word penalty; using 0.01.", n
        )
        return _Penalty(0.01, {}, {}, None)
    l2, cv = Reranker.select_l2(t, bounds, gold, init=init, seed=seed, grid=grid)
    return _Penalty(l2, cv if l2_words is None else {}, {}, cv[l2])


def _without_siamese(t: PairFeatures) -> PairFeatures:
    return replace(t, siamese=np.zeros_like(t.siamese))


def calibration_table(
    linker: "Text2NodeLinker",
    docs: Sequence[Doc],
    offsets: List[Tuple[int, int, int]],
    texts: Sequence[str],
    gold_idx: Sequence[Sequence[int]],
) -> Tuple[PairFeatures, np.ndarray]:
    """Candidates and features of spans as an uncalibrated linker retrieves them (their
    own strings left out), and a bool per pair: is it a right candidate."""
    cfg = linker.cfg
    index = _index(linker)
    Y = linker.map_spans(list(docs), offsets)
    saved, index.reranker = index.reranker, None  # a failed fit keeps the old reranker
    try:
        t = index.pair_table(
            Y,
            texts,
            ann_candidates=cfg["ann_candidates"],
            lexical_candidates=cfg["lexical_candidates"],
            fusion_weight=cfg["fusion_weight"],
            search_k=cfg["search_k"],
            ef=int(cfg.get("ef_search", 0) or 0),
            allowed=linker.allowed_nodes(),
            leave_out_exact=True,
        )
    finally:
        index.reranker = saved
    ni, bounds = t.ni, t.bounds
    gold = np.zeros(len(ni), dtype=bool)
    for i, g in enumerate(gold_idx):
        a, e = bounds[i], bounds[i + 1]
        gold[a:e] = np.isin(ni[a:e], g)
    return t, gold


def _index(linker: "Text2NodeLinker") -> NodeIndex:
    linker.require_ready()
    assert linker.index is not None
    return linker.index
