"""Formatting helpers and the registry of the tables (`@renderer(NAME)`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

Renderer = Callable[[Path], str]
RENDERERS: Dict[str, Renderer] = {}


class TableError(Exception):
    """A region names no known table, or its results file is missing or incomplete."""


def renderer(name: str) -> Callable[[Renderer], Renderer]:
    def add(func: Renderer) -> Renderer:
        RENDERERS[name] = func
        return func

    return add


def load(results: Path, filename: str) -> Dict[str, Any]:
    path = results / filename
    if not path.exists():
        raise TableError(f"{path} does not exist: run the benchmark that writes it first.")
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError as e:
        raise TableError(f"{path} is not valid JSON ({e}).") from e
    if not isinstance(data, dict):
        raise TableError(f"{path}: expected a JSON object.")
    return data


def num(value: Any, digits: int = 0) -> str:
    """A number with thousands separators and `digits` decimals; "-" for a missing value."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def ratio(value: Optional[float], digits: int = 2, suffix: str = "x") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: Optional[str] = None) -> str:
    """A markdown table; `align` has one letter per column (l or r; default: the first l, the rest r)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def provenance(meta: Dict[str, Any]) -> str:
    """The line under a table: where its figures come from."""
    if not meta:
        return "_Source: a results file without run facts._"
    prov = meta.get("provenance")
    if prov:
        command = f"`{prov['command']}`" if prov.get("command") else "an earlier run"
        when = f" ({prov['measured']})" if prov.get("measured") else ""
        return f"_Measured in an earlier run{when}: {command}; figures as recorded in {prov['source']}._"
    parts = [f"`{meta['command']}`" if meta.get("command") else "a benchmark run"]
    if meta.get("date"):
        parts.append(str(meta["date"])[:10])
    mach = meta.get("machine") or {}
    if mach:
        parts.append(f"{mach.get('cpus')} CPUs ({mach.get('cpu_model')}), Python {mach.get('python')}")
    git = meta.get("git") or {}
    if git.get("commit"):
        parts.append(f"commit {git['commit'][:7]}" + (" with local changes" if git.get("dirty") else ""))
    load_avg = meta.get("load_avg_at_end")
    if load_avg:
        parts.append(f"load average {load_avg[0]:.1f} at the end")
    return "_" + "; ".join(parts) + "._"


def need(data: Dict[str, Any], *keys: str, where: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            raise TableError(f"{where}: no {'/'.join(keys)} in the results file.")
        data = data[key]
    return data
