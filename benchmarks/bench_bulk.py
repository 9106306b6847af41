"""Bulk linking throughput, linker overhead, Spark and memory on MTSamples notes.

Usage:
    python benchmarks/bench_bulk.py [--n-docs 1000] [--rss-sizes 1000,5000] [--shared ../shared/data]

Contenders run side by side in the same run, each as `text2node link` in a fresh
subprocess (peak RSS is its own: psutil polls the process tree every 0.1 s, and
`ru_maxrss` of the children gives the largest single process):

* mentions n1 / n2   configs/clinical.cfg without a linker (en_core_web_sm noun chunks)
* linked n1 / n2     the same config with `--paths.linker` = an ICD-10-CM text2node_linker
* linked spark       the same pipeline, `--backend spark --spark-master local[2]`
* ruler+linker @ N   peak RSS for each size in --rss-sizes (flat memory check): the
                     linker pipeline with `--mentions ruler` (an entity ruler from the
                     ICD-10-CM labels and inclusion terms), faster than noun chunks

The linker is built once (cached in benchmarks/results/cache): ICD-10-CM (98,505
concepts with inclusion terms), GloVe 6B 50-d (100k words), CNN mapper, text-only node
space. Its mapper is untrained: the work per span is the same as a trained one's.
Results: a table with ratios, and benchmarks/results/bulk.json.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / "results" / "cache"
LINKER = CACHE / "bulk_linker_icd10cm"
LINKER_CODE = ("pipeline/linker.py", "ml/mapper.py", "linker_api.py", "index.py")

BUILD_LINKER = r"""
import sys
from spacy_text2node import Taxonomy
from spacy_text2node.linker_api import build_linker_nlp
from spacy_text2node.vectors.io import glove_6b_50d
from spacy_text2node.vectors.pipeline import build_vectors_pipeline
words, matrix = glove_6b_50d(max_words=100_000)
vec = build_vectors_pipeline(words, matrix, subwords=None)
nlp = build_linker_nlp(Taxonomy.from_icd10cm(), None, vec, spans="ents", architecture="cnn")
nlp.to_disk(sys.argv[1])
"""
# The CLI, plus a note of this process's and its waited-for children's peak RSS at exit.
CLI = (
    "import atexit, json, resource, sys\n"
    "path = sys.argv.pop(1)\n"
    "def _rss():\n"
    "    json.dump({'self_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,\n"
    "               'children_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}, open(path, 'w'))\n"
    "atexit.register(_rss)\n"
    "from spacy_text2node.cli import app; import spacy_text2node.cli.link\n"
    "sys.argv[0] = 'text2node'; app()\n"
)


def trained_linker_copy(src: Path) -> Path:
    """A copy of a trained (phrase-level) linker pipeline that links doc.ents instead."""
    import srsly

    if not (src / "config.cfg").exists():
        raise SystemExit(f"{src}: not a pipeline folder (no config.cfg).")
    dst = CACHE / "bulk_linker_trained"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    cfg_text = (dst / "config.cfg").read_text(encoding="utf8")
    head, sep, rest = cfg_text.partition("[components.text2node_linker]")
    rest = rest.replace('spans = "doc"', 'spans = "ents"', 1)
    (dst / "config.cfg").write_text(head + sep + rest, encoding="utf8")
    comp_cfg = srsly.read_json(dst / "text2node_linker" / "cfg")
    comp_cfg["spans"] = "ents"
    srsly.write_json(dst / "text2node_linker" / "cfg", comp_cfg)
    return dst


def run_contender(args, out_dir: Path, name: str):
    """Run `text2node link ...` in a subprocess; return its stats and memory."""
    stats_path = out_dir / f"{name}.stats.json"
    rss_path = out_dir / f"{name}.rss.json"
    cmd = [
        sys.executable,
        "-c",
        CLI,
        str(rss_path),
        "link",
        *args,
        "--no-progress",
        "--stats-json",
        str(stats_path),
        "--overwrite",
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(proc.pid)
    peak_tree = 0
    while proc.poll() is None:
        try:
            procs = [ps] + ps.children(recursive=True)
            peak_tree = max(peak_tree, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    output = proc.stdout.read()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{output[-3000:]}")
    stats = json.loads(stats_path.read_text())
    rss = json.loads(rss_path.read_text())
    stats.update(
        wall_s=wall,
        peak_tree_rss_mb=peak_tree / 2**20,  # sum over the process tree, polled
        peak_process_rss_mb=max(rss["self_mb"], rss["children_mb"]),  # the largest single process
        main_process_rss_mb=rss["self_mb"],
    )
    return stats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--n-docs", type=int, default=1000, help="input records for the throughput runs")
    ap.add_argument("--rss-sizes", default="1000,5000", help="input sizes for the memory runs")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--skip", default="", help="comma-separated contenders to skip (spark, rss, ...)")
    ap.add_argument(
        "--linker",
        default="",
        help="a trained linker pipeline (e.g. training/P1/model-calibrated of the project); "
        "copied with spans='ents'. Default: an untrained CNN linker built once.",
    )
    args = ap.parse_args()
    notes = Path(args.shared) / "mtsamples" / "mtsamples.csv.gz"
    if not notes.exists():
        raise SystemExit(f"{notes} is absent: this benchmark needs the shared MTSamples notes.")
    skip = set(filter(None, args.skip.split(",")))
    global LINKER
    if args.linker:
        LINKER = trained_linker_copy(Path(args.linker))
    # rebuild the cached linker whenever the linker's code changed
    key = hashlib.sha1(b"".join((REPO / "spacy_text2node" / f).read_bytes() for f in LINKER_CODE)).hexdigest()
    key_file = CACHE / "bulk_linker_icd10cm.key"
    if not args.linker and (
        not (LINKER / "config.cfg").exists() or not key_file.exists() or key_file.read_text() != key
    ):
        print(f"building the ICD-10-CM linker into {LINKER} ...", flush=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        if LINKER.exists():
            shutil.rmtree(LINKER)
        subprocess.run([sys.executable, "-c", BUILD_LINKER, str(LINKER)], check=True, cwd=REPO)
        key_file.write_text(key)
    cfg = str(REPO / "configs" / "clinical.cfg")
    common = ["--id-field", "note_id", "--text-field", "transcription", "--batch-size", str(args.batch_size)]
    linked = [cfg, "--paths.linker", str(LINKER)]
    contenders = [
        ("mentions n1", [cfg], ["-n", "1"], args.n_docs),
        ("mentions n2", [cfg], ["-n", "2"], args.n_docs),
        ("linked n1", linked, ["-n", "1"], args.n_docs),
        ("linked n2", linked, ["-n", "2"], args.n_docs),
        (
            "linked spark local[2]",
            linked,
            ["--backend", "spark", "--spark-master", "local[2]", "--spark-chunk", "500"],
            args.n_docs,
        ),
    ]
    if "rss" not in skip:
        # the memory pair uses a faster mention finder (an entity ruler from the linker's
        # ICD-10-CM labels and inclusion terms) so 5,000 notes fit the time on 2 cores
        for size in [int(s) for s in args.rss_sizes.split(",")]:
            contenders.append((f"ruler+linker n1 rss@{size}", [str(LINKER), "--mentions", "ruler"], ["-n", "1"], size))
    contenders = [c for c in contenders if not any(s in c[0] for s in skip)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, model_args, extra, n in contenders:
            out = tmp / (name.replace(" ", "_").replace("[", "").replace("]", "") + ".jsonl")
            model, *overrides = model_args
            argv = [model, str(notes), str(out), *common, *extra, "--limit", str(n), *overrides]
            print(f"running {name} on {n} notes ...", flush=True)
            r = run_contender(argv, tmp, name.replace(" ", "_"))
            recs = [json.loads(l) for l in out.read_text().splitlines()]
            r["n_docs_requested"] = n
            r["n_spans"] = sum(len(x["spans"]) for x in recs)
            r["n_linked_spans"] = sum(1 for x in recs for s in x["spans"] if s["concept_id"])
            r["command"] = "text2node link " + " ".join(argv)
            results[name] = r
    base = results.get("mentions n1")
    print(
        f"\n{'contender':<26} {'docs':>5} {'docs/s':>7} {'words/s':>8} {'x mentions n1':>13} {'spans':>7} {'linked':>7} {'peak RSS MB (proc / tree)':>26}"
    )
    for name, r in results.items():
        ratio = r["docs_per_second"] / base["docs_per_second"] if base else float("nan")
        proc = f"{r['peak_process_rss_mb']:.0f}" if r["peak_process_rss_mb"] else "-"
        print(
            f"{name:<26} {r['n_written']:>5} {r['docs_per_second']:>7.2f} {r['words_per_second']:>8,.0f} {ratio:>13.2f} "
            f"{r['n_spans']:>7,} {r['n_linked_spans']:>7,} {proc + ' / ' + format(r['peak_tree_rss_mb'], '.0f'):>26}"
        )
    summary = {}
    for n in ("1", "2"):
        a, b = results.get(f"mentions n{n}"), results.get(f"linked n{n}")
        if a and b:
            summary[f"linker_overhead_n{n}"] = a["docs_per_second"] / b["docs_per_second"] - 1
            print(
                f"linker overhead with --n-process {n}: {summary[f'linker_overhead_n{n}']:+.0%} time per doc (target <= +30%)"
            )
    if "linked n1" in results and "linked n2" in results:
        summary["speedup_n2"] = results["linked n2"]["docs_per_second"] / results["linked n1"]["docs_per_second"]
        print(f"--n-process 2 vs 1 (linked): x{summary['speedup_n2']:.2f}")
    if "linked spark local[2]" in results and "linked n2" in results:
        summary["spark_vs_n2"] = (
            results["linked spark local[2]"]["docs_per_second"] / results["linked n2"]["docs_per_second"]
        )
        print(f"Spark local[2] vs --n-process 2 (linked): x{summary['spark_vs_n2']:.2f}")
    rss = {k: v for k, v in results.items() if "rss@" in k}
    if len(rss) == 2:
        (k1, r1), (k2, r2) = rss.items()
        summary["rss_ratio_process"] = r2["peak_process_rss_mb"] / r1["peak_process_rss_mb"]
        summary["rss_ratio_tree"] = r2["peak_tree_rss_mb"] / r1["peak_tree_rss_mb"]
        print(
            f"peak RSS {k2} / {k1}: x{summary['rss_ratio_process']:.2f} per process, "
            f"x{summary['rss_ratio_tree']:.2f} process tree (flat = about 1)"
        )
    load = os.getloadavg()
    summary["load_average_at_end"] = load
    print(f"load average at the end: {load[0]:.1f} on {os.cpu_count()} cores (other jobs share the machine)")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "bulk.json").write_text(json.dumps({"results": results, "summary": summary}, indent=2))
    print(f"-> {HERE / 'results' / 'bulk.json'}")


if __name__ == "__main__":
    main()
