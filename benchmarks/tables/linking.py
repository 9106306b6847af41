"""Tables of the linker benchmarks: accuracy and speed, footprint, bulk linking and serving."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Dict, List, Sequence

from benchmarks.tables._format import load, need, num, provenance, ratio, renderer, table

PEER_NAMES = {"tfidf": "TF-IDF char 3-gram", "minilm": "MiniLM"}


def _linker_rows(data: Dict[str, Any], filename: str) -> List[List[str]]:
    rows = []
    for setting, contenders in need(data, "results", where=filename).items():
        minilm = contenders.get("minilm", {})
        for name, r in contenders.items():
            if "error" in r:
                rows.append([setting, name] + ["-"] * 7 + [r["error"]])
                continue
            if "speed_ratio_vs_minilm" in r:  # as recorded (null: no ratio from the same run)
                speed = r["speed_ratio_vs_minilm"]
            elif minilm.get("phrases_per_s") and r.get("phrases_per_s"):
                speed = r["phrases_per_s"] / minilm["phrases_per_s"]
            else:
                speed = None
            label = r.get("label") or PEER_NAMES.get(name) or f"text2node {name}"
            rows.append(
                [
                    setting,
                    label,
                    num(r.get("n")),
                    num(r.get("acc@1"), 3),
                    num(r.get("acc@5"), 3),
                    num(r.get("mrr"), 3),
                    num(r.get("tree_distance"), 2),
                    num(r.get("phrases_per_s")),
                    ratio(speed, 1),
                    num(r.get("reload_identical")),
                ]
            )
    return rows


def _linker(results: Path, filename: str) -> str:
    data = load(results, filename)
    header = [
        "setting",
        "system",
        "n",
        "Acc@1",
        "Acc@5",
        "MRR",
        "tree distance",
        "phrases/s",
        "speed vs MiniLM",
        "reload identical",
    ]
    rows = _linker_rows(data, filename)
    if all(row[-1] == "-" for row in rows):  # no reload check in these results
        header, rows = header[:-1], [row[:-1] for row in rows]
    align = "ll" + "r" * (len(header) - 2)
    if len(need(data, "results", where=filename)) == 1:  # one setting: it goes in the caption
        header, rows, align = header[1:], [row[1:] for row in rows], align[1:]
    setting = ", ".join(need(data, "results", where=filename))
    return table(header, rows, align) + "\n\n" + f"_Setting: {setting}._ " + provenance(data.get("meta", {}))


@renderer("linker")
def linker_table(results: Path) -> str:
    return _linker(results, "linker.json")


@renderer("linker-gem")
def linker_gem_table(results: Path) -> str:
    return _linker(results, "linker_gem.json")


@renderer("linker-ncbi")
def linker_ncbi_table(results: Path) -> str:
    return _linker(results, "linker_ncbi.json")


@renderer("linker-hpo")
def linker_hpo_table(results: Path) -> str:
    return _linker(results, "linker_hpo.json")


HEADLINE_SETTINGS = {
    "P3": "ICD-9-CM -> ICD-10-CM, P3 (no ICD-9 text in training)",
    "P1": "ICD-9-CM -> ICD-10-CM, P1",
    "Z": "ICD-9-CM -> ICD-10-CM, Z (unseen codes)",
    "NCBI": "NCBI Disease dev -> CTD MEDIC",
}


@renderer("linker-headline")
def linker_headline_table(results: Path) -> str:
    """Linking accuracy and speed of text2node beside the TF-IDF and MiniLM peers, one row per benchmark."""
    rows, sources = [], []
    for filename, ours in (("linker_gem.json", "text2node"), ("linker_ncbi.json", "cnn:node2vec+text")):
        data = load(results, filename)
        sources.append(provenance(data.get("meta", {})))
        for setting, contenders in need(data, "results", where=filename).items():
            r, tf, ml = (need(contenders, key, where=f"{filename} {setting}") for key in (ours, "tfidf", "minilm"))
            speed = r.get("speed_ratio_vs_minilm") or r["phrases_per_s"] / ml["phrases_per_s"]
            rows.append(
                [
                    HEADLINE_SETTINGS.get(setting, setting),
                    num(r["n"]),
                    f"**{r['acc@1']:.3f}**",
                    f"{ml['acc@1']:.3f}",
                    f"{tf['acc@1']:.3f}",
                    f"**{r['acc@5']:.3f}**",
                    f"{ml['acc@5']:.3f}",
                    f"{tf['acc@5']:.3f}",
                    num(r["phrases_per_s"]),
                    num(ml["phrases_per_s"]),
                    ratio(speed, 1),
                ]
            )
    header = [
        "benchmark",
        "queries",
        "Acc@1 text2node",
        "MiniLM",
        "TF-IDF",
        "Acc@5 text2node",
        "MiniLM",
        "TF-IDF",
        "phrases/s text2node",
        "MiniLM",
        "speed vs MiniLM",
    ]
    return table(header, rows) + "\n\n" + "\n".join(dict.fromkeys(sources))


# the footprint table's first columns, here and in the table `python -m benchmarks footprint` prints
FOOTPRINT_COLUMNS = [
    "contender",
    "env",
    "disk MB",
    "load s",
    "RSS after load MB",
    "peak RSS MB",
    "phrases/s",
    "speed vs MiniLM",
]


@renderer("footprint")
def footprint_table(results: Path) -> str:
    data = load(results, "footprint.json")
    rows = []
    for r in need(data, "contenders", where="footprint.json"):
        if "error" in r:
            rows.append([r["label"], r["env"]] + ["-"] * 7)
            continue
        rows.append(
            [
                r["label"],
                r["env"],
                num(r.get("disk_mb")),
                num(r.get("load_s"), 2),
                num(r.get("rss_after_load_mb")),
                num(r.get("peak_rss_mb")),
                num(r.get("phrases_per_s")),
                ratio(r.get("speed_vs_minilm"), 1),
                num(r.get("acc@1"), 3),
            ]
        )
    header = FOOTPRINT_COLUMNS + ["Acc@1"]
    return table(header, rows, "ll" + "r" * 7) + "\n\n" + provenance(data.get("meta", {}))


def _bulk(results: Path, filename: str) -> str:
    data = load(results, filename)
    res = need(data, "results", where=filename)
    base = res.get("mentions n1")
    pss = any("peak_tree_pss_mb" in r for r in res.values())
    repeats = any("docs_per_second_runs" in r for r in res.values())
    rows = []
    for name, r in res.items():
        row = [name, num(r["n_written"]), num(r["docs_per_second"], 2), num(r["words_per_second"])]
        if repeats:  # docs/s is the median of these runs
            row.insert(3, " / ".join(num(v, 2) for v in r.get("docs_per_second_runs", [])) or "-")
        if base:
            row.append(ratio(r["docs_per_second"] / base["docs_per_second"]))
        proc = num(r.get("peak_process_rss_mb")) if r.get("peak_process_rss_mb") else "-"
        row += [num(r["n_spans"]), num(r["n_linked_spans"]), f"{proc} / {num(r['peak_tree_rss_mb'])}"]
        if pss:
            row.append(num(r["peak_tree_pss_mb"]) if "peak_tree_pss_mb" in r else "-")
        rows.append(row)
    header = ["contender", "docs", "docs/s", *(["docs/s of each run"] if repeats else []), "words/s"]
    header += ["x mentions n1"] if base else []
    header += ["spans", "linked", "peak RSS MB (largest process / tree)"] + (["peak PSS MB (tree)"] if pss else [])
    return table(header, rows) + "\n\n" + provenance(data.get("meta", {}))


@renderer("bulk")
def bulk_table(results: Path) -> str:
    return _bulk(results, "bulk.json")


@renderer("bulk-clinical")
def bulk_clinical_table(results: Path) -> str:
    return _bulk(results, "bulk_clinical.json")


@renderer("bulk-spark")
def bulk_spark_table(results: Path) -> str:
    return _bulk(results, "bulk_spark.json")


@renderer("bulk-spark-rss")
def bulk_spark_rss_table(results: Path) -> str:
    return _bulk(results, "bulk_spark_rss.json")


def _serve(results: Path, filenames: Sequence[str]) -> str:
    rows, sources = [], []
    for filename in filenames:
        if filename != filenames[0] and not (results / filename).exists():
            continue  # the extra runs are optional
        data = load(results, filename)
        sources.append(provenance(data.get("meta", {})))
        for r in need(data, "runs", where=filename):
            rows.append(
                [
                    data["mentions"],
                    num(r["workers"]),
                    num(r["requests"]),
                    num(r["requests_per_s"], 1),
                    num(r["p50_ms"], 1),
                    num(r["p90_ms"], 1),
                    num(r["p99_ms"], 1),
                    num(r["max_ms"], 1),
                    num(r["errors"]),
                    num(r["spans"]),
                    f"{r['loadavg_before']:.1f} / {r['loadavg_after']:.1f}",
                ]
            )
    header = [
        "`--mentions`",
        "workers",
        "requests",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "spans returned",
        "load average before / after",
    ]
    return table(header, rows) + "\n\n" + "\n".join(sources)


@renderer("serve")
def serve_table(results: Path) -> str:
    return _serve(results, ["serve.json", "serve_noun_chunks.json"])


@renderer("serve-quiet")
def serve_quiet_table(results: Path) -> str:
    return _serve(results, ["serve_quiet.json"])


@renderer("serve-rerun")
def serve_rerun_table(results: Path) -> str:
    return _serve(results, ["serve_rerun.json"])


DOCUMENT_COLUMNS = (
    ("mention P", "text2node_mention_p"),
    ("mention R", "text2node_mention_r"),
    ("mention F1", "text2node_mention_f"),
    ("link P", "text2node_link_p"),
    ("link R", "text2node_link_r"),
    ("link F1", "text2node_link_f"),
    ("Acc@1 on found", "text2node_link_acc_found"),
    ("doc concept F1", "text2node_doc_concept_f"),
)


def _documents(results: Path, name: str) -> str:
    """The document pipeline's mention finders side by side (bench_documents.py)."""
    data = load(results, name)
    rows = []
    for finder, r in need(data, "results", where=name).items():
        rows.append([finder] + [num(r.get(key), 3) for _, key in DOCUMENT_COLUMNS])
    header = ["mention finder (+ the MEDIC linker)"] + [h for h, _ in DOCUMENT_COLUMNS]
    return table(header, rows, "l" + "r" * len(DOCUMENT_COLUMNS)) + "\n\n" + provenance(data.get("meta", {}))


