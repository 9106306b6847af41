"""Bulk linking throughput, linker overhead, Spark and memory on MTSamples notes.

Usage:
    python -m benchmarks bulk [--n-docs 1000] [--rss-sizes 1000,5000] [--shared ../shared/data]

Contenders run side by side in the same run, each as `text2node link` in a fresh
subprocess (benchmarks/_children/bulk_link.py). Memory is polled over the process tree,
RSS every 0.1 s and PSS every `--pss-every` seconds (1 s: reading it costs CPU time):
summed RSS (counts every shared page once per process), summed PSS (each shared page
split between the processes that map it: the figure for "what does a worker add"), and
`ru_maxrss` for the largest single process:

* mentions n1 / n2        the clinical pipeline without a linker: with `--ner DIR`, configs/clinical.cfg
                          (that trained disease NER, abbreviations, NegEx); without,
                          configs/clinical_noun_chunks.cfg (en_core_web_sm noun chunks)
* linked n1 / n2 / n4     the same config with `--paths.linker` = an ICD-10-CM text2node_linker
* linked n2 spacy-pool    the same with `--pool spacy` (spaCy's nlp.pipe(n_process=2))
* spark pair              linked n2 beside `--backend spark --spark-master local[2]`, on
                          --spark-docs notes (the executors write the output's part files)
* ruler+linker @ N        peak RSS for each size in --rss-sizes (flat memory check): the
                          linker pipeline with `--mentions ruler` (an entity ruler from the
                          ICD-10-CM labels and inclusion terms), faster than noun chunks

With `--linker DIR` (e.g. the project's training/P3/model-calibrated) the linker is that
trained pipeline; without, one is built once (benchmarks/_children/bulk_build_linker.py,
cached in benchmarks/results/cache): ICD-10-CM (98,505 concepts with inclusion terms),
GloVe 6B 50-d (100k words), CNN mapper, text-only node space, untrained mapper (the work
per span is the same as a trained one's). `text2node link` leaves torch out of these
processes (none of the pipelines needs it).
With `--repeat N` the throughput contenders (not the Spark pair nor the memory runs) run N
times, in rounds (each round runs every contender once, in the order above), so that the
machine's drift over the run reaches them alike; a contender's docs/s is the median of its
runs (all of them are kept, `docs_per_second_runs`) and its peak memory the largest.
Results: a table with ratios, and benchmarks/results/bulk.json.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import psutil

if not __package__:  # run as `python benchmarks/bench_bulk.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO, RESULTS, child_command, run_meta, script_prog, write_results  # noqa: E402
from spacy_text2node.bulk.pipeline_loading import DEFAULT_BATCH_SIZE  # noqa: E402

NAME = "bulk"
CACHE = RESULTS / "cache"
BUILT_LINKER = CACHE / "bulk_linker_icd10cm"
# the built linker is rebuilt whenever the code under these package paths changes
LINKER_CODE = ("pipeline", "ml", "linker_api.py", "index")


def code_key() -> str:
    """A hash of the linker's source files (a file or every .py under a folder)."""
    pkg = REPO / "spacy_text2node"
    files = []
    for part in LINKER_CODE:
        path = pkg / part
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    digest = hashlib.sha1()
    for f in files:
        digest.update(str(f.relative_to(pkg)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def trained_linker(src: Path) -> Path:
    """A trained (phrase-level) linker pipeline folder: configs/clinical.cfg sources it with
    `spans = "ents"` and `--mentions` links the mentions it adds, so it is used as saved."""
    if not (src / "config.cfg").exists():
        raise SystemExit(f"{src}: not a pipeline folder (no config.cfg).")
    return src.resolve()


def _children(ps: psutil.Process) -> List[psutil.Process]:
    try:
        return ps.children(recursive=True)
    except psutil.Error:
        return []


def _memory(p: psutil.Process, field: str) -> int:
    """A process's RSS or PSS in bytes (0 once it has gone)."""
    try:
        info = p.memory_full_info() if field == "pss" else p.memory_info()
        return int(getattr(info, field))
    except psutil.Error:
        return 0


# reading a process's PSS walks its page tables (psutil reads /proc/PID/smaps), so it is
# read less often than RSS (/proc/PID/statm): read as often as RSS, it took CPU time from
# the runs being timed, most from the multi-process ones (docs/benchmarks.md#bulk)
RSS_EVERY_S = 0.1
PSS_EVERY_S = 1.0


def run_contender(args: List[str], out_dir: Path, name: str, pss_every: float = PSS_EVERY_S) -> Dict[str, Any]:
    """Run `text2node link ...` in a subprocess; return its stats and memory (the tree's
    RSS polled every RSS_EVERY_S seconds, its PSS every `pss_every`)."""
    stats_path = out_dir / f"{name}.stats.json"
    rss_path = out_dir / f"{name}.rss.json"
    cmd = child_command(
        "bulk_link", str(rss_path), "link", *args, "--no-progress", "--stats-json", str(stats_path), "--overwrite"
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(proc.pid)
    peak_tree = peak_pss = 0
    next_pss = 0.0
    while proc.poll() is None:
        procs = [ps] + _children(ps)
        peak_tree = max(peak_tree, sum(_memory(p, "rss") for p in procs))
        if time.perf_counter() >= next_pss:
            # PSS: each shared page (mapped index files, libraries, the pages forked workers
            # share with the parent) counted once across the tree, split between the
            # processes mapping it
            peak_pss = max(peak_pss, sum(_memory(p, "pss") for p in procs))
            next_pss = time.perf_counter() + pss_every
        time.sleep(RSS_EVERY_S)
    output = proc.stdout.read() if proc.stdout else ""
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{output[-3000:]}")
    stats = json.loads(stats_path.read_text())
    rss = json.loads(rss_path.read_text())
    stats.update(
        wall_s=wall,
        peak_tree_rss_mb=peak_tree / 2**20,  # sum over the process tree, polled
        peak_tree_pss_mb=peak_pss / 2**20,  # the tree's proportional set size, polled
        peak_process_rss_mb=max(rss["self_mb"], rss["children_mb"]),  # the largest single process
        main_process_rss_mb=rss["self_mb"],
    )
    return stats


def repeated(name: str) -> bool:
    """Whether `--repeat` runs this contender more than once (the throughput runs)."""
    return "spark" not in name and "rss@" not in name


def median_run(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One contender's runs as one result: the run of median docs/s (the upper one of an
    even number), with every run's docs/s, and the largest peak memory of any run."""
    by_speed = sorted(runs, key=lambda r: r["docs_per_second"])
    out = dict(by_speed[len(by_speed) // 2])
    if len(runs) > 1:
        out["docs_per_second_runs"] = [r["docs_per_second"] for r in runs]
        for key in ("peak_tree_rss_mb", "peak_tree_pss_mb", "peak_process_rss_mb", "main_process_rss_mb"):
            out[key] = max(r[key] for r in runs)
    return out


def read_output(path: Path) -> List[Dict[str, Any]]:
    from spacy_text2node.bulk import read_output as read

    return read(path)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    prog = prog or script_prog(__file__)
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--n-docs", type=int, default=1000, help="input records for the throughput runs")
    ap.add_argument("--rss-sizes", default="1000,5000", help="input sizes for the memory runs")
    ap.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="documents per batch (text2node link's default)"
    )
    ap.add_argument(
        "--spark-docs", type=int, default=5000, help="input records for the Spark pair (local n2 beside local[2])"
    )
    ap.add_argument("--skip", default="", help="comma-separated contenders to skip (spark, rss, ...)")
    ap.add_argument(
        "--only", default="", help='comma-separated names of the only contenders to run (e.g. "spark pair: linked n2")'
    )
    ap.add_argument(
        "--linker",
        default="",
        help="a trained linker pipeline (e.g. training/P1/model-calibrated of the project). "
        "Default: an untrained CNN linker built once.",
    )
    ap.add_argument(
        "--ner",
        default="",
        help="a disease NER trained on the linker's word vectors (e.g. training/ner/model-best of the "
        "project): the mentions of configs/clinical.cfg. Default: noun chunks (configs/clinical_noun_chunks.cfg).",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of the throughput contenders: docs/s is the median of a contender's runs, memory the peak",
    )
    ap.add_argument(
        "--pss-every",
        type=float,
        default=PSS_EVERY_S,
        help="seconds between two readings of the process tree's PSS (each costs the machine CPU time)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "bulk.json")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error(f"--repeat must be at least 1, not {args.repeat}.")
    notes = Path(args.shared) / "mtsamples" / "mtsamples.csv.gz"
    if not notes.exists():
        raise SystemExit(f"{notes} is absent: this benchmark needs the shared MTSamples notes.")
    skip = set(filter(None, args.skip.split(",")))
    linker = trained_linker(Path(args.linker)) if args.linker else BUILT_LINKER
    # rebuild the cached linker whenever the linker's code changed
    key = code_key()
    key_file = CACHE / "bulk_linker_icd10cm.key"
    if not args.linker and (
        not (linker / "config.cfg").exists() or not key_file.exists() or key_file.read_text() != key
    ):
        print(f"building the ICD-10-CM linker into {linker} ...", flush=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        if linker.exists():
            shutil.rmtree(linker)
        subprocess.run(child_command("bulk_build_linker", str(linker)), check=True, cwd=REPO)
        key_file.write_text(key)
    if args.ner:
        mentions = [str(REPO / "configs" / "clinical.cfg"), "--paths.ner", str(Path(args.ner).resolve())]
    else:
        mentions = [str(REPO / "configs" / "clinical_noun_chunks.cfg")]
    common = ["--id-field", "note_id", "--text-field", "transcription", "--batch-size", str(args.batch_size)]
    linked = [*mentions, "--paths.linker", str(linker)]
    contenders = [
        ("mentions n1", mentions, ["-n", "1"], args.n_docs),
        ("mentions n2", mentions, ["-n", "2"], args.n_docs),
        ("linked n1", linked, ["-n", "1"], args.n_docs),
        ("linked n2", linked, ["-n", "2"], args.n_docs),
        ("linked n4", linked, ["-n", "4"], args.n_docs),
        ("linked n2 spacy-pool", linked, ["-n", "2", "--pool", "spacy"], args.n_docs),
        ("spark pair: linked n2", linked, ["-n", "2"], args.spark_docs),
        (
            "spark pair: linked spark local[2]",
            linked,
            ["--backend", "spark", "--spark-master", "local[2]"],
            args.spark_docs,
        ),
    ]
    if "rss" not in skip:
        # the memory pair uses a faster mention finder (an entity ruler from the linker's
        # ICD-10-CM labels and inclusion terms) so 5,000 notes fit the time on 2 cores
        for size in [int(s) for s in args.rss_sizes.split(",")]:
            contenders.append((f"ruler+linker n1 rss@{size}", [str(linker), "--mentions", "ruler"], ["-n", "1"], size))
    contenders = [c for c in contenders if not any(s in c[0] for s in skip)]
    if args.only:
        only = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = sorted(set(only) - {c[0] for c in contenders})
        if unknown:
            ap.error(f"--only: no contender named {', '.join(map(repr, unknown))} (see the list at the top).")
        contenders = [c for c in contenders if c[0] in only]
    runs: Dict[str, List[Dict[str, Any]]] = {}
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for round_ in range(args.repeat):
            for name, model_args, extra, n in contenders:
                if round_ and not repeated(name):
                    continue
                out = tmp / (re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") + ".jsonl")
                model, *overrides = model_args
                link_argv = [model, str(notes), str(out), *common, *extra, "--limit", str(n), *overrides]
                which = f" (round {round_ + 1} of {args.repeat})" if args.repeat > 1 else ""
                print(f"running {name} on {n} notes{which} ...", flush=True)
                r = run_contender(link_argv, tmp, out.stem, pss_every=args.pss_every)
                recs = read_output(out)  # a file, or the folder of part files Spark's executors write
                r["n_docs_requested"] = n
                r["n_spans"] = sum(len(x["spans"]) for x in recs)
                r["n_linked_spans"] = sum(1 for x in recs for s in x["spans"] if s["concept_id"])
                r["command"] = "text2node link " + " ".join(link_argv)
                if args.repeat > 1:
                    print(f"  {r['docs_per_second']:.2f} docs/s", flush=True)
                runs.setdefault(name, []).append(r)
    results = {name: median_run(rs) for name, rs in runs.items()}
    base = results.get("mentions n1")
    print(
        f"\n{'contender':<26} {'docs':>5} {'docs/s':>7} {'words/s':>8} {'x mentions n1':>13} {'spans':>7} "
        f"{'linked':>7} {'peak RSS MB (proc / tree)':>26} {'peak PSS MB (tree)':>19}"
    )
    for name, r in results.items():
        ratio = r["docs_per_second"] / base["docs_per_second"] if base else float("nan")
        proc = f"{r['peak_process_rss_mb']:.0f}" if r["peak_process_rss_mb"] else "-"
        print(
            f"{name:<26} {r['n_written']:>5} {r['docs_per_second']:>7.2f} {r['words_per_second']:>8,.0f} "
            f"{ratio:>13.2f} "
            f"{r['n_spans']:>7,} {r['n_linked_spans']:>7,} {proc + ' / ' + format(r['peak_tree_rss_mb'], '.0f'):>26} "
            f"{r['peak_tree_pss_mb']:>19,.0f}"
        )
    workers = {n: results[f"linked n{n}"]["peak_tree_pss_mb"] for n in (1, 2, 4) if f"linked n{n}" in results}
    if 1 in workers:
        summary_pss = {f"peak_pss_mb_n{n}": v for n, v in workers.items()}
        for n, v in workers.items():
            if n > 1:
                summary_pss[f"pss_mb_per_extra_worker_n{n}"] = (v - workers[1]) / (n - 1)
                print(f"linked, {n} workers: +{(v - workers[1]) / (n - 1):,.0f} MB PSS per worker after the first")
    else:
        summary_pss = {}
    summary: Dict[str, Any] = dict(summary_pss)
    if "linked n2" in results and "linked n2 spacy-pool" in results:
        summary["spacy_pool_vs_ours_n2"] = (
            results["linked n2 spacy-pool"]["docs_per_second"] / results["linked n2"]["docs_per_second"]
        )
        print(f"spaCy's nlp.pipe(n_process=2) vs our pool: x{summary['spacy_pool_vs_ours_n2']:.2f} docs/s")
    for n in ("1", "2"):
        a, b = results.get(f"mentions n{n}"), results.get(f"linked n{n}")
        if a and b:
            summary[f"linker_overhead_n{n}"] = a["docs_per_second"] / b["docs_per_second"] - 1
            overhead = summary[f"linker_overhead_n{n}"]
            print(f"linker overhead with --n-process {n}: {overhead:+.0%} time per doc (target <= +30%)")
    if "linked n1" in results and "linked n2" in results:
        summary["speedup_n2"] = results["linked n2"]["docs_per_second"] / results["linked n1"]["docs_per_second"]
        print(f"--n-process 2 vs 1 (linked): x{summary['speedup_n2']:.2f}")
        if args.repeat > 1:  # the runs of one round ran one after the other
            pairs = zip(runs["linked n2"], runs["linked n1"])
            summary["speedup_n2_rounds"] = [a["docs_per_second"] / b["docs_per_second"] for a, b in pairs]
            print("  per round: " + ", ".join(f"x{v:.2f}" for v in summary["speedup_n2_rounds"]))
    spark, local2 = results.get("spark pair: linked spark local[2]"), results.get("spark pair: linked n2")
    if spark and local2:
        summary["spark_vs_n2"] = spark["docs_per_second"] / local2["docs_per_second"]
        print(f"Spark local[2] vs --n-process 2 (linked, {args.spark_docs} notes): x{summary['spark_vs_n2']:.2f}")
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
    summary["load_average_at_start"] = load_at_start
    summary["load_average_at_end"] = load
    print(f"load average at the end: {load[0]:.1f} on {os.cpu_count()} cores (other jobs share the machine)")
    meta = run_meta(prog, argv, notes=str(notes), linker=str(linker), mentions=" ".join(mentions))
    print(f"-> {write_results(args.out, {'meta': meta, 'results': results, 'summary': summary})}")


if __name__ == "__main__":
    main()
