"""Calibration: fit the linker's reranker (the learned fusion of its lexical, node-space
and word channels) on development spans the mapper did not train on."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

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
    cv: Dict[float, float] = {}
    val: Dict[float, float] = {}
    if l2_words is None and select is not None:
        s_docs, s_offsets, s_texts, s_golds = select
        if not s_texts:
            raise ValueError(
                "text2node_linker.calibrate: the selection spans are empty; give held-out pairs or drop `select`."
            )
        tv, gv = calibration_table(linker, s_docs, s_offsets, s_texts, linker.gold_index([list(g) for g in s_golds])[1])
        l2_words, val = Reranker.select_l2_on(t, bounds, gold, tv, tv.bounds, gv, init=init)
    elif l2_words is None:
        if len(texts) < 20:
            l2_words = 0.01
            logger.warning(
                "text2node_linker.calibrate: %d development spans are too few to choose the word penalty; using %s.",
                len(texts),
                l2_words,
            )
        else:
            l2_words, cv = Reranker.select_l2(t, bounds, gold, init=init, seed=int(cfg.get("seed", 0)))
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
    info.update({f"cv_acc@1_l2={k:g}": v for k, v in cv.items()})
    info.update({f"select_acc@1_l2={k:g}": v for k, v in val.items()})
    info.update({f"w_{k}": float(w) for k, w in zip(Reranker.dense_names(), rr.dense)})
    cfg["calibrated"] = True
    logger.info("text2node_linker.calibrate: %s", info)
    return info


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
