"""Load test of `text2node serve` on 127.0.0.1 (issue 20), and the review page's screenshot for docs/serve.md.

    python -m benchmarks serve                      # 2,000 requests, 8 clients, 1 and 2 workers
    python -m benchmarks serve --screenshot docs/img/review.png

The pipeline: training/P1/model-calibrated when it exists (the project's trained linker), else a linker
over the full ICD-10-CM built here once (GloVe 6B 50-d, untrained mapper: links come mostly from the
lexical channel) and kept in benchmarks/results/serve_icd_linker. Requests are single sentences of
MTSamples notes (a fixed list where the data is absent), sent by a small asyncio + httpx load generator
running on the same machine. Bounded in count (--requests) and time (--max-seconds per run).
The server is `text2node serve` in a subprocess (benchmarks/_children/text2node.py), its log in
benchmarks/results/serve_w<N>.log. Writes benchmarks/results/serve.json and prints a table.
"""

import argparse
import asyncio
import csv
import gzip
import os
import platform
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import httpx
import numpy as np

if not __package__:  # run as `python benchmarks/bench_serve.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO, RESULTS, child_command, run_meta, script_prog, write_results  # noqa: E402

NAME = "serve"
TRAINED = REPO / "training" / "P1" / "model-calibrated"
BUILT = RESULTS / "serve_icd_linker"
MTSAMPLES = (
    Path(os.environ.get("TEXT2NODE_SHARED_DATA", REPO.parent / "shared" / "data")) / "mtsamples" / "mtsamples.csv.gz"
)
FALLBACK = [
    "She has a history of hypertension and type 2 diabetes mellitus.",
    "No chest pain or shortness of breath.",
    "The patient underwent a transurethral resection of the prostate.",
    "Final diagnosis was adenocarcinoma of the prostate.",
    "He was admitted with community acquired pneumonia.",
    "There is no evidence of deep vein thrombosis.",
]


def clean_note(text: str) -> str:
    """MTSamples writes section breaks as `,SECTION:,`: put them on lines of their own."""
    text = re.sub(
        r"(^|,)\s*([A-Z][A-Z0-9 /&()-]{2,}:)\s*,?\s*", lambda m: ("\n" if m.group(1) else "") + m.group(2) + " ", text
    )
    return re.sub(r"[ \t]+", " ", text).strip()


def mtsamples_notes() -> List[Dict[str, str]]:
    if not MTSAMPLES.exists():
        return []
    with gzip.open(MTSAMPLES, "rt", encoding="utf8", newline="") as f:
        return list(csv.DictReader(f))


def sentences(notes: List[Dict[str, str]], n: int = 500) -> List[str]:
    """Single sentences (6-40 words) of the first notes, in order; the fixed list without the data."""
    out: List[str] = []
    for row in notes:
        for sent in re.split(r"(?<=[.!?])\s+", clean_note(row.get("transcription") or "").replace("\n", " ")):
            if 6 <= len(sent.split()) <= 40:
                out.append(sent)
                if len(out) >= n:
                    return out
    return out or FALLBACK


