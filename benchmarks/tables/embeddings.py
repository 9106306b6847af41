"""Tables of the taxonomy, node2vec and word-vector benchmarks."""

from __future__ import annotations

from pathlib import Path

from benchmarks.tables._format import load, need, num, provenance, ratio, renderer, table


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
