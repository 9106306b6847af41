"""Markdown tables of the docs, generated from the results JSON files.

A markdown file marks each generated table with a region

    <!-- BEGIN bench:taxonomy -->
    (anything: replaced)
    <!-- END bench:taxonomy -->

and `python -m benchmarks tables README.md docs/benchmarks.md` rewrites every region
from benchmarks/results/ (`--check`: rewrite nothing, exit 1 if a region differs from
what the results give). Each table is followed by a line saying where its figures come
from: the command, date, machine and commit of the run, or, for figures carried over
from an earlier run, that run's command and the document that recorded them.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

REGION = re.compile(
    r"(?P<begin><!-- BEGIN bench:(?P<name>[A-Za-z0-9_.-]+) -->)(?P<body>.*?)(?P<end><!-- END bench:(?P=name) -->)",
    re.S,
)
BEGIN = re.compile(r"<!-- BEGIN bench:([A-Za-z0-9_.-]+) -->")
Renderer = Callable[[Path], str]
RENDERERS: Dict[str, Renderer] = {}


class TableError(Exception):
    """A region names no known table, or its results file is missing or incomplete."""


def renderer(name: str) -> Callable[[Renderer], Renderer]:
    def add(func: Renderer) -> Renderer:
        RENDERERS[name] = func
        return func

    return add


# formatting ---------------------------------------------------------------------------
def load(results: Path, filename: str) -> Dict[str, Any]:
    path = results / filename
    if not path.exists():
        raise TableError(f"{path} does not exist: run the benchmark that writes it first.")
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError as e:
        raise TableError(f"{path} is not valid JSON ({e}).") from e
    if not isinstance(data, dict):
        raise TableError(f"{path}: expected a JSON object.")
    return data


def num(value: Any, digits: int = 0) -> str:
    """A number with thousands separators and `digits` decimals; "-" for a missing value."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def ratio(value: Optional[float], digits: int = 2, suffix: str = "x") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: Optional[str] = None) -> str:
    """A markdown table; `align` has one letter per column (l or r; default: the first l, the rest r)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def provenance(meta: Dict[str, Any]) -> str:
    """The line under a table: where its figures come from."""
    if not meta:
        return "_Source: a results file without run facts._"
    prov = meta.get("provenance")
    if prov:
        command = f"`{prov['command']}`" if prov.get("command") else "an earlier run"
        when = f" ({prov['measured']})" if prov.get("measured") else ""
        return f"_Measured in an earlier run{when}: {command}; figures as recorded in {prov['source']}._"
    parts = [f"`{meta['command']}`" if meta.get("command") else "a benchmark run"]
    if meta.get("date"):
        parts.append(str(meta["date"])[:10])
    mach = meta.get("machine") or {}
    if mach:
        parts.append(f"{mach.get('cpus')} CPUs ({mach.get('cpu_model')}), Python {mach.get('python')}")
    git = meta.get("git") or {}
    if git.get("commit"):
        parts.append(f"commit {git['commit'][:7]}" + (" with local changes" if git.get("dirty") else ""))
    load_avg = meta.get("load_avg_at_end")
    if load_avg:
        parts.append(f"load average {load_avg[0]:.1f} at the end")
    return "_" + "; ".join(parts) + "._"


def need(data: Dict[str, Any], *keys: str, where: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            raise TableError(f"{where}: no {'/'.join(keys)} in the results file.")
        data = data[key]
    return data


# tables -------------------------------------------------------------------------------
@renderer("taxonomy")
def taxonomy_table(results: Path) -> str:
    data = load(results, "taxonomy.json")
    rows = [
        [
            name,
            num(r["concepts"]),
            num(r["load_s"], 2),
            num(r["round_trip_s"], 2),
            num(r["identical"]),
            num(r["peak_rss_mb"]),
        ]
        for name, r in need(data, "results", where="taxonomy.json").items()
    ]
    header = ["source", "concepts", "load s", "round trip s", "identical", "peak RSS MB"]
    return table(header, rows) + "\n\n" + provenance(data.get("meta", {}))


def _node2vec(results: Path, filename: str) -> str:
    data = load(results, filename)
    res = need(data, "results", where=filename)
    base = res.get("pecanpy SparseOTF")
    rows = []
    for name, r in res.items():
        wall = num(r["wall_s"], 1)
        name = {"pecanpy SparseOTF": "PecanPy SparseOTF"}.get(name, name)
        if "walks_s" in r and "train_s" in r:
            wall += f" (walks {r['walks_s']:.1f}, training {r['train_s']:.1f})"
        rows.append(
            [
                name,
                wall,
                num(r["embed_s"], 1),
                num(r.get("peak_rss_mb")),
                num(r["parent_mrr"], 4),
                num(r["parent_hits@10"], 3),
                ratio(base["wall_s"] / r["wall_s"]) if base else "-",
            ]
        )
    header = ["contender", "wall s", "embed s", "peak RSS MB", "parent MRR", "hits@10", "PecanPy's wall / this"]
    p = data.get("params", {})
    graph = f"{data.get('graph')}: {num(data.get('nodes'))} nodes, {num(data.get('edges'))} edges"
    if p:
        graph += (
            f"; p={p['p']}, q={p['q']}, {p['num_walks']} walks x {p['walk_length']}, dim {p['dim']}, "
            f"window {p['window']}, {p['epochs']} epoch(s), {p['workers']} workers, seed {p['seed']}"
        )
    return table(header, rows) + "\n\n" + f"_{graph}._ " + provenance(data.get("meta", {}))


@renderer("node2vec")
def node2vec_table(results: Path) -> str:
    return _node2vec(results, "node2vec.json")


@renderer("node2vec-quick")
def node2vec_quick_table(results: Path) -> str:
    return _node2vec(results, "node2vec_quick.json")


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


def _pair(a: float, b: float, digits: int = 3, bold: bool = False) -> str:
    fmt = "**{:.%df}** / **{:.%df}**" % (digits, digits) if bold else "{:.%df} / {:.%df}" % (digits, digits)
    return fmt.format(a, b)


@renderer("headline")
def headline_table(results: Path) -> str:
    """The README's summary: one row per benchmark, spacy-text2node's figure beside its peers'."""
    files = [
        "linker_gem.json",
        "linker_ncbi.json",
        "footprint.json",
        "node2vec.json",
        "vectors.json",
        "taxonomy.json",
        "bulk.json",
        "textcat.json",
        "serve_quiet.json",
    ]
    data = {f: load(results, f) for f in files}
    rows = []
    gem = need(data["linker_gem.json"], "results", where="linker_gem.json")
    names = {"P3": "(no ICD-9 text in training)", "P1": "(80% of ICD-9 codes in training)", "Z": "(zero-shot codes)"}
    for i, (setting, c) in enumerate(gem.items()):
        ours, ml, tf = c["text2node"], c["minilm"], c["tfidf"]
        rows.append(
            [
                f"linker, {'ICD-9-CM -> ICD-10-CM ' if i == 0 else ''}GEM, {setting} {names.get(setting, '')}".strip(),
                "Acc@1 / Acc@5",
                _pair(ours["acc@1"], ours["acc@5"], bold=True),
                f"MiniLM {_pair(ml['acc@1'], ml['acc@5'])}, TF-IDF {_pair(tf['acc@1'], tf['acc@5'])}",
            ]
        )
    ncbi = need(data["linker_ncbi.json"], "results", "NCBI", where="linker_ncbi.json")
    cnn = need(ncbi, "cnn:node2vec+text", where="linker_ncbi.json NCBI")
    rows.append(
        [
            "linker, NCBI Disease dev -> CTD MEDIC",
            "Acc@1",
            f"**{cnn['acc@1']:.3f}** (CNN)",
            f"MiniLM {ncbi['minilm']['acc@1']:.3f}, TF-IDF {ncbi['tfidf']['acc@1']:.3f}",
        ]
    )
    fp = need(data["footprint.json"], "contenders", where="footprint.json")
    main = next(r for r in fp if r["kind"] == "ours" and r["env"] == "main")
    lean = next((r for r in fp if r["kind"] == "ours" and r["env"] == "lean"), None)
    minilm = next(r for r in fp if r["label"].startswith("MiniLM"))
    ours = f"{num(main['phrases_per_s'])} phrases/s ({main['speed_vs_minilm']:.1f}x MiniLM)"
    ours += f"; {num(lean['peak_rss_mb'])} MB peak in the lean runtime" if lean else ""
    rows.append(
        [
            "linker footprint, GEM P1",
            "phrases/s, peak RSS",
            ours,
            f"MiniLM {num(minilm['phrases_per_s'])} phrases/s, {num(minilm['peak_rss_mb'])} MB",
        ]
    )
    n2v = need(data["node2vec.json"], "results", where="node2vec.json")
    us, pp = n2v["spacy-text2node"], n2v["pecanpy SparseOTF"]
    rows.append(
        [
            "node2vec, ICD-10-CM",
            "wall s, peak RSS, parent MRR",
            f"**{us['wall_s']:.1f} s**, **{num(us['peak_rss_mb'])} MB**, **{us['parent_mrr']:.4f}**",
            f"PecanPy {pp['wall_s']:.1f} s, {num(pp['peak_rss_mb'])} MB, {pp['parent_mrr']:.4f}",
        ]
    )
    vec = data["vectors.json"]
    icd = need(vec, "retrieval", "ICD-10-CM", where="vectors.json")
    ctd = need(vec, "retrieval", "CTD MEDIC", where="vectors.json")
    sp_icd = need(vec, "speed", "ICD-10-CM", where="vectors.json")
    sp_ctd = need(vec, "speed", "CTD MEDIC", where="vectors.json")

    def fast(sp: Dict[str, Any], name: str) -> float:
        return sp[name].get("fast_vs_minilm", sp[name]["fast"] / sp["minilm"]["fast"])

    rows.append(
        [
            "word vectors, synonym retrieval (all labels)",
            "MRR, ICD-10-CM / CTD MEDIC",
            f"distilled {_pair(icd['distilled']['mrr'], ctd['distilled-ctd']['mrr'])}, "
            f"{fast(sp_icd, 'distilled'):.0f}x / {fast(sp_ctd, 'distilled-ctd'):.0f}x MiniLM's phrases/s",
            f"full MiniLM {_pair(icd['minilm']['mrr'], ctd['minilm']['mrr'])}",
        ]
    )
    tax = need(data["taxonomy.json"], "results", "ICD-10-CM", where="taxonomy.json")
    rows.append(["taxonomy, ICD-10-CM", "load s, round trip s", f"{tax['load_s']:.2f}, {tax['round_trip_s']:.2f}", ""])
    bulk = need(data["bulk.json"], "results", where="bulk.json")
    overhead = [bulk[f"mentions n{k}"]["docs_per_second"] / bulk[f"linked n{k}"]["docs_per_second"] - 1 for k in (1, 2)]
    rows.append(
        [
            "bulk linking, MTSamples noun chunks",
            "time added by the linker, 1 / 2 processes",
            f"{overhead[0]:+.0%} / {overhead[1]:+.0%}",
            "",
        ]
    )
    tc = need(data["textcat.json"], "results", where="textcat.json")
    order = [d for d in DATASETS if any(r["dataset"] == d for r in tc)]

    def f1(contender: str, bold: bool = False) -> str:
        vals = [next(r["macro_f1"] for r in tc if r["dataset"] == d and r["contender"] == contender) for d in order]
        return " / ".join(f"**{v:.4f}**" if bold else f"{v:.4f}" for v in vals)

    rows.append(
        [
            "text classification",
            "macro-F1 " + " / ".join(DATASETS[d].replace(" v1", "") for d in order),
            "LexicalDense " + f1("lexdense", bold=True),
            "LinearSVC " + f1("svm"),
        ]
    )
    quiet = data["serve_quiet.json"]
    run1 = next(r for r in need(quiet, "runs", where="serve_quiet.json") if r["workers"] == 1)
    rows.append(
        [
            f"serving, `--mentions {quiet['mentions']}`, 1 worker",
            "req/s, p99 ms",
            f"{run1['requests_per_s']:.1f}, {run1['p99_ms']:.1f}",
            "",
        ]
    )
    note = (
        "_Generated from benchmarks/results/ ("
        + ", ".join(files)
        + "); the command, machine and date of each are under its table in docs/benchmarks.md._"
    )
    return table(["benchmark", "measure", "spacy-text2node", "peers"], rows, "llll") + "\n\n" + note


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
    header = [
        "contender",
        "env",
        "disk MB",
        "load s",
        "RSS after load MB",
        "peak RSS MB",
        "phrases/s",
        "speed vs MiniLM",
        "Acc@1",
    ]
    return table(header, rows, "ll" + "r" * 7) + "\n\n" + provenance(data.get("meta", {}))