def _documents_speed(results: Path, name: str) -> str:
    """Speed and memory of the document pipeline on MTSamples notes (bench_documents.py)."""
    data = load(results, name)
    summary = need(data, "summary", where=name)
    runs = need(summary, "speed", where=f"{name} summary")
    rows = []
    for name, r in runs.items():
        rows.append(
            [
                name,
                num(r.get("n_written")),
                num(r.get("docs_per_second"), 2),
                num(r.get("n_spans")),
                num(r.get("n_negated")),
                num(r.get("peak_tree_rss_mb")),
            ]
        )
    # the tree's peak (parent and workers, polled): a child's own ru_maxrss starts from its
    # parent's peak on Linux, so the largest single process is not shown
    header = ["run", "notes", "docs/s", "mentions", "negated", "peak RSS MB (parent + workers)"]
    out = table(header, rows, "l" + "r" * 5)
    ratios = [
        f"{n} process(es): with / without the linker x{summary[f'linker_time_ratio_n{n}']:.2f} time per note"
        for n in ("1", "2")
        if summary.get(f"linker_time_ratio_n{n}") is not None
    ]
    if ratios:
        out += "\n\n" + "; ".join(ratios) + "."
    return out + "\n\n" + provenance(data.get("meta", {}))


# the document pipeline's tables: with the static-vector NER, and with the transformer NER;
# accuracy from the run with the configs as they are (`--skip speed,package`), speed and
# memory from the full run before the NIL cut (`min_probability`), which does not change them
DOCUMENT_RESULTS = (
    ("documents", "documents_accuracy.json", "documents.json"),
    ("documents-trf", "documents_trf_accuracy.json", "documents_trf.json"),
)
for _table, _accuracy, _speed in DOCUMENT_RESULTS:
    renderer(_table)(functools.partial(_documents, name=_accuracy))
    renderer(f"{_table}-speed")(functools.partial(_documents_speed, name=_speed))
