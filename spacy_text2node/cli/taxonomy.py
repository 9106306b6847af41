"""`text2node taxonomy build|info`."""

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import typer
from wasabi import msg

from ..taxonomy import FORMATS, Taxonomy, load_taxonomy
from ._app import app, check_choice, check_out_dir, user_errors

taxonomy_app = typer.Typer(help="Build and inspect taxonomies.", no_args_is_help=True)
app.add_typer(taxonomy_app, name="taxonomy")

BUILD_FORMATS = [f for f in FORMATS if f != "dir"]
ON_ERROR = ("raise", "skip")


@taxonomy_app.command("build")
def build_cmd(
    source: str = typer.Argument(..., help="Input file or folder ('-' or any value for icd10cm, which needs none)."),
    out_dir: Path = typer.Argument(..., help="Directory to write the taxonomy to."),
    format: str = typer.Option(..., "--format", "-f", help=f"One of: {', '.join(BUILD_FORMATS)}."),
    on_error: str = typer.Option(
        "raise", "--on-error", help="'raise' stops at the first bad row; 'skip' leaves bad rows out and reports them."
    ),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the taxonomy."),
    subtree: Optional[List[str]] = typer.Option(
        None,
        "--subtree",
        help="Keep only the part under this concept (repeat or comma-separate for several; empty for all), "
        "e.g. an ICD-10-CM chapter '4'.",
    ),
) -> None:
    """Load a taxonomy from SOURCE and save it to OUT_DIR."""
    check_choice(format, "--format", BUILD_FORMATS)
    check_choice(on_error, "--on-error", ON_ERROR)
    check_out_dir(out_dir)
    kwargs = {} if format in ("icd10cm", "snomed-rf2", "ctd-medic") else {"name": name} if name else {}
    if format != "icd10cm":
        kwargs["on_error"] = on_error
    t0 = time.perf_counter()
    with user_errors("Could not build the taxonomy"):
        tax = load_taxonomy(None if format == "icd10cm" else source, format, **kwargs)
        subtree = [r for part in subtree or [] for r in part.split(",") if r]
        if subtree:
            missing = [r for r in subtree if r not in tax]
            if missing:
                msg.fail(
                    f"--subtree: {', '.join(missing)} not in the taxonomy. Give concept ids of the taxonomy "
                    "(e.g. an ICD-10-CM chapter '4' or block 'E08-E13').",
                    exits=1,
                )
            tax = tax.subtree(subtree)
        if name:
            tax.name = name
        tax.to_disk(out_dir)
    msg.good(f"{len(tax):,} concepts, {len(tax.roots):,} roots -> {out_dir} ({time.perf_counter() - t0:.1f}s)")
    meta: Dict[str, Any] = tax.meta
    if meta.get("skipped"):
        msg.warn(
            f"Skipped {meta['skipped']} bad rows or edges; first: " + "; ".join(meta.get("skipped_examples", [])[:5])
        )


@taxonomy_app.command("info")
def info_cmd(
    path: Path = typer.Argument(..., help="A taxonomy directory written by `taxonomy build`."),
    samples: int = typer.Option(5, "--samples", help="How many sample nodes to show."),
    as_json: bool = typer.Option(False, "--json", help="Print the info as JSON."),
) -> None:
    """Counts, depth histogram, roots and sample nodes of a saved taxonomy."""
    with user_errors("Could not read the taxonomy"):
        tax = Taxonomy.from_disk(path)
        info: Dict[str, Any] = tax.info(n_samples=samples)
    if as_json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return
    msg.divider(f"Taxonomy {info['name']!r}")
    rows = [
        (k, f"{info[k]:,}")
        for k in (
            "concepts",
            "is_a_edges",
            "multi_parent_concepts",
            "leaves",
            "synonyms",
            "definitions",
            "alternative_ids",
            "max_depth",
        )
    ]
    msg.table(rows)
    roots = info["roots"]
    msg.text(f"Roots ({len(roots)}): " + ", ".join(roots[:20]) + (" ..." if len(roots) > 20 else ""))
    msg.table([(d, f"{c:,}") for d, c in info["depth_histogram"].items()], header=("depth", "concepts"))
    msg.table(
        [(s["id"], s["label"][:60], ", ".join(s["parents"])) for s in info["samples"]],
        header=("id", "label", "parents"),
    )
