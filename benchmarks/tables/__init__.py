"""Markdown tables of the docs, generated from the results JSON files.

A markdown file marks each generated table with a region

    <!-- BEGIN bench:taxonomy -->
    (anything: replaced)
    <!-- END bench:taxonomy -->

and `python -m benchmarks tables README.md docs/benchmarks.md` rewrites every region
from benchmarks/results/ (`--check`: rewrite nothing, exit 1 if a region differs from
what the results give). Each table is followed by a line saying where its figures come
from: the command, date, machine and commit of the run, or, for figures carried over
from an earlier run, that run's command and the document that recorded them.

A table is a function `results folder -> markdown`, registered under its region name with
`@renderer(NAME)` in a module of this package (linking, embeddings, textcat, headline).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from benchmarks.tables import embeddings, headline, linking, textcat  # noqa: F401  (register the tables)
from benchmarks.tables._format import RENDERERS, TableError

__all__ = ["RENDERERS", "TableError", "fill", "render", "run"]

REGION = re.compile(
    r"(?P<begin><!-- BEGIN bench:(?P<name>[A-Za-z0-9_.-]+) -->)(?P<body>.*?)(?P<end><!-- END bench:(?P=name) -->)",
    re.S,
)
BEGIN = re.compile(r"<!-- BEGIN bench:([A-Za-z0-9_.-]+) -->")


def render(name: str, results: Path) -> str:
    if name not in RENDERERS:
        raise TableError(f"bench:{name} is no known table; the tables are: {', '.join(sorted(RENDERERS))}.")
    return RENDERERS[name](results)


def fill(text: str, results: Path, only: Optional[Sequence[str]] = None) -> Tuple[str, List[str]]:
    """`text` with every region rewritten from the results, and the names of the regions that changed."""
    changed: List[str] = []

    def replace(m: re.Match) -> str:
        name = m.group("name")
        if only and name not in only:
            return m.group(0)
        body = "\n\n" + render(name, results).rstrip("\n") + "\n\n"
        if body != m.group("body"):
            changed.append(name)
        return m.group("begin") + body + m.group("end")

    return REGION.sub(replace, text), changed


def run(files: Sequence[Path], results: Path, check: bool = False, only: Optional[Sequence[str]] = None) -> int:
    """Fill (or with check=True, only compare) the regions of each file; 1 when a check finds a stale region."""
    stale = False
    for given in files:
        text = Path(given).read_text(encoding="utf8")
        rel = os.path.relpath(given)
        path = given if rel.startswith("..") else rel  # as the reader would type it
        regions = [m.group("name") for m in REGION.finditer(text)]
        unclosed = [n for n in BEGIN.findall(text) if n not in regions]
        if unclosed:
            name = unclosed[0]
            print(f"{path}: <!-- BEGIN bench:{name} --> without its <!-- END bench:{name} -->.", file=sys.stderr)
            return 2
        try:
            new, changed = fill(text, Path(results), only)
        except TableError as e:
            print(f"{path}: {e}", file=sys.stderr)
            return 2
        if check:
            for name in changed:
                print(f"{path}: bench:{name} is stale (run `python -m benchmarks tables {path}`).")
            stale = stale or bool(changed)
        elif changed:
            Path(given).write_text(new, encoding="utf8")
            print(f"{path}: rewrote {', '.join(f'bench:{n}' for n in changed)}")
        else:
            print(f"{path}: {len(regions)} region(s), all up to date")
    return 1 if stale else 0