def _bulk(results: Path, filename: str) -> str:
    data = load(results, filename)
    res = need(data, "results", where=filename)
    base = res.get("mentions n1")
    rows = []
    for name, r in res.items():
        row = [name, num(r["n_written"]), num(r["docs_per_second"], 2), num(r["words_per_second"])]
        if base:
            row.append(ratio(r["docs_per_second"] / base["docs_per_second"]))
        proc = num(r.get("peak_process_rss_mb")) if r.get("peak_process_rss_mb") else "-"
        row += [num(r["n_spans"]), num(r["n_linked_spans"]), f"{proc} / {num(r['peak_tree_rss_mb'])}"]
        rows.append(row)
    header = ["contender", "docs", "docs/s", "words/s"] + (["x mentions n1"] if base else [])
    header += ["spans", "linked", "peak RSS MB (largest process / tree)"]
    return table(header, rows) + "\n\n" + provenance(data.get("meta", {}))


@renderer("bulk")
def bulk_table(results: Path) -> str:
    return _bulk(results, "bulk.json")


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


VECTOR_SOURCES = {
    "glove": "GloVe 6B 50-d + n-grams",
    "fasttext": "FastText (ICD) floret",
    "first-layer": "first-layer MiniLM + word pieces",
    "contextless": "contextless MiniLM + n-grams",
    "contextless-sif": "contextless, SIF weights + 1st PC removed",
    "distilled": "distilled on ICD labels + n-grams",
    "distilled-ctd": "distilled on CTD labels + n-grams",
    "distilled>minilm": "distilled (own labels) queries vs MiniLM labels",
    "minilm": "full MiniLM (peer)",
}


