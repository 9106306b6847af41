"""Linker benchmark: peers (TF-IDF char 3-grams, MiniLM) and our text2node_linker side by side.

Settings: P3, P1, Z (ICD-9-CM -> ICD-10-CM via the CMS GEMs, from registry packages)
NCBI (NCBI Disease dev mentions -> CTD MEDIC, from ../shared/data) and HPO (zero-shot on
a new ontology: HPO 2013 term names are the index and the training pairs, its EXACT
synonyms the queries; nothing is calibrated). Every contender
runs in its own subprocess (one setting each), so its peak RSS and single-process speed
are its own. Prints a table and writes benchmarks/results/linker.json.

    python -m benchmarks linker --only peers --settings P3
    python -m benchmarks linker --settings P3,P1,Z,NCBI \\
        --variants cnn:node2vec+text,bilstm:node2vec+text,mean:node2vec+text,cnn:node2vec
    python -m benchmarks linker --subtree 4 --limit 500      # quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

if not __package__:  # run as `python benchmarks/bench_linker.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO, RESULTS, peak_rss_mb, run_meta, script_prog, write_results  # noqa: E402

NAME = "linker"
CACHE = RESULTS / "cache"
SHARED = Path(os.environ.get("TEXT2NODE_SHARED_DATA", REPO.parent / "shared" / "data"))
PEERS = ("tfidf", "minilm")
DEFAULT_VARIANTS = "cnn:node2vec+text,bilstm:node2vec+text,mean:node2vec+text,cnn:node2vec"


# data ---------------------------------------------------------------------------------
def gem_dir(subtree: Optional[str]) -> Path:
    d = RESULTS / "data" / (f"gem-{subtree.replace(',', '+')}" if subtree else "gem")
    if not (d / "stats.json").exists():
        from spacy_text2node.datasets import write_gem_splits

        write_gem_splits(d, seed=0, subtree=subtree.split(",") if subtree else None)
    return d


def ncbi_dir() -> Path:
    d = RESULTS / "data" / "ncbi"
    if not (d / "stats.json").exists():
        from spacy_text2node.datasets import write_ncbi

        src = SHARED / "ncbi_disease"
        medic = SHARED / "ctd_medic" / "CTD_diseases.tsv.gz"
        if not src.exists() or not medic.exists():
            raise SystemExit(f"NCBI setting needs {src} and {medic} (the shared data folder).")
        write_ncbi(d, src, medic, docs=False)
    return d


def ncbi_calibration_split(d: Path) -> None:
    """Hold 20% of the distinct NCBI training mentions (seeded) out of training: they
    calibrate the reranker (the NCBI dev split is the test set here)."""
    from spacy_text2node import Taxonomy
    from spacy_text2node.datasets.ncbi import write_linker_splits

    if (d / "fit.jsonl").exists():
        return
    write_linker_splits(d, Taxonomy.from_disk(d / "taxonomy"), seed=0)


def hpo_dir() -> Path:
    """HPO 2013 as a taxonomy never trained on mentions: its term names are the index and
    the training pairs, its EXACT synonyms are the queries (no synonym is fitted on)."""
    d = RESULTS / "data" / "hpo"
    if (d / "stats.json").exists():
        return d
    import srsly

    from spacy_text2node import Taxonomy

    src = SHARED / "hpo_2013" / "hp.obo"
    if not src.exists():
        raise SystemExit(f"HPO setting needs {src} (the shared data folder).")
    full = Taxonomy.from_obo(src, synonym_scopes=("EXACT",))
    names = Taxonomy.from_obo(src, synonym_scopes=())  # the index: term names only
    queries = [
        {"text": syn.text, "concept": cid, "gold": [cid], "source": "hpo-exact"}
        for cid in full.ids
        for syn in full.synonyms(cid)
    ]
    train = [{"text": names.label(c), "concept": c, "gold": [c], "source": "hpo-name"} for c in names.ids]
    names.to_disk(d / "taxonomy")
    srsly.write_jsonl(d / "train.jsonl", train)
    srsly.write_jsonl(d / "test.jsonl", queries)
    stats = {"concepts": len(names), "train": len(train), "test": len(queries), "source": str(src.name)}
    srsly.write_json(d / "stats.json", stats)
    return d


def setting_files(setting: str, subtree: Optional[str]) -> Dict[str, Any]:
    if setting == "HPO":  # zero-shot on a new ontology: nothing to calibrate on
        d = hpo_dir()
        return {
            "train": d / "train.jsonl",
            "dev": None,
            "test": d / "test.jsonl",
            "taxonomy": d / "taxonomy",
            "candidates": "all",
        }
    if setting == "NCBI":
        d = ncbi_dir()
        ncbi_calibration_split(d)
        return {
            "train": d / "fit.jsonl",
            "dev": d / "calibration.jsonl",
            "test": d / "dev.jsonl",
            "taxonomy": d / "taxonomy",
            "extra_train": "taxonomy",
            # the phrase dictionary: every train mention (fit and calibration), as the project's,
            # set after the training's model selection and the calibration on calibration.jsonl
            "dictionary": d / "train.jsonl",
            "candidates": "all",
        }
    d = gem_dir(subtree)
    s = d / setting
    return {
        "train": s / "train.jsonl",
        "dev": s / "dev.jsonl",
        "test": s / "test.jsonl",
        "taxonomy": d / "taxonomy",
        "candidates": "leaves",
    }


def subsample(items: List[Any], limit: int, seed: int = 0) -> List[Any]:
    if not limit or limit >= len(items):
        return items
    import numpy as np

    idx = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
    return [items[i] for i in idx]


# workers ------------------------------------------------------------------------------
def run_peer(spec: Dict[str, Any]) -> Dict[str, Any]:
    from spacy_text2node import Taxonomy
    from spacy_text2node.baselines import MiniLMLinker, TfidfLinker
    from spacy_text2node.readers.linking import read_pairs
    from spacy_text2node.scoring import ranking_scores

    files = setting_files(spec["setting"], spec.get("subtree"))
    tax = Taxonomy.from_disk(files["taxonomy"])
    test = subsample(read_pairs(files["test"]), spec.get("limit", 0))
    t0 = time.perf_counter()
    cands = spec.get("candidates") or files["candidates"]
    peer: Any
    if spec["contender"] == "tfidf":
        peer = TfidfLinker(tax, candidates=cands)
    else:
        peer = MiniLMLinker(tax, cache_dir=CACHE, progress=True, candidates=cands)
    build_s = time.perf_counter() - t0
    queries = [p["text"] for p in test]
    t0 = time.perf_counter()
    ranked = peer.rank(queries, k=10, progress=True)
    rank_s = time.perf_counter() - t0
    scores = ranking_scores([[c for c, _ in r] for r in ranked], [p["gold"] for p in test], ks=(1, 5, 10), taxonomy=tax)
    out = {
        **scores,
        "candidates": cands,
        "index_strings": peer.n_strings,
        "index_build_s": build_s,
        "rank_s": rank_s,
        "phrases_per_s": len(queries) / rank_s,
        "peak_rss_mb": peak_rss_mb(),
    }
    if spec["contender"] == "minilm":
        out["index_from_cache"] = peer.from_cache
        out["index_encode_s"] = peer.encode_seconds
    return out


def node_vectors_for(tax, setting: str, spec: Dict[str, Any]):
    """node2vec vectors of the index taxonomy, cached under results/cache."""
    from spacy_text2node.nodes import NodeVectors, embed_nodes

    key = f"node2vec-{tax.name}-{len(tax)}-w{spec['walks']}-l{spec['walk_length']}-d{spec['dim']}"
    d = CACHE / key
    if (d / "vectors.npy").exists():
        return NodeVectors.from_disk(d), 0.0
    t0 = time.perf_counter()
    nv = embed_nodes(tax, dim=spec["dim"], num_walks=spec["walks"], walk_length=spec["walk_length"], workers=2, seed=0)
    secs = time.perf_counter() - t0
    nv.to_disk(d)
    return nv, secs


# --vectors value: phrase vectors distilled from MiniLM on the index taxonomy's own labels
# ("own-phrase", or "own-phrase:N" for a vocabulary of N words)
OWN_PHRASE = "own-phrase"
OWN_PHRASE_WORDS = 20_000  # the project's vector_words


def own_phrase_words(value: str) -> int:
    """The vocabulary size of an --vectors own-phrase[:N] value."""
    _, _, n = value.partition(":")
    if n and not n.isdigit():
        raise SystemExit(f"--vectors {value}: write own-phrase or own-phrase:N with N a number of words.")
    return int(n) if n else OWN_PHRASE_WORDS


def own_phrase_vectors(tax, max_words: int = OWN_PHRASE_WORDS):
    """Word vectors as `text2node vectors distill --method phrase --taxonomy TAX --max-words
    N` makes them (the project's settings, n-gram subwords): what a user with a new
    taxonomy runs first. They read only the taxonomy's labels (for HPO: its term names,
    never the synonyms that are the queries). Cached under results/cache."""
    import spacy

    from spacy_text2node.vectors import build_vectors_pipeline
    from spacy_text2node.vectors.pipeline import make_distilled_vectors

    d = CACHE / f"phrase-vectors-{tax.name}-{len(tax)}-w{max_words}"
    if (d / "config.cfg").exists():
        return spacy.load(d)
    loader = make_distilled_vectors(method="phrase", taxonomy=tax, max_words=max_words, cache_dir=str(CACHE / "minilm"))
    words, matrix = loader.load()
    build_vectors_pipeline(words, matrix, subwords="ngram", show_progress=False).to_disk(d)
    return spacy.load(d)  # as every later run gets it: the table looked up by exact form


def project_embed() -> Dict[str, Any]:
    """The token embedding of configs/linker.cfg's mapper (`[components.text2node_linker.model.embed]`)."""
    from thinc.api import Config

    return dict(Config().from_disk(REPO / "configs" / "linker.cfg")["components"]["text2node_linker"]["model"]["embed"])


