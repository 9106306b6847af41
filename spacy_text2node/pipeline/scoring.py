"""The linker's scorer: acc@1, acc@5, MRR, mean tree distance and NIL rate over the gold
spans of the reference docs, read from the predicted spans' `_.text2node_candidates`."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional

import numpy as np
from spacy.training import Example
from spacy.util import registry

from ..scoring import ranking_scores
from ..taxonomy import Taxonomy
from .spans import CANDIDATES_EXT, gold_ids, linked_spans

SCORE_KEYS = ("acc@1", "acc@5", "mrr", "tree_distance", "nil_rate")


def score_linking(examples: Iterable[Example], *, taxonomy: Optional[Taxonomy] = None, **kwargs: Any) -> Dict[str, Any]:
    """Ranking scores of the linker over the gold spans of the reference docs.

    A gold span (reference `doc.ents` with a kb_id or `_.text2node_gold`) is matched to the
    linked span of the predicted doc (an entity or a span of a group with
    `_.text2node_candidates`) at the same character offsets; a span with no prediction
    counts as wrong. A prediction is right when it is in the span's `_.text2node_gold`
    (fallback kb_id_).

    examples (Iterable[Example]): the examples, predicted docs annotated by the linker.
    taxonomy (Optional[Taxonomy]): for the mean tree distance.
    RETURNS (Dict[str, Any]): text2node_acc@1, acc@5, mrr, tree_distance, nil_rate.
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
        return {f"text2node_{k}": None for k in SCORE_KEYS}
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
    return out


@registry.scorers("spacy-text2node.linker_scorer.v1")
def make_linker_scorer() -> Callable:
    """The linker scorer: acc@1, acc@5, MRR, mean tree distance and NIL rate."""
    return score_linking
