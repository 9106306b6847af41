"""Tables of the text classification benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from benchmarks.tables._format import load, need, num, provenance, ratio, renderer, table

DATASETS = {"davidson": "Davidson", "bn": "Bengali v1", "bbc": "BBC News"}
TEXTCAT = {
    "svm": "TF-IDF + LinearSVC",
    "bow": "spaCy bow",
    "ensemble": "spaCy ensemble",
    "mlr": "StaticVectorsMLR",
    "lexdense": "LexicalDense",
}


@renderer("textcat")
def textcat_table(results: Path) -> str:
    data = load(results, "textcat.json")
    res = need(data, "results", where="textcat.json")
    rows = []
    for r in res:
        svm = next((s for s in res if s["dataset"] == r["dataset"] and s["contender"] == "svm"), None)
        bow = next((s for s in res if s["dataset"] == r["dataset"] and s["contender"] == "bow"), None)
        rows.append(
            [
                DATASETS.get(r["dataset"], r["dataset"]),
                num(r["n_test"]),
                r.get("label") or TEXTCAT.get(r["contender"], r["contender"]),
                num(r["accuracy"], 4),
                num(r["macro_f1"], 4),
                f"{r['macro_f1'] / svm['macro_f1']:.3f}" if svm else "-",
                num(r["train_s"], 1),
                num(r["predict_docs_per_s"]),
                f"{r['predict_docs_per_s'] / bow['predict_docs_per_s']:.2f}" if bow else "-",
                num(r["peak_rss_mb"]),
            ]
        )
    header = [
        "dataset",
        "test docs",
        "contender",
        "accuracy",
        "macro-F1",
        "F1 / SVM",
        "train s",
        "docs/s",
        "docs/s / bow",
        "peak RSS MB",
    ]
    return table(header, rows, "lrl" + "r" * 7) + "\n\n" + provenance(data.get("meta", {}))


@renderer("textcat-validation")
def textcat_validation_table(results: Path) -> str:
    data = load(results, "textcat_validation.json")
    res = need(data, "results", where="textcat_validation.json")
    taus: List[str] = []
    for r in res:
        for tau in r.get("macro_f1_by_prior_correction", {}):
            if tau not in taus:
                taus.append(tau)
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in res):
        svm: Dict[str, Any] = next((r for r in res if r["dataset"] == dataset and r["contender"] == "svm"), {})
        lex: Dict[str, Any] = next((r for r in res if r["dataset"] == dataset and r["contender"] == "lexdense"), {})
        by_tau = lex.get("macro_f1_by_prior_correction", {})
        n = svm.get("n_test") or lex.get("n_test")
        rows.append(
            [f"{DATASETS.get(dataset, dataset)} ({num(n)} docs)", num(svm.get("macro_f1"), 4)]
            + [num(by_tau.get(t), 4) for t in taus]
        )
    header = ["validation macro-F1", "SVM"]
    header += [("LexicalDense, prior_correction " if i == 0 else "") + f"{float(t):g}" for i, t in enumerate(taus)]
    return table(header, rows) + "\n\n" + provenance(data.get("meta", {}))


@renderer("textcat-speed")
def textcat_speed_table(results: Path) -> str:
    data = load(results, "textcat_speed.json")
    rows = []
    for r in need(data, "results", where="textcat_speed.json"):
        rows.append(
            [
                DATASETS.get(r["dataset"], r["dataset"]),
                num(r["bow_model_us_per_doc"], 1),
                num(r["lexdense_model_us_per_doc"], 1),
                num(r["bow_pipe_us_per_doc"], 1),
                num(r["lexdense_pipe_us_per_doc"], 1),
                ratio(r["bow_pipe_us_per_doc"] / r["lexdense_pipe_us_per_doc"]),
                num(r["tokenizer_us_per_doc"], 1),
            ]
        )
    header = [
        "µs per doc",
        "bow model",
        "LexicalDense model",
        "bow `nlp.pipe`",
        "LexicalDense `nlp.pipe`",
        "LexicalDense docs/s / bow's",
        "tokenizer alone",
    ]
    return table(header, rows) + "\n\n" + provenance(data.get("meta", {}))