@renderer("vectors-oov")
def vectors_oov_table(results: Path) -> str:
    data = load(results, "vectors.json")
    oov, sources = need(data, "oov", where="vectors.json"), need(data, "sources", where="vectors.json")
    rows = [
        [
            VECTOR_SOURCES.get(n, n),
            num(sources[n]["words"]),
            num(sources[n]["dim"]),
            f"{oov[n]['oov_before']:.2%}",
            f"{oov[n]['oov_after']:.2%}",
        ]
        for n in sources
        if n in oov
    ]
    note = f"_{num(oov.get('notes'))} MTSamples notes, {num(oov.get('alpha_tokens'))} alphabetic tokens._ "
    header = ["source", "words", "dim", "OOV before", "OOV after"]
    return table(header, rows) + "\n\n" + note + provenance(data.get("meta", {}))


def _retrieval(results: Path, taxonomy: str) -> str:
    data = load(results, "vectors.json")
    res = need(data, "retrieval", taxonomy, where="vectors.json")
    ref = res["minilm"]["mrr"]
    rows = [
        [
            VECTOR_SOURCES.get(n, n),
            num(res[n]["acc@1"], 3),
            num(res[n]["acc@10"], 3),
            num(res[n]["mrr"], 3),
            "0" if n == "minilm" else f"{res[n].get('delta_mrr_vs_minilm', res[n]['mrr'] - ref):+.3f}",
        ]
        for n in VECTOR_SOURCES
        if n in res
    ]
    header = [f"{taxonomy} (all {num(res['labels'])} labels, {num(res['queries'])} queries)"]
    header += ["Acc@1", "Acc@10", "MRR", "ΔMRR vs MiniLM"]
    return table(header, rows) + "\n\n" + provenance(data.get("meta", {}))


