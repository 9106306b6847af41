"""The README's summary table: one row per benchmark, spacy-text2node beside its peers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from benchmarks.tables._format import load, need, num, renderer, table
from benchmarks.tables.textcat import DATASETS


def _pair(a: float, b: float, digits: int = 3, bold: bool = False) -> str:
    fmt = "**{:.%df}** / **{:.%df}**" % (digits, digits) if bold else "{:.%df} / {:.%df}" % (digits, digits)
    return fmt.format(a, b)


@renderer("headline")
def headline_table(results: Path) -> str:
    """The README's summary: one row per benchmark, spacy-text2node's figure beside its peers'."""
    files = [
        "linker_gem.json",
        "linker_ncbi.json",
        "linker_hpo.json",
        "documents_accuracy.json",
        "documents_trf_accuracy.json",
        "footprint.json",
        "node2vec.json",
        "vectors.json",
        "taxonomy.json",
        "bulk.json",
        "bulk_clinical.json",
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
                f"linker, {'ICD-9-CM -> ICD-10-CM GEM,' if i == 0 else 'GEM'} {setting} {names.get(setting, '')}",
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
    hpo = need(data["linker_hpo.json"], "results", "HPO", where="linker_hpo.json")
    own = need(hpo, "cnn:node2vec+text", where="linker_hpo.json HPO")
    rows.append(
        [
            "linker, zero-shot on a new ontology: HPO 2013 names only, queried with its synonyms",
            "Acc@1 / Acc@5",
            f"{own['acc@1']:.3f} / {own['acc@5']:.3f}",
            f"MiniLM **{hpo['minilm']['acc@1']:.3f}** / **{hpo['minilm']['acc@5']:.3f}**, "
            f"TF-IDF {hpo['tfidf']['acc@1']:.3f} / {hpo['tfidf']['acc@5']:.3f}",
        ]
    )
    docs = need(data["documents_accuracy.json"], "results", where="documents_accuracy.json")
    ner, chunks, matcher = docs["ner"], docs["noun chunks"], docs["phrase matcher"]
    trf = need(data["documents_trf_accuracy.json"], "results", "ner", where="documents_trf_accuracy.json")
    rows.append(
        [
            "documents, NCBI Disease dev: mentions found, then linked",
            "mention F1 / (span, concept) F1",
            f"{ner['text2node_mention_f']:.3f} / {ner['text2node_link_f']:.3f} (trained NER); "
            f"{trf['text2node_mention_f']:.3f} / {trf['text2node_link_f']:.3f} (transformer NER)",
            f"noun chunks {chunks['text2node_mention_f']:.3f} / {chunks['text2node_link_f']:.3f}, "
            f"phrase matcher {matcher['text2node_mention_f']:.3f} / {matcher['text2node_link_f']:.3f} (same linker)",
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
    for filename, mentions in (("bulk_clinical.json", "the clinical NER"), ("bulk.json", "noun chunks")):
        bulk = need(data[filename], "results", where=filename)
        overhead = [
            bulk[f"mentions n{k}"]["docs_per_second"] / bulk[f"linked n{k}"]["docs_per_second"] - 1 for k in (1, 2)
        ]
        spans = bulk["linked n1"]["n_spans"] / bulk["linked n1"]["n_written"]
        rows.append(
            [
                f"bulk linking, MTSamples notes, mentions by {mentions} ({spans:.0f} per note)",
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
