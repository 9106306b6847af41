"""Candidate search in node space: annoy's loop (what linkers used before) against the HNSW
index linkers now build (usearch) and, where installed, hnswlib's batched knn_query.

All search the same vectors in one run: the trained linker's mapper outputs for the query
phrases (GEM P1 test by default) against the node-space rows the linker's neighbour index
holds (the leaves). The exact neighbours (a brute-force product) are the reference; recall@k
is the share of them each method finds. annoy (20 trees, built here from the same rows) runs
as linkers ran it, one query at a time, chunks of queries shared by threads; usearch runs
as the linker runs it now (`HnswNeighbours.search`: the batch in one call on usearch's own
threads); hnswlib gets the whole batch with `num_threads`. For each HNSW
setting the smallest `ef` whose recall reaches annoy's is reported with its queries/s.

    python -m benchmarks ann --linker training/P1/model-calibrated --queries corpus/gem/P1/test.jsonl

Writes benchmarks/results/ann.json. hnswlib is optional (`pip install hnswlib`, a compiled
extension the linker does not use); without it its rows are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

if not __package__:  # run as `python benchmarks/bench_ann.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO, RESULTS, run_meta, script_prog, write_results  # noqa: E402

NAME = "ann"


def mapped_queries(linker_dir: Path, queries: Path, limit: int) -> Dict[str, Any]:
    """The linker's normalised mapper outputs for the query phrases, and its index."""
    import spacy

    from spacy_text2node.index.text import l2_normalize
    from spacy_text2node.linker_api import get_linker, map_phrases

    nlp = spacy.load(linker_dir)
    linker = get_linker(nlp)
    texts = []
    with queries.open(encoding="utf8") as f:
        for line in f:
            if line.strip():
                texts.append(json.loads(line)["text"])
    texts = texts[:limit] if limit else texts
    Y = map_phrases(nlp, texts)
    keep = np.any(Y != 0, axis=1)  # a span without vectors is not searched in node space
    return {"Y": l2_normalize(Y[keep]).astype(np.float32), "index": linker.index, "settings": linker.search_settings}


def exact_neighbours(Y: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Item positions of the exact k nearest (largest inner product of unit rows)."""
    out = np.empty((len(Y), k), dtype=np.int64)
    for a in range(0, len(Y), 512):
        s = Y[a : a + 512] @ items.T
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        out[a : a + 512] = top
    return out


def recall(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(map(int, f)) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / float(truth.size)


def _threaded(search: Any, Y: np.ndarray, threads: int, passes: int) -> Dict[str, Any]:
    """search(chunk) over chunks of SEARCH_CHUNK rows shared by `threads` threads, as the
    linker runs its search; the best of `passes` passes."""
    from spacy_text2node.pipeline.search import SEARCH_CHUNK

    starts = list(range(0, len(Y), SEARCH_CHUNK))
    best, found = 0.0, []
    for _ in range(passes):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda a: search(Y[a : a + SEARCH_CHUNK]), starts))
        best = max(best, len(Y) / (time.perf_counter() - t0))
        found = [r for p in parts for r in p]
    return {"queries_per_s": best, "found": found}


def run_annoy(items: np.ndarray, Y: np.ndarray, k: int, n_trees: int, threads: int, passes: int) -> Dict[str, Any]:
    """annoy as linkers ran it: per query, chunks of 256 shared by `threads` threads."""
    from spacy_text2node.index.neighbours import AnnoyNeighbours

    t0 = time.perf_counter()
    ann = AnnoyNeighbours.build(items, n_trees=n_trees, seed=0)
    build_s = time.perf_counter() - t0
    out = _threaded(lambda chunk: ann.search(chunk, k), Y, threads, passes)
    out["build_s"] = build_s
    return out


def _sweep(
    name: str, build: Any, search_at: Any, k: int, m: int, ef_construction: int, efs: Sequence[int]
) -> Dict[str, Any]:
    """Build an HNSW index (`build()` -> (index, size in MB)) and time `search_at(index, ef)`
    (-> a search of the whole query set, timed as its runner runs it) at each ef >= k."""
    t0 = time.perf_counter()
    index, size_mb = build()
    build_s = time.perf_counter() - t0
    rows = []
    for ef in efs:
        if ef >= k:
            r = search_at(index, ef)
            rows.append({"ef": ef, "queries_per_s": r["queries_per_s"], "found": r["found"]})
    return {
        "name": name,
        "M": m,
        "ef_construction": ef_construction,
        "build_s": build_s,
        "size_mb": size_mb,
        "efs": rows,
    }


def run_usearch(
    items: np.ndarray,
    Y: np.ndarray,
    k: int,
    m: int,
    ef_construction: int,
    efs: Sequence[int],
    threads: int,
    passes: int,
) -> Dict[str, Any]:
    """The linker's HNSW index (`HnswNeighbours`), searched as the linker searches it: the
    query set in one call on `threads` of usearch's threads."""
    from spacy_text2node.index.neighbours import HnswNeighbours

    def build() -> Any:
        index = HnswNeighbours.build(items, m=m, ef_construction=ef_construction)
        return index, len(index.to_bytes()) / 2**20

    def search_at(index: Any, ef: int) -> Dict[str, Any]:
        best, found = 0.0, []
        for _ in range(passes):
            t0 = time.perf_counter()
            found = index.search(Y, k, ef=ef, threads=threads)
            best = max(best, len(Y) / (time.perf_counter() - t0))
        return {"queries_per_s": best, "found": found}

    return _sweep("usearch", build, search_at, k, m, ef_construction, efs)


def run_hnsw(
    items: np.ndarray,
    Y: np.ndarray,
    k: int,
    m: int,
    ef_construction: int,
    efs: Sequence[int],
    threads: int,
    passes: int,
) -> Dict[str, Any]:
    """hnswlib's batched knn_query on `threads` threads."""
    import hnswlib

    def build() -> Any:
        index = hnswlib.Index(space="ip", dim=items.shape[1])
        index.init_index(max_elements=len(items), M=m, ef_construction=ef_construction, random_seed=0)
        index.add_items(items, np.arange(len(items)), num_threads=threads)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "hnsw.bin")
            index.save_index(path)
            return index, os.path.getsize(path) / 2**20

    def search_at(index: Any, ef: int) -> Dict[str, Any]:
        index.set_ef(ef)
        best, labels = 0.0, None
        for _ in range(passes):
            t0 = time.perf_counter()
            labels, _ = index.knn_query(Y, k=k, num_threads=threads)
            best = max(best, len(Y) / (time.perf_counter() - t0))
        return {"queries_per_s": best, "found": labels}

    return _sweep("hnswlib", build, search_at, k, m, ef_construction, efs)