@renderer("vectors-icd")
def vectors_icd_table(results: Path) -> str:
    return _retrieval(results, "ICD-10-CM")


@renderer("vectors-ctd")
def vectors_ctd_table(results: Path) -> str:
    return _retrieval(results, "CTD MEDIC")


@renderer("vectors-speed")
def vectors_speed_table(results: Path) -> str:
    data = load(results, "vectors.json")
    speed = need(data, "speed", where="vectors.json")
    taxonomies = list(speed)
    names = [n for n in VECTOR_SOURCES if n != "minilm" and any(n in speed[t] for t in taxonomies)]
    rows = []
    for n in names + ["minilm"]:
        row = [VECTOR_SOURCES[n]]
        for t in taxonomies:
            r, mm = speed[t].get(n, {}), speed[t]["minilm"]["fast"]
            for key in ("fast", "doc_vector"):
                v = r.get(key)
                row.append("" if v is None else f"{num(v)} ({r.get(key + '_vs_minilm', v / mm):.0f}×)")
        rows.append(row)
    header = ["source"] + [f"{t} {how}" for t in taxonomies for how in ("`phrase_vectors`", "`doc.vector`")]
    return table(header, rows) + "\n\n" + provenance(data.get("meta", {}))


@renderer("vectors-load")
def vectors_load_table(results: Path) -> str:
    data = load(results, "vectors.json")
    res = need(data, "load", where="vectors.json")
    blank = need(res, "blank", where="vectors.json load")
    rows = []
    for n, r in res.items():
        rows.append(
            [
                r.get("table") or ("blank pipeline" if n == "blank" else VECTOR_SOURCES.get(n, n)),
                num(r["load_s"], 2),
                num(r.get("load_s_over_blank", r["load_s"] - blank["load_s"]), 2),
                num(r["rss_added_mb"]),
                num(r.get("rss_added_mb_over_blank", r["rss_added_mb"] - blank["rss_added_mb"])),
                num(r["disk_mb"], 1),
            ]
        )
    header = ["source", "load s", "load s over blank", "RSS added MB", "MB over blank", "disk MB"]
    return table(header, rows) + "\n\n" + provenance(data.get("meta", {}))


