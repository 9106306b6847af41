"""Helpers shared by the benchmark scripts (run as `python benchmarks/<name>.py`)."""

import resource
from pathlib import Path
from typing import Optional


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
