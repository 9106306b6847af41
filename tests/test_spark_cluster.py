"""`text2node link --backend spark` on a real Spark standalone cluster on this machine: one master and
two workers of one core each, started by scripts/spark-standalone.sh (pyspark's own bin/spark-class),
all bound to 127.0.0.1. The executors write the output; it must hold the local backend's records,
every record accounted for, also when a worker is killed while one of its tasks runs."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pyspark", reason="needs the spark extra")

from conftest import FIXTURES, REPO

from spacy_text2node.bulk import build_clinical_pipeline, link_documents, read_output

pytestmark = [
    pytest.mark.slow,
    # one worker of a parallel run (pytest-xdist) runs both tests: they share one cluster run
    pytest.mark.xdist_group("spark_cluster"),
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime"),
]

NOTES = FIXTURES / "bulk_notes.jsonl"
SCRIPT = REPO / "scripts" / "spark-standalone.sh"
# as the console script runs it: the package reads sys.argv[0] on import (the torch policy of `text2node link`)
CLI = "import sys; sys.argv[0]='text2node'; from spacy_text2node.cli import app; import spacy_text2node.cli.link; app()"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The master URL and the state folder (pids/, work-N/) of a running cluster; stopped afterwards."""
    state = tmp_path_factory.mktemp("spark_cluster")
    port = 7077
    if not _port_free(port):  # another cluster on this machine: any free port will do
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    env = dict(os.environ, PYTHON=sys.executable, SPARK_MASTER_PORT=str(port), SPARK_WORKERS="2")
    started = subprocess.run(["bash", str(SCRIPT), "start", str(state)], env=env, capture_output=True, text=True)
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        assert url == f"spark://127.0.0.1:{port}"
        yield url, state
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def ruler_dir(tiny_taxonomy, tmp_path_factory):
    path = tmp_path_factory.mktemp("spark_cluster_model") / "ruler_pipeline"
    build_clinical_pipeline(mentions="ruler", taxonomy=tiny_taxonomy).to_disk(path)
    return path


def link_on_cluster(url, model, inp, out, *args):
    """Start `text2node link --backend spark --spark-master URL` (a process of its own, as a user runs it)."""
    cmd = [sys.executable, "-c", CLI, "link", str(model), str(inp), str(out), "--backend", "spark"]
    cmd += ["--spark-master", url, "--no-progress", "--stats-json", f"{out}.stats.json", *args]
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def check_like_local(model, inp, out, *args):
    """The cluster's output holds the local backend's records (by id: order across parts is not kept),
    each id once; its errors file is the local one byte for byte; in = written + errors."""
    local = out.parent / "local.jsonl"
    link_documents(model, inp, local, progress=False, **dict(args))
    expected = read_output(local)
    got = read_output(out)
    assert len({r["id"] for r in got}) == len(got), "an id is in the output more than once"
    assert {r["id"]: r for r in got} == {r["id"]: r for r in expected}
    assert Path(f"{out}.errors.jsonl").read_bytes() == Path(f"{local}.errors.jsonl").read_bytes()
    stats = json.loads(Path(f"{out}.stats.json").read_text())
    assert stats["balanced"] and stats["n_in"] == stats["n_written"] + stats["n_errors"]
    assert stats["n_written"] == len(expected) and stats["n_spans"] == sum(len(r["spans"]) for r in expected) > 0
    return stats


def _executor_logs(state: Path, worker: int):
    """The stderr logs of worker N's executors for the newest application."""
    apps = sorted((state / f"work-{worker}").glob("app-*"))
    return list(apps[-1].glob("*/stderr")) if apps else []


def _running_tasks(state: Path, worker: int):
    """The task ids that worker N's executor has started and not finished (from its log)."""
    text = "".join(p.read_text(errors="replace") for p in _executor_logs(state, worker))
    started = set(re.findall(r"Running task \S+ in stage \S+ \(TID (\d+)\)", text))
    return started - set(re.findall(r"Finished task \S+ in stage \S+ \(TID (\d+)\)", text))


@pytest.fixture(scope="module")
def killed_run(cluster, ruler_dir, tmp_path_factory):
    """One `text2node link --backend spark` run on the cluster, of the fixture's 20 lines (8 of them bad)
    and 4,000 notes of 5 sentences, two Spark jobs of 2,000 documents; worker 1 is killed (SIGKILL)
    while its executor runs a task of the second job, after the first job's parts are committed.
    (One run serves both tests: each start of a driver and its executors costs tens of seconds.)"""
    url, state = cluster
    tmp = tmp_path_factory.mktemp("killed_run")
    texts = [json.loads(line)["text"] for line in NOTES.read_bytes().splitlines()[:6]]
    inp = tmp / "notes.jsonl"
    with open(inp, "wb") as f:
        f.write(NOTES.read_bytes())  # its bad lines give the errors file entries
        for i in range(4_000):  # a task of 1,000 of them runs for seconds
            text = " ".join(texts[(i + k) % len(texts)] for k in range(5))
            f.write(json.dumps({"id": f"g{i:05d}", "text": text}).encode() + b"\n")
    out = tmp / "linked.jsonl"
    t0 = time.monotonic()
    proc = link_on_cluster(url, ruler_dir, inp, out, "--max-chars", "340", "--spark-chunk", "2000")
    try:
        deadline = t0 + 240
        while not (list(out.glob("part-*.json")) and _running_tasks(state, 1)):
            assert proc.poll() is None, f"the run ended before worker 1 was killed:\n{proc.communicate()[0][-3000:]}"
            assert time.monotonic() < deadline, "worker 1 never ran a task after the first job committed"
            time.sleep(0.1)
        killed = int((state / "pids" / "worker-1.pid").read_text())
        os.kill(killed, signal.SIGKILL)
        log = proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"cluster run: {time.monotonic() - t0:.1f} s")
    assert proc.returncode == 0, log[-3000:]
    return dict(inp=inp, out=out, state=state, killed=killed)


def test_cluster_run_equals_local_backend(killed_run, ruler_dir):
    """The executors wrote JSON-lines parts (a .jsonl OUTPUT is a folder on Spark) holding the local
    backend's records; the errors file is the local one; in = written + errors."""
    out = killed_run["out"]
    assert out.is_dir() and list(out.glob("part-*.json")) and not (out / "_staging").exists()
    stats = check_like_local(ruler_dir, killed_run["inp"], out, ("max_chars", 340))
    assert (stats["n_written"], stats["n_errors"]) == (4_012, 8)  # 12 good fixture lines + 4,000 notes


def test_worker_killed_mid_run_loses_and_duplicates_nothing(killed_run):
    """Spark retried the killed worker's task on worker 2; the output has each input id exactly once."""
    with pytest.raises(ProcessLookupError):
        os.kill(killed_run["killed"], 0)  # worker 1 is gone
    retried = "".join(p.read_text(errors="replace") for p in _executor_logs(killed_run["state"], 2))
    assert re.search(r"Running task \d+\.[1-9]\d* in stage", retried), "no task was retried on worker 2"
    ids = [r["id"] for r in read_output(killed_run["out"])]
    expected = [f"n{i:02d}" for i in range(1, 13)] + [f"g{i:05d}" for i in range(4_000)]
    assert len(ids) == len(expected) and sorted(ids) == sorted(expected)