# regions ------------------------------------------------------------------------------
def render(name: str, results: Path) -> str:
    if name not in RENDERERS:
        raise TableError(f"bench:{name} is no known table; the tables are: {', '.join(sorted(RENDERERS))}.")
    return RENDERERS[name](results)


def fill(text: str, results: Path, only: Optional[Sequence[str]] = None) -> Tuple[str, List[str]]:
    """`text` with every region rewritten from the results, and the names of the regions that changed."""
    changed: List[str] = []

    def replace(m: re.Match) -> str:
        name = m.group("name")
        if only and name not in only:
            return m.group(0)
        body = "\n\n" + render(name, results).rstrip("\n") + "\n\n"
        if body != m.group("body"):
            changed.append(name)
        return m.group("begin") + body + m.group("end")

    return REGION.sub(replace, text), changed


def run(files: Sequence[Path], results: Path, check: bool = False, only: Optional[Sequence[str]] = None) -> int:
    """Fill (or with check=True, only compare) the regions of each file; 1 when a check finds a stale region."""
    stale = False
    for given in files:
        text = Path(given).read_text(encoding="utf8")
        rel = os.path.relpath(given)
        path = given if rel.startswith("..") else rel  # as the reader would type it
        regions = [m.group("name") for m in REGION.finditer(text)]
        unclosed = [n for n in BEGIN.findall(text) if n not in regions]
        if unclosed:
            name = unclosed[0]
            print(f"{path}: <!-- BEGIN bench:{name} --> without its <!-- END bench:{name} -->.", file=sys.stderr)
            return 2
        try:
            new, changed = fill(text, Path(results), only)
        except TableError as e:
            print(f"{path}: {e}", file=sys.stderr)
            return 2
        if check:
            for name in changed:
                print(f"{path}: bench:{name} is stale (run `python -m benchmarks tables {path}`).")
            stale = stale or bool(changed)
        elif changed:
            Path(given).write_text(new, encoding="utf8")
            print(f"{path}: rewrote {', '.join(f'bench:{n}' for n in changed)}")
        else:
            print(f"{path}: {len(regions)} region(s), all up to date")
    return 1 if stale else 0