def run_linker(spec: Dict[str, Any]) -> Dict[str, Any]:
    import spacy

    from spacy_text2node import Taxonomy
    from spacy_text2node.datasets import taxonomy_pairs
    from spacy_text2node.linker_api import build_linker_nlp, link_phrases, train_linker
    from spacy_text2node.pipeline.kb import build_memory
    from spacy_text2node.readers.linking import phrase_example, read_pairs
    from spacy_text2node.scoring import ranking_scores
    from spacy_text2node.vectors import build_vectors_pipeline, glove_6b_50d
    from spacy_text2node.vectors.pipeline import add_case_variants

    arch, space = spec["contender"].split(":", 1)
    files = setting_files(spec["setting"], spec.get("subtree"))
    tax = Taxonomy.from_disk(files["taxonomy"])
    train = read_pairs(files["train"])
    if files.get("extra_train") == "taxonomy":  # NCBI: MEDIC names and synonyms + train mentions
        train = taxonomy_pairs(tax, source=spec["setting"].lower()) + train
    train = subsample(train, spec.get("train_limit", 0))
    dev = read_pairs(files["dev"]) if files["dev"] else []  # held out of train: the reranker is calibrated on it
    test = subsample(read_pairs(files["test"]), spec.get("limit", 0))
    t0 = time.perf_counter()
    if str(spec.get("vectors")).startswith(OWN_PHRASE):  # distilled on the index taxonomy's own labels
        wv = own_phrase_vectors(tax, own_phrase_words(spec["vectors"]))
    elif spec.get("vectors"):  # a spaCy pipeline with vectors, e.g. the project's assets/vectors
        wv = spacy.load(spec["vectors"])
    else:  # with the embed keyed by exact forms (case variants below): its table lookup survives loading
        words, matrix = glove_6b_50d()
        wv = build_vectors_pipeline(
            words, matrix, lowercase=not spec.get("embed"), subwords=spec.get("subwords") or None, show_progress=False
        )
    if spec.get("embed"):  # the embed's table lookup is by exact form: key the case variants too
        table = wv.vocab.vectors
        add_case_variants(table, [w for w in (wv.vocab.strings[k] for k in list(table.key2row)) if w == w.lower()])
    vectors_s = time.perf_counter() - t0
    nv, n2v_s = (None, 0.0) if space == "text" else node_vectors_for(tax, spec["setting"], spec)
    t0 = time.perf_counter()
    cands = spec.get("candidates") or files["candidates"]
    model: Dict[str, Any] = {"embed": project_embed()} if spec.get("embed") else {}
    nlp = build_linker_nlp(
        tax,
        nv,
        wv,
        spans="doc",
        architecture=arch,
        node_space="node2vec+text" if space == "text" else space,
        candidates=cands,
        **model,
    )
    build_s = time.perf_counter() - t0
    mk = lambda p: phrase_example(nlp, p["text"], p["concept"], p["gold"])  # noqa: E731
    t0 = time.perf_counter()
    train_ex = [mk(p) for p in train]
    linker: Any = nlp.get_pipe("text2node_linker")
    if linker.cfg.get("memory", True):  # build_linker_nlp initialised without the training phrases
        linker.index.memory = build_memory(
            train_ex, tax, linker.span_source, linker.index.lexical, linker.cfg["max_df"]
        )
    train_linker(
        nlp, train_ex, [mk(p) for p in dev], epochs=spec["epochs"], seed=0, show_progress=True, calibrate=False
    )
    train_s = time.perf_counter() - t0
    from spacy_text2node.linker_api import calibrate_linker

    t0 = time.perf_counter()
    out_cal = calibrate_linker(nlp, [mk(p) for p in dev]) if dev else None  # HPO: the fixed fusion
    calibrate_s = time.perf_counter() - t0
    if files.get("dictionary") and spec.get("dictionary", True):  # after training and calibration, as the project
        linker.set_dictionary(files["dictionary"])
    linker.cfg["cache_size"] = 0  # speed is measured without the repeated-mention cache
    queries = [p["text"] for p in test]
    t0 = time.perf_counter()
    ranked = link_phrases(nlp, queries, k=10)
    rank_s = time.perf_counter() - t0
    scores = ranking_scores([[c for c, _ in r] for r in ranked], [p["gold"] for p in test], ks=(1, 5, 10), taxonomy=tax)
    out: Dict[str, Any] = {
        **scores,
        "candidates": cands,
        "calibration": out_cal,
        "calibrate_s": calibrate_s,
        "train_pairs": len(train),
        "train_s": train_s,
        "node2vec_s": n2v_s,
        "word_vectors_s": vectors_s,
        "build_s": build_s,
        "rank_s": rank_s,
        "phrases_per_s": len(queries) / rank_s,
        "peak_rss_mb": peak_rss_mb(),
    }
    # save, reload in a fresh process, compare predictions
    pdir = RESULTS / "pipelines" / f"{spec['setting']}-{arch}-{space.replace('+', '_')}"
    pdir.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(pdir)
    out["pipeline_mb"] = sum(f.stat().st_size for f in pdir.rglob("*") if f.is_file()) / 1e6
    probe = queries[:200]
    with tempfile.TemporaryDirectory() as tmp:
        qf, rf = Path(tmp) / "q.json", Path(tmp) / "r.json"
        qf.write_text(json.dumps(probe))
        subprocess.run([sys.executable, __file__, "--reload-worker", str(pdir), str(qf), str(rf)], check=True)
        rel = json.loads(rf.read_text())
    mine = [[c for c, _ in r] for r in ranked[: len(probe)]]
    out["reload_identical"] = mine == rel["ranked"]
    out["load_s"] = rel["load_s"]
    out["load_peak_rss_mb"] = rel["peak_rss_mb"]
    return out


