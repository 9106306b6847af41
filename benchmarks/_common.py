"""Helpers shared by the benchmarks and their child processes.

Standard library only: the footprint benchmark runs its worker under a torch-free
interpreter, and the memory figures of every child must not include this module's imports.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"


def _status_mb(key: str) -> Optional[float]:
    """A memory line of /proc/self/status (e.g. "VmHWM") in MB, None where unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak RSS of this process in MB, from VmHWM.

    ru_maxrss is inherited from the forking parent across fork + exec on Linux, so a
    child started by a big parent would report the parent's peak.
    """
    mb = _status_mb("VmHWM")
    return mb if mb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float:
    """Current RSS of this process in MB, from VmRSS (NaN where /proc is unavailable)."""
    mb = _status_mb("VmRSS")
    return mb if mb is not None else float("nan")


def child_command(name: str, *args: str, python: Optional[str] = None) -> List[str]:
    """The command line of a child program `benchmarks/_children/<name>.py` (run from the repository root)."""
    return [python or sys.executable, "-m", f"benchmarks._children.{name}", *args]


# run facts ----------------------------------------------------------------------------
def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> Optional[float]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine() -> Dict[str, Any]:
    """Facts about the machine a figure was measured on."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def git_commit() -> Dict[str, Any]:
    """HEAD of the repository and whether tracked files differ from it."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": _git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def command_line(prog: str, argv: Sequence[str]) -> str:
    return " ".join([prog, *(shlex.quote(a) for a in argv)])


def run_meta(prog: str, argv: Sequence[str], **extra: Any) -> Dict[str, Any]:
    """The "meta" block of a results file: command, date, machine, git commit, load average."""
    return {
        "command": command_line(prog, argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "git": git_commit(),
        "load_avg_at_end": list(os.getloadavg()),
        **extra,
    }


def write_results(path: Path, data: Dict[str, Any]) -> Path:
    """Write a results file (indented JSON, "meta" first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = {"meta": data["meta"], **{k: v for k, v in data.items() if k != "meta"}} if "meta" in data else data
    path.write_text(json.dumps(ordered, indent=2) + "\n", encoding="utf8")
    return path


def saved_component_cfg(pipeline: Path, name: str) -> Dict[str, Any]:
    """The settings a component of a saved pipeline folder was written with (its `cfg` file,
    read without loading the pipeline); empty when it has none."""
    path = Path(pipeline) / name / "cfg"
    return json.loads(path.read_text(encoding="utf8")) if path.exists() else {}


def script_prog(file: str) -> str:
    """How a benchmark module was started, for its results' command line."""
    return f"python {Path(file).resolve().relative_to(REPO)}"