def pipeline_dir() -> Path:
    """The trained linker when there is one, else the ICD-10-CM linker built (once) here."""
    if TRAINED.exists():
        return TRAINED
    if not (BUILT / "config.cfg").exists():
        from spacy_text2node import Taxonomy
        from spacy_text2node.linker_api import build_linker_nlp
        from spacy_text2node.vectors.io import glove_6b_50d
        from spacy_text2node.vectors.pipeline import build_vectors_pipeline

        print(f"Building an ICD-10-CM linker (untrained mapper, GloVe 6B 50-d) in {BUILT} ...", flush=True)
        words, matrix = glove_6b_50d(max_words=100_000)
        nlp = build_linker_nlp(
            Taxonomy.from_icd10cm(),
            None,
            build_vectors_pipeline(words, matrix, subwords=None),
            spans="ents",
            architecture="cnn",
        )
        nlp.to_disk(BUILT)
    return BUILT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`text2node serve` in a subprocess on 127.0.0.1."""

    def __init__(self, model: Path, workers: int, mentions: str, extra: Sequence[str] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            "serve",
            str(model),
            "--mentions",
            mentions,
            "--workers",
            str(workers),
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *extra,
        ]
        self.log = open(RESULTS / f"serve_w{workers}.log", "w")
        self.proc = subprocess.Popen(
            child_command("text2node", *args), stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO
        )

    def wait(self, startup_s: float = 600.0) -> Dict[str, Any]:
        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"text2node serve exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return httpx.get(self.url + "/info", timeout=10).json()
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"text2node serve did not start within {startup_s:.0f} s; see {self.log.name}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


async def load(url: str, texts: List[str], n_requests: int, concurrency: int, max_seconds: float) -> Dict[str, Any]:
    """Send n_requests POST /link, one sentence each, from `concurrency` clients; stop early at max_seconds."""
    latencies: List[float] = []
    errors: Dict[str, int] = {}
    spans = 0
    next_i = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        start = time.perf_counter()
        deadline = start + max_seconds

        async def worker() -> None:
            nonlocal next_i, spans
            while next_i < n_requests and time.perf_counter() < deadline:
                i = next_i
                next_i += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/link", json={"text": texts[i % len(texts)], "id": str(i)})
                    if r.status_code == 200:
                        spans += len(r.json()["spans"])
                    else:
                        errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                except httpx.HTTPError as e:
                    errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p90_ms": round(float(np.percentile(ms, 90)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "spans": spans,
        "stopped_early": len(latencies) < n_requests,
    }


def screenshot(url: str, note: str, note_id: str, out: Path) -> None:
    """The review page with `note` linked and its first linked mention clicked, as a PNG."""
    from playwright.sync_api import sync_playwright

    from spacy_text2node.serve.headless import CHROMIUM_ARGS

    args = list(CHROMIUM_ARGS)
    with sync_playwright() as pw:
        profile = RESULTS / "chromium-profile"
        ctx = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path="/usr/bin/chromium",
            headless=True,
            args=args,
            viewport={"width": 1280, "height": 900},
        )
        page = ctx.new_page()
        page.goto(url + "/")
        page.wait_for_function("document.querySelector('#info').textContent.includes('concepts')")
        page.evaluate("([t, id]) => { document.querySelector('#note').value = t; state.noteId = id; }", [note, note_id])
        page.click("#link-btn")
        page.wait_for_selector("#render mark.entity")
        linked = page.locator("#render mark.entity:not(.nil)")
        target = linked.nth(min(1, linked.count() - 1))
        target.click(position={"x": 6, "y": 6})
        page.wait_for_function("document.querySelectorAll('#path li').length > 1")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        ctx.close()
    print(f"screenshot: {out} ({out.stat().st_size / 1024:.0f} KB)")


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    prog = prog or script_prog(__file__)
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2_000, help="per worker setting; 0: no load test")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--mentions", default="ruler", choices=["ruler", "noun_chunks", "ner"])
    ap.add_argument("--max-seconds", type=float, default=300.0, help="time bound of each load run")
    ap.add_argument("--screenshot", type=Path, default=None, help="also save the review page with an MTSamples note")
    ap.add_argument("--note-index", type=int, default=30, help="the MTSamples row shown in the screenshot")
    ap.add_argument("--out", type=Path, default=RESULTS / "serve.json")
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    model = pipeline_dir()
    notes = mtsamples_notes()
    texts = sentences(notes)
    if args.screenshot:
        if not notes:
            raise SystemExit(f"--screenshot shows an MTSamples note: {MTSAMPLES} is absent.")
        server = Server(model, 1, args.mentions, ["--negation"])
        try:
            server.wait()
            row = notes[args.note_index]
            screenshot(server.url, clean_note(row["transcription"]), f"mtsamples-{row['note_id']}", args.screenshot)
        finally:
            server.stop()
    runs: List[Dict[str, Any]] = []
    info: Dict[str, Any] = {}
    for workers in args.workers if args.requests else []:
        server = Server(model, workers, args.mentions)
        try:
            t0 = time.perf_counter()
            info = server.wait()
            startup = time.perf_counter() - t0
            load1 = os.getloadavg()[0]
            asyncio.run(load(server.url, texts, 50, args.concurrency, 60))  # warm-up, not counted
            result = asyncio.run(load(server.url, texts, args.requests, args.concurrency, args.max_seconds))
            result.update(
                workers=workers,
                startup_s=round(startup, 1),
                loadavg_before=round(load1, 2),
                loadavg_after=round(os.getloadavg()[0], 2),
            )
            runs.append(result)
        finally:
            server.stop()
    if not runs:
        return
    report = {
        "meta": run_meta(prog, argv),
        "pipeline": str(model),
        "trained": model == TRAINED,
        "mentions": args.mentions,
        "pipeline_components": info["pipeline"],
        "taxonomy": info["taxonomy"],
        "concurrency": args.concurrency,
        "sentences": len(texts),
        "mean_sentence_chars": round(float(np.mean([len(t) for t in texts])), 1),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "versions": info["versions"],
        "runs": runs,
    }
    write_results(args.out, report)
    print(
        f"\n{report['taxonomy']['name']} ({report['taxonomy']['size']:,} concepts), --mentions {args.mentions}, "
        f"{args.concurrency} clients, single sentences (mean {report['mean_sentence_chars']} chars), "
        f"{report['cpus']} CPUs"
    )
    print(
        f"{'workers':>7} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'errors':>6} {'load':>9}"
    )
    for r in runs:
        print(
            f"{r['workers']:>7} {r['requests']:>8} {r['requests_per_s']:>7} {r['p50_ms']:>7} {r['p90_ms']:>7} "
            f"{r['p99_ms']:>7} {r['max_ms']:>7} {r['errors']:>6} {r['loadavg_before']:>4}/{r['loadavg_after']:<4}"
        )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
