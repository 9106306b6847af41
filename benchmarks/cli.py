"""The `python -m benchmarks` command line: one subcommand per benchmark module, and `tables`.

A benchmark module names its subcommand (`NAME`) and keeps its own argparse options:
`python -m benchmarks linker --help` prints them. The first paragraph of the module's
docstring is its help here.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import List, Optional

import typer

from benchmarks import (
    bench_ann,
    bench_bulk,
    bench_documents,
    bench_footprint,
    bench_linker,
    bench_node2vec,
    bench_serve,
    bench_taxonomy,
    bench_textcat,
    bench_vectors,
    tables,
)
from benchmarks._common import REPO, RESULTS

BENCHMARKS = (
    bench_ann,
    bench_bulk,
    bench_documents,
    bench_footprint,
    bench_linker,
    bench_node2vec,
    bench_serve,
    bench_taxonomy,
    bench_textcat,
    bench_vectors,
)
PROG = "python -m benchmarks"

app = typer.Typer(
    name="benchmarks",
    help="Benchmarks of spacy-text2node. Each writes benchmarks/results/<name>.json; `tables` fills the docs.",
    no_args_is_help=True,
    add_completion=False,
)


def register(module: ModuleType) -> None:
    """Add `module.NAME` as a subcommand that hands every argument to `module.main`."""
    summary = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())

    def command(ctx: typer.Context) -> None:
        module.main(list(ctx.args), prog=f"{PROG} {module.NAME}")

    command.__doc__ = summary
    app.command(
        module.NAME,
        help=f"{summary} (`{PROG} {module.NAME} --help` for its options)",
        short_help=summary,
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    )(command)


for _module in BENCHMARKS:
    register(_module)


@app.command("tables")
def tables_command(
    files: Optional[List[Path]] = typer.Argument(
        None,
        help="markdown files with <!-- BEGIN bench:NAME --> regions (default: README.md, docs/*.md with one)",
    ),
    results: Path = typer.Option(RESULTS, "--results", help="folder of the results JSON files"),
    check: bool = typer.Option(False, "--check", help="change nothing; exit 1 when a region is stale"),
    names: Optional[List[str]] = typer.Option(None, "--only", help="fill only these regions"),
) -> None:
    """Fill the markdown tables between <!-- BEGIN bench:NAME --> and <!-- END bench:NAME --> from the results."""
    if not files:
        docs = sorted(p for p in (REPO / "docs").glob("*.md") if "<!-- BEGIN bench:" in p.read_text(encoding="utf8"))
        files = [REPO / "README.md", *docs]
    code = tables.run(files, results, check=check, only=names)
    raise typer.Exit(code)