def reload_worker(pdir: str, qfile: str, rfile: str) -> None:
    t0 = time.perf_counter()
    import spacy

    import spacy_text2node  # noqa: F401  (until the entry points are installed)
    from spacy_text2node.linker_api import link_phrases

    nlp = spacy.load(pdir)
    load_s = time.perf_counter() - t0
    ranked = link_phrases(nlp, json.loads(Path(qfile).read_text()), k=10)
    Path(rfile).write_text(
        json.dumps({"load_s": load_s, "peak_rss_mb": peak_rss_mb(), "ranked": [[c for c, _ in r] for r in ranked]})
    )


def worker(spec_json: str, out_path: str) -> None:
    spec = json.loads(spec_json)
    res = run_peer(spec) if spec["contender"] in PEERS else run_linker(spec)
    Path(out_path).write_text(json.dumps(res))


# driver -------------------------------------------------------------------------------
def run_one(spec: Dict[str, Any]) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "res.json"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec), str(out)])
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            return {"error": f"worker exited with {proc.returncode}", "wall_s": wall}
        res = json.loads(out.read_text())
        res["wall_s"] = wall
        return res


def fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    prog = prog or script_prog(__file__)
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default="P3,P1,Z,NCBI", help="comma-separated: P3, P1, Z, NCBI, HPO")
    ap.add_argument("--only", choices=["all", "peers", "linker"], default="all")
    ap.add_argument("--peers", default="tfidf,minilm")
    ap.add_argument(
        "--variants",
        default=DEFAULT_VARIANTS,
        help="ours: ARCH:SPACE with ARCH cnn|bilstm|mean and SPACE node2vec|node2vec+text|text",
    )
    ap.add_argument("--limit", type=int, default=0, help="subsample this many test queries (seeded); 0 = all")
    ap.add_argument("--train-limit", type=int, default=0, help="subsample training pairs for our linker; 0 = all")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument(
        "--vectors",
        default="",
        help="word vectors for our linker: a spaCy pipeline folder, or 'own-phrase[:N]' (distilled from MiniLM on the "
        "index taxonomy's labels, N words, default 20000, as `text2node vectors distill --method phrase --taxonomy` "
        "does; default: GloVe 6B 50-d)",
    )
    ap.add_argument(
        "--candidates", default="", help="'leaves' or 'all' for every setting (default: leaves for GEM, all for NCBI)"
    )
    ap.add_argument("--subtree", default=None, help="ICD-10-CM subtree for the GEM settings (e.g. 4)")
    ap.add_argument(
        "--subwords",
        default="",
        help="word-vector subword component for OOV tokens: '' (none, plain GloVe), ngram or wordpiece",
    )
    ap.add_argument(
        "--no-dictionary",
        action="store_true",
        help="NCBI: no phrase dictionary of the train mentions (the linker alone, as before it had one)",
    )
    ap.add_argument(
        "--embed",
        action="store_true",
        help="our mapper reads configs/linker.cfg's token embedding (hashed word features beside the static vectors, "
        "as the project's linkers) instead of the static vectors alone",
    )
    ap.add_argument("--walks", type=int, default=10)
    ap.add_argument("--walk-length", type=int, default=80)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--out", default=str(RESULTS / "linker.json"))
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--reload-worker", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return worker(*a.worker)
    if a.reload_worker:
        return reload_worker(*a.reload_worker)
    settings = [s.strip() for s in a.settings.split(",") if s.strip()]
    contenders: List[str] = []
    if a.only in ("all", "peers"):
        contenders += [p for p in a.peers.split(",") if p]
    if a.only in ("all", "linker"):
        contenders += [v for v in a.variants.split(",") if v]
    # write the data once in this process, so workers do not race
    for s in settings:
        setting_files(s, a.subtree)
    results: Dict[str, Dict[str, Any]] = {}
    for s in settings:
        results[s] = {}
        for c in contenders:
            spec = {
                "setting": s,
                "contender": c,
                "limit": a.limit,
                "train_limit": a.train_limit,
                "epochs": a.epochs,
                "subtree": a.subtree,
                "walks": a.walks,
                "subwords": a.subwords,
                "candidates": a.candidates,
                "dictionary": not a.no_dictionary,
                "embed": a.embed,
                "vectors": a.vectors
                if not a.vectors or a.vectors.startswith(OWN_PHRASE)
                else str(Path(a.vectors).resolve()),
                "walk_length": a.walk_length,
                "dim": a.dim,
            }
            print(f"== {s} / {c}", flush=True)
            results[s][c] = run_one(spec)
            print(json.dumps(results[s][c]), flush=True)
    cols = ["acc@1", "acc@5", "mrr", "tree_distance", "phrases_per_s", "peak_rss_mb"]
    print()
    print(
        f"{'setting':8} {'contender':22} {'n':>6} "
        + " ".join(f"{c:>13}" for c in cols)
        + f" {'speed/minilm':>12} {'reload same':>11}"
    )
    for s, row in results.items():
        base = row.get("minilm", {}).get("phrases_per_s")
        for c, r in row.items():
            if "error" in r:
                print(f"{s:8} {c:22} {r['error']}")
                continue
            ratio = r["phrases_per_s"] / base if base else None
            r["speed_ratio_vs_minilm"] = ratio
            print(
                f"{s:8} {c:22} {int(r['n']):>6} "
                + " ".join(f"{fmt(r.get(k), 1 if k in ('phrases_per_s', 'peak_rss_mb') else 3):>13}" for k in cols)
                + f" {fmt(ratio, 2):>12} {fmt(r.get('reload_identical')):>11}"
            )
    meta = run_meta(prog, argv)
    write_results(Path(a.out), {"meta": meta, "results": results})
    print(f"\nwrote {a.out} (load average at end {meta['load_avg_at_end']})")


if __name__ == "__main__":
    main()
