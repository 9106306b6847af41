"""The linker's scorer.

Over the gold spans of the reference docs (read from the predicted spans'
`_.text2node_candidates`): acc@1, acc@5, MRR, mean tree distance and NIL rate.

End to end, over the spans the pipeline found (`document_scores`): mention detection
P/R/F (exact character offsets, any label), linking P/R/F over (span, concept) pairs
(a composite mention has one gold pair per concept, and one predicted pair per concept
in `_.text2node_concepts`), linking accuracy on the correctly found spans, and P/R/F
over the distinct concepts of each document (the BioCreative / TaggerOne measure)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

import numpy as np
from spacy.training import Example
from spacy.util import registry

from ..scoring import ranking_scores
from ..taxonomy import Taxonomy
from .spans import CANDIDATES_EXT, gold_ids, linked_spans, predicted_concepts

SCORE_KEYS = ("acc@1", "acc@5", "mrr", "tree_distance", "nil_rate")
DOCUMENT_KEYS = (
    "mention_p",
    "mention_r",
    "mention_f",
    "link_p",
    "link_r",
    "link_f",
    "link_acc_found",
    "doc_concept_p",
    "doc_concept_r",
    "doc_concept_f",
)


def _prf(tp: int, n_pred: int, n_gold: int) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    p = tp / n_pred if n_pred else None
    r = tp / n_gold if n_gold else None
    if p is None or r is None:
        return p, r, None
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def document_scores(examples: Iterable[Example]) -> Dict[str, Any]:
    """End-to-end scores of a document pipeline (mention finder + linker).

    Gold mentions are the reference `doc.ents` (all of them, also those whose ids are not in
    the taxonomy); gold concepts their `_.text2node_gold` (fallback kb_id_). Predicted
    mentions are the spans the linker linked (`linked_spans`), NIL ones included.

    examples (Iterable[Example]): the examples, predicted docs annotated by the pipeline.
    RETURNS (Dict[str, Any]): `text2node_` + each of DOCUMENT_KEYS (None where undefined),
        and the counts `text2node_gold_mentions`, `text2node_pred_mentions`.
    """
    tp_m = n_pred_m = n_gold_m = 0
    tp_l = n_pred_l = n_gold_l = 0
    found = found_right = 0
    tp_d = n_pred_d = n_gold_d = 0
    for eg in examples:
        pred = {(s.start_char, s.end_char): predicted_concepts(s) for s in linked_spans(eg.predicted)}
        gold = {(e.start_char, e.end_char): gold_ids(e) for e in eg.reference.ents}
        n_pred_m += len(pred)
        n_gold_m += len(gold)
        doc_pred: Set[str] = set()
        doc_gold: Set[str] = set()
        for concepts in pred.values():
            n_pred_l += len(concepts)
            doc_pred.update(concepts)
        for key, ids in gold.items():
            n_gold_l += len(ids)
            doc_gold.update(ids)
            if key not in pred:
                continue
            tp_m += 1
            concepts = pred[key]
            tp_l += len(set(concepts) & set(ids))
            if ids:
                found += 1
                found_right += bool(concepts) and concepts[0] in ids
        n_pred_d += len(doc_pred)
        n_gold_d += len(doc_gold)
        tp_d += len(doc_pred & doc_gold)
    out: Dict[str, Any] = {}
    for prefix, (tp, n_pred, n_gold) in (
        ("mention", (tp_m, n_pred_m, n_gold_m)),
        ("link", (tp_l, n_pred_l, n_gold_l)),
        ("doc_concept", (tp_d, n_pred_d, n_gold_d)),
    ):
        p, r, f = _prf(tp, n_pred, n_gold)
        out[f"text2node_{prefix}_p"], out[f"text2node_{prefix}_r"], out[f"text2node_{prefix}_f"] = p, r, f
    out["text2node_link_acc_found"] = found_right / found if found else None
    out["text2node_gold_mentions"] = n_gold_m
    out["text2node_pred_mentions"] = n_pred_m
    return out


def score_linking(examples: Iterable[Example], *, taxonomy: Optional[Taxonomy] = None, **kwargs: Any) -> Dict[str, Any]:
    """Ranking scores of the linker over the gold spans of the reference docs.

    A gold span (reference `doc.ents` with a kb_id or `_.text2node_gold`) is matched to the
    linked span of the predicted doc (an entity or a span of a group with
    `_.text2node_candidates`) at the same character offsets; a span with no prediction
    counts as wrong. A prediction is right when it is in the span's `_.text2node_gold`
    (fallback kb_id_).

    examples (Iterable[Example]): the examples, predicted docs annotated by the linker.
    taxonomy (Optional[Taxonomy]): for the mean tree distance.
    RETURNS (Dict[str, Any]): text2node_acc@1, acc@5, mrr, tree_distance, nil_rate, and the
        end-to-end `document_scores`.
    """
    examples = list(examples)
    if not examples:
        raise ValueError(
            "text2node_linker: no examples to score. `spacy evaluate` reads only .spacy files (DocBin): "
            "for JSONL phrase pairs or PubTator files run `text2node evaluate MODEL DATA`."
        )
    ranked: List[List[str]] = []
    gold: List[List[str]] = []
    for eg in examples:
        preds = {(s.start_char, s.end_char): s._.get(CANDIDATES_EXT) for s in linked_spans(eg.predicted)}
        for ent in eg.reference.ents:
            g = gold_ids(ent)
            if not g:
                continue
            cands = preds.get((ent.start_char, ent.end_char)) or []
            ranked.append([c[0] for c in cands])
            gold.append(g)
    if not gold:
        return {**{f"text2node_{k}": None for k in SCORE_KEYS}, **document_scores(examples)}
    scores: Dict[str, Optional[float]] = dict(ranking_scores(ranked, gold, ks=(1, 5), taxonomy=None))
    scores["tree_distance"] = None
    if taxonomy is not None:
        known = [[x for x in g if x in taxonomy] for g in gold]
        pairs = [(r, g) for r, g in zip(ranked, known) if g]
        tax_scores = (
            ranking_scores([r for r, _ in pairs], [g for _, g in pairs], ks=(1,), taxonomy=taxonomy) if pairs else {}
        )
        scores["tree_distance"] = tax_scores.get("tree_distance")
    scores["nil_rate"] = float(np.mean([len(r) == 0 for r in ranked]))
    out: Dict[str, Any] = {}
    for key in SCORE_KEYS:
        v = scores.get(key)
        out[f"text2node_{key}"] = None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)
    out.update(document_scores(examples))
    return out


@registry.scorers("spacy-text2node.linker_scorer.v1")
def make_linker_scorer() -> Callable:
    """The linker scorer: acc@1, acc@5, MRR, mean tree distance, NIL rate and the end-to-end scores."""
    return score_linking
