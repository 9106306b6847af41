"""Run chains of the project's commands side by side (project steps that group others).

    python scripts/run_steps.py "train-P3 calibrate-P3" "train-P1 calibrate-P1" train-ner \
        --jobs 2 --vars.seed 0 --vars.epochs 6 ...

Each argument is a chain: project commands run in that order. Up to `--jobs` chains run
at once, started in the order given (longest first keeps the cores busy to the end).
Every command is run as `spacy project run` would run it: its deps must exist, it is
skipped when project.lock says nothing changed, and project.lock is updated when it
succeeds, so `spacy project run train-P3` afterwards skips it too. Each command's output
goes to `LOG_DIR/<command>.log`; a line a minute says what is running.

A training step here gains nothing from a second thread (`spacy train` of the linker ran
in the same time on one thread as on two), so each command gets `cores // jobs` threads
(OMP / OpenBLAS / MKL), unless OMP_NUM_THREADS is set already.

Weasel substitutes `${vars.*}` in the project step's own script, not in this script's
reading of project.yml, so the step must pass on every variable its commands use
(`--vars.NAME ${vars.NAME}`); a variable that is missing is an error naming it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List

import srsly
from weasel.cli.run import check_rerun, update_lockfile
from weasel.util import load_project_config, parse_config_overrides, split_command

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def missing_vars(project_dir: Path, names: List[str], overrides: Dict[str, Any]) -> List[str]:
    """The variables the named commands use that the overrides do not give."""
    raw = {c["name"]: c for c in srsly.read_yaml(project_dir / "project.yml").get("commands", [])}
    used = set()
    for name in names:
        used.update(re.findall(r"\$\{vars\.(\w+)\}", json.dumps(raw[name])))
    return sorted(v for v in used if f"vars.{v}" not in overrides)


def last_line(path: Path) -> str:
    """The last non-empty line of a log, progress bars' carriage returns resolved."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 4096))
            tail = f.read().decode("utf8", "replace")
    except OSError:
        return ""
    lines = [ANSI.sub("", line).split("\r")[-1].strip() for line in tail.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][:100] if lines else ""


class Runner:
    def __init__(self, project_dir: Path, config: Dict[str, Any], log_dir: Path, jobs: int) -> None:
        self.project_dir = project_dir
        self.commands = {c["name"]: c for c in config.get("commands", [])}
        self.log_dir = log_dir
        self.lock = threading.Lock()
        self.failed: List[str] = []
        self.running: Dict[str, float] = {}
        self.report: List[tuple] = []
        self.env = dict(os.environ)
        if "OMP_NUM_THREADS" not in os.environ:
            threads = str(max(1, (os.cpu_count() or 1) // jobs))
            self.env.update({name: threads for name in THREAD_VARS})

    def log(self, text: str) -> None:
        with self.lock:
            print(text, flush=True)

    def run_command(self, name: str) -> bool:
        cmd = self.commands[name]
        for dep in cmd.get("deps", []):
            if not (self.project_dir / dep).exists():
                self.log(f"✘ {name}: missing dependency {dep} (run the step that makes it first)")
                self.report.append((name, "failed", 0.0))
                return False
        with self.lock:  # another chain may be rewriting project.lock (update_lockfile)
            rerun = check_rerun(self.project_dir, cmd)
        if not rerun:
            self.log(f"ℹ Skipping '{name}': nothing changed")
            self.report.append((name, "skipped", 0.0))
            return True
        log_path = self.log_dir / f"{name}.log"
        self.log(f"▶ {name} (output: {log_path})")
        start = time.perf_counter()
        with self.lock:
            self.running[name] = start
        ok = True
        with log_path.open("w", encoding="utf8") as out:
            for line in cmd["script"]:
                args = split_command(line)
                # as weasel's run_commands: this interpreter and its pip, not whichever is on PATH
                if args and args[0] in ("python", "python3"):
                    args[0] = sys.executable
                elif args and args[0] in ("pip", "pip3"):
                    args = [sys.executable, "-m", "pip", *args[1:]]
                out.write(f"$ {line}\n")
                out.flush()
                code = subprocess.call(args, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.project_dir)
                if code != 0:
                    ok = False
                    break
        minutes = (time.perf_counter() - start) / 60
        with self.lock:
            del self.running[name]
            if ok:
                update_lockfile(self.project_dir, cmd)
        if ok:
            self.log(f"✔ {name} in {minutes:.1f} min")
        else:
            tail = log_path.read_text(encoding="utf8", errors="replace").splitlines()[-30:]
            self.log(f"✘ {name} failed after {minutes:.1f} min; the end of {log_path}:\n" + "\n".join(tail))
        self.report.append((name, "ran" if ok else "failed", minutes))
        return ok

    def run_chain(self, chain: List[str]) -> None:
        for name in chain:
            if self.failed:
                self.report.append((name, "not run", 0.0))
                continue
            if not self.run_command(name):
                self.failed.append(name)

    def heartbeat(self, done: threading.Event, every: float) -> None:
        while not done.wait(every):
            with self.lock:
                running = dict(self.running)
            now = time.perf_counter()  # the logs are read outside the lock
            states = [
                f"{name} {(now - t) / 60:.0f} min: {last_line(self.log_dir / f'{name}.log')}"
                for name, t in running.items()
            ]
            if states:
                self.log("  … " + "\n  … ".join(states))


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "chains", nargs="+", help="Chains of project commands, each one argument: 'a b c' runs a, b, c in turn."
    )
    ap.add_argument("--jobs", type=int, default=2, help="Chains run at once.")
    ap.add_argument("--project-dir", type=Path, default=Path("."))
    ap.add_argument("--log-dir", type=Path, default=Path("logs"), help="Where each command's output goes.")
    ap.add_argument("--heartbeat", type=float, default=60.0, help="Seconds between the lines that say what runs.")
    args, extra = ap.parse_known_args(argv)
    overrides = parse_config_overrides(extra)
    unknown = [k for k in overrides if not k.startswith("vars.")]
    if unknown:
        ap.error(f"only --vars.NAME VALUE overrides are passed on; got {', '.join(unknown)}")
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}")
    project_dir = args.project_dir.resolve()
    config = load_project_config(project_dir, overrides=overrides)
    chains = [chain.split() for chain in args.chains]
    names = [name for chain in chains for name in chain]
    known = {c["name"] for c in config.get("commands", [])}
    unknown_cmds = [n for n in names if n not in known]
    if unknown_cmds:
        ap.error(f"not commands of {project_dir / 'project.yml'}: {', '.join(unknown_cmds)}")
    missing = missing_vars(project_dir, names, overrides)
    if missing:
        ap.error(
            "the project step must pass on the variables its commands use; add "
            + " ".join(f"--vars.{v} ${{vars.{v}}}" for v in missing)
        )
    log_dir = args.log_dir if args.log_dir.is_absolute() else project_dir / args.log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    runner = Runner(project_dir, config, log_dir, args.jobs)
    done = threading.Event()
    beat = threading.Thread(target=runner.heartbeat, args=(done, args.heartbeat), daemon=True)
    beat.start()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(runner.run_chain, chains))
    done.set()
    for name, state, minutes in runner.report:
        print(f"  {name:<24} {state:<8} {minutes:5.1f} min" if state == "ran" else f"  {name:<24} {state}")
    if runner.failed:
        print(f"✘ failed: {', '.join(runner.failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