def _hnsw_entry(h: Dict[str, Any], truth: np.ndarray, annoy_recall: float, annoy_qps: float) -> Dict[str, Any]:
    name = h["name"]
    rows = [{"ef": r["ef"], "queries_per_s": r["queries_per_s"], "recall": recall(r["found"], truth)} for r in h["efs"]]
    equal = next((r for r in rows if r["recall"] >= annoy_recall), None)
    entry = {k_: h[k_] for k_ in ("M", "ef_construction", "build_s", "size_mb")}
    entry.update(efs=rows, at_annoy_recall=equal)
    for r in rows:
        print(f"{name} M={h['M']} ef={r['ef']}: {r['queries_per_s']:.0f} queries/s, recall {r['recall']:.4f}")
    if equal:
        print(
            f"  at annoy's recall: ef={equal['ef']}, x{equal['queries_per_s'] / annoy_qps:.2f} annoy's speed "
            f"(build {h['build_s']:.1f} s, {h['size_mb']:.1f} MB)"
        )
    else:
        print("  no ef reaches annoy's recall")
    return entry


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    prog = prog or script_prog(__file__)
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--linker", type=Path, default=REPO / "training" / "P1" / "model-calibrated")
    ap.add_argument("--queries", type=Path, default=REPO / "corpus" / "gem" / "P1" / "test.jsonl")
    ap.add_argument("--limit", type=int, default=0, help="first N queries (0: all)")
    ap.add_argument("--k", type=int, default=0, help="neighbours per query (0: the linker's ann_candidates)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--passes", type=int, default=3, help="timed passes; the best is kept")
    ap.add_argument("--n-trees", type=int, default=20, help="annoy trees (linkers built annoy with 20)")
    ap.add_argument("--m", type=int, nargs="+", default=[16, 32], help="HNSW M values (links per node)")
    ap.add_argument("--ef-construction", type=int, default=128)
    ap.add_argument("--ef", type=int, nargs="+", default=[50, 64, 80, 100, 128, 160, 200, 256])
    ap.add_argument("--out", type=Path, default=RESULTS / "ann.json")
    args = ap.parse_args(argv)
    for p in (args.linker, args.queries):
        if not p.exists():
            ap.error(f"{p} does not exist: run the project's train and calibrate steps (spacy project run all) first.")
    try:
        import hnswlib  # noqa: F401

        have_hnswlib = True
    except ImportError:
        have_hnswlib = False
        print("hnswlib is not installed: its rows are skipped (pip install hnswlib to add them).")

    got = mapped_queries(args.linker, args.queries, args.limit)
    Y, index, settings = got["Y"], got["index"], got["settings"]
    k = args.k or settings.ann_candidates
    items = np.ascontiguousarray(index.space if index.ann_items is None else index.space[index.ann_items])
    truth = exact_neighbours(Y, items, k)
    print(f"{len(Y)} queries, {len(items)} items of {items.shape[1]} dims, k={k}, {args.threads} threads")

    a = run_annoy(items, Y, k, args.n_trees, args.threads, args.passes)
    annoy_recall = recall(a["found"], truth)
    result: Dict[str, Any] = {
        "n_queries": len(Y),
        "n_items": len(items),
        "dim": int(items.shape[1]),
        "k": k,
        "threads": args.threads,
        "linker_ann": index.ann_kind,
        "annoy": {
            "n_trees": args.n_trees,
            "search_k": -1,
            "build_s": a["build_s"],
            "queries_per_s": a["queries_per_s"],
            "recall": annoy_recall,
        },
        "usearch": [],
        "hnswlib": [],
    }
    print(
        f"annoy ({args.n_trees} trees, search_k -1): {a['queries_per_s']:.0f} queries/s, recall@{k} {annoy_recall:.4f}"
    )
    for m in args.m:
        h = run_usearch(items, Y, k, m, args.ef_construction, args.ef, args.threads, args.passes)
        result["usearch"].append(_hnsw_entry(h, truth, annoy_recall, a["queries_per_s"]))
        if have_hnswlib:
            h = run_hnsw(items, Y, k, m, args.ef_construction, args.ef, args.threads, args.passes)
            result["hnswlib"].append(_hnsw_entry(h, truth, annoy_recall, a["queries_per_s"]))
    result["meta"] = run_meta(prog, argv, linker=str(args.linker), queries=str(args.queries))
    print(f"-> {write_results(args.out, result)}")


if __name__ == "__main__":
    main()
