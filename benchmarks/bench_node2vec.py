"""node2vec on ICD-10-CM: spacy-text2node's numba node2vec against PecanPy SparseOTF.

Both run side by side in one run, each in its own subprocess (so wall time and peak
RSS are measured separately), with the same graph, p, q, walks, dim, window, epochs
and workers; the parent MRR of both embeddings is computed the same way.

    python -m benchmarks node2vec            # full ICD-10-CM (PecanPy takes minutes)
    python -m benchmarks node2vec --quick    # one ICD-10-CM chapter, a fast check

Writes benchmarks/results/node2vec.json (or node2vec_quick.json).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

if not __package__:  # run as `python benchmarks/bench_node2vec.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO, RESULTS, peak_rss_mb, run_meta, script_prog, write_results  # noqa: E402

NAME = "node2vec"


# contenders (run in a subprocess: `--run ours|pecanpy`) -------------------------------------
def run_ours(args: argparse.Namespace) -> Dict[str, Any]:
    t0 = time.perf_counter()
    from spacy_text2node import Taxonomy
    from spacy_text2node.nodes import embed_nodes

    tax = Taxonomy.from_disk(args.taxonomy_dir)
    t1 = time.perf_counter()
    nv = embed_nodes(
        tax,
        dim=args.dim,
        p=args.p,
        q=args.q,
        walk_length=args.walk_length,
        num_walks=args.num_walks,
        window=args.window,
        epochs=args.epochs,
        workers=args.workers,
        seed=args.seed,
        progress=False,
    )
    t2 = time.perf_counter()
    np.save(args.vectors_out, nv.vectors, allow_pickle=False)
    return {
        "load_s": t1 - t0,
        "embed_s": t2 - t1,
        "walks_s": nv.cfg["stats"]["walks_s"],
        "train_s": nv.cfg["stats"]["train_s"],
    }


def _numpy_aliases_for_pecanpy() -> None:
    # pecanpy 2.0.9 imports nptyping, which reads numpy aliases removed in numpy 2.0
    aliases = {
        "bool8": np.bool_,
        "object0": np.object_,
        "int0": np.intp,
        "uint0": np.uintp,
        "void0": np.void,
        "bytes0": np.bytes_,
        "str0": np.str_,
        "float_": np.float64,
        "complex_": np.complex128,
        "unicode_": np.str_,
        "string_": np.bytes_,
        "longfloat": np.longdouble,
        "singlecomplex": np.complex64,
        "cfloat": np.complex128,
        "clongfloat": np.clongdouble,
        "longcomplex": np.clongdouble,
    }
    for name, value in aliases.items():
        try:
            getattr(np, name)
        except AttributeError:
            setattr(np, name, value)


def run_pecanpy(args: argparse.Namespace) -> Dict[str, Any]:
    t0 = time.perf_counter()
    _numpy_aliases_for_pecanpy()
    from pecanpy import pecanpy as pp

    g = pp.SparseOTF(p=args.p, q=args.q, workers=args.workers, verbose=False, random_state=args.seed)
    g.read_edg(args.edgelist, weighted=False, directed=False)
    t1 = time.perf_counter()
    emb = g.embed(
        dim=args.dim,
        num_walks=args.num_walks,
        walk_length=args.walk_length,
        window_size=args.window,
        epochs=args.epochs,
    )
    t2 = time.perf_counter()
    out = np.zeros((args.n_nodes, args.dim), dtype=np.float32)  # isolated nodes (absent from an edge list): zeros
    out[np.asarray([int(x) for x in g.nodes])] = emb
    np.save(args.vectors_out, out, allow_pickle=False)
    return {"load_s": t1 - t0, "embed_s": t2 - t1, "nodes_in_graph": len(g.nodes)}


def child_main(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    info = (run_ours if args.run == "ours" else run_pecanpy)(args)
    info["inner_total_s"] = time.perf_counter() - t0
    info["peak_rss_mb"] = peak_rss_mb()
    Path(args.info_out).write_text(json.dumps(info))


# driver ----------------------------------------------------------------------------------------
def contender(name: str, work: Path, extra: List[str]) -> Dict[str, Any]:
    vec, info = work / f"{name}.npy", work / f"{name}.json"
    cmd = [sys.executable, __file__, "--run", name, "--vectors-out", str(vec), "--info-out", str(info)] + extra
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    wall = time.perf_counter() - t0
    res = json.loads(info.read_text())
    res.update({"wall_s": wall, "loadavg_1min_before": load_before, "loadavg_1min_after": os.getloadavg()[0]})
    res["vectors"] = np.load(vec)
    return res


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    prog = prog or script_prog(__file__)
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one ICD-10-CM chapter instead of the whole tree")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--p", type=float, default=1.0)
    ap.add_argument("--q", type=float, default=0.5)
    ap.add_argument("--walk-length", type=int, default=80)
    ap.add_argument("--num-walks", type=int, default=10)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=2000, help="nodes sampled for the parent MRR")
    ap.add_argument("--skip-pecanpy", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    # child-process arguments
    ap.add_argument("--run", choices=["ours", "pecanpy"], help=argparse.SUPPRESS)
    ap.add_argument("--taxonomy-dir", help=argparse.SUPPRESS)
    ap.add_argument("--edgelist", help=argparse.SUPPRESS)
    ap.add_argument("--n-nodes", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--vectors-out", help=argparse.SUPPRESS)
    ap.add_argument("--info-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        child_main(args)
        return

    from spacy_text2node import Taxonomy
    from spacy_text2node.nodes import embed_nodes, parent_report

    tax = Taxonomy.from_icd10cm()
    if args.quick:
        root = min(tax.roots, key=lambda r: abs(len(tax.descendants(r)) - 5000))
        tax = tax.subtree([root], name=f"icd10cm-chapter-{root}")
    n = len(tax)
    indptr, indices = tax.csr(undirected=False)  # child -> parent: each edge once
    params = [
        "--dim",
        args.dim,
        "--p",
        args.p,
        "--q",
        args.q,
        "--walk-length",
        args.walk_length,
        "--num-walks",
        args.num_walks,
        "--window",
        args.window,
        "--epochs",
        args.epochs,
        "--workers",
        args.workers,
        "--seed",
        args.seed,
    ]
    params_s = [str(x) for x in params]
    print(f"graph: {tax.name}, {n:,} nodes, {int(indptr[-1]):,} edges; cpus={os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tax.to_disk(work / "taxonomy")
        with (work / "graph.edg").open("w") as f:
            for i in range(n):
                for j in indices[indptr[i] : indptr[i + 1]]:
                    f.write(f"{i}\t{j}\n")
        # compile-cache warm-up for ours (numba caches compiled code on disk after the first call)
        t0 = time.perf_counter()
        embed_nodes(
            tax.subtree([tax.roots[0]]), dim=8, walk_length=5, num_walks=1, workers=args.workers, progress=False
        )
        warmup = time.perf_counter() - t0
        results: Dict[str, Dict[str, Any]] = {}
        results["spacy-text2node"] = contender("ours", work, params_s + ["--taxonomy-dir", str(work / "taxonomy")])
        if not args.skip_pecanpy:
            results["pecanpy SparseOTF"] = contender(
                "pecanpy", work, params_s + ["--edgelist", str(work / "graph.edg"), "--n-nodes", str(n)]
            )
    for res in results.values():
        res.update(parent_report(tax, res.pop("vectors"), n_samples=args.samples, seed=0))

    base = results.get("pecanpy SparseOTF")
    print()
    print(
        f"{'contender':<20} {'wall s':>8} {'embed s':>8} {'peak RSS MB':>12} {'parent MRR':>11} {'hits@10':>8} "
        f"{'wall ratio':>11}"
    )
    for name, r in results.items():
        ratio = f"{base['wall_s'] / r['wall_s']:.2f}x" if base else "-"
        print(
            f"{name:<20} {r['wall_s']:>8.1f} {r['embed_s']:>8.1f} {r['peak_rss_mb']:>12.0f} "
            f"{r['parent_mrr']:>11.4f} {r['parent_hits@10']:>8.3f} {ratio:>11}"
        )
    ours = results["spacy-text2node"]
    print(
        f"\nours: walks {ours['walks_s']:.1f}s, training {ours['train_s']:.1f}s; "
        f"numba warm-up call {warmup:.1f}s (not timed)"
    )
    summary: Dict[str, Any] = {
        "meta": run_meta(prog, argv),
        "graph": tax.name,
        "nodes": n,
        "edges": int(indptr[-1]),
        "params": {
            k: getattr(args, k)
            for k in ("dim", "p", "q", "walk_length", "num_walks", "window", "epochs", "workers", "seed")
        },
        "results": results,
        "warmup_s": warmup,
    }
    if base:
        summary["wall_ratio_pecanpy_over_ours"] = base["wall_s"] / ours["wall_s"]
        summary["checks"] = {
            "wall_at_most_one_fifth": ours["wall_s"] <= base["wall_s"] / 5,
            "peak_rss_at_most_1GB": ours["peak_rss_mb"] <= 1000,
            "parent_mrr_no_worse": ours["parent_mrr"] >= base["parent_mrr"],
        }
        print("checks:", summary["checks"])
    out = args.out or RESULTS / ("node2vec_quick.json" if args.quick else "node2vec.json")
    print(f"-> {write_results(out, summary)}")


if __name__ == "__main__":
    main()
