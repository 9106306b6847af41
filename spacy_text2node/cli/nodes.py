"""`text2node embed-nodes` and `text2node nodes eval`: node2vec vectors for a taxonomy."""

import json
import time
from pathlib import Path

import typer
from wasabi import msg

from ..nodes import NodeVectors, embed_nodes, parent_report
from ..taxonomy import Taxonomy
from ._app import app, check_out_dir, user_errors

nodes_app = typer.Typer(help="Node vectors: evaluate saved node2vec vectors.", no_args_is_help=True)
app.add_typer(nodes_app, name="nodes")


def _load_taxonomy(path: Path) -> Taxonomy:
    with user_errors("Could not read the taxonomy"):
        return Taxonomy.from_disk(path)


def _check_has_edges(tax: Taxonomy, path: Path) -> None:
    """Fail when the taxonomy has no is-a edge: node2vec would have nothing to walk."""
    if not any(tax.parent_indices(i) for i in range(len(tax))):
        msg.fail(
            f"{path}: taxonomy {tax.name!r} has no is-a edges ({len(tax):,} concepts, all roots), so node2vec "
            "cannot walk it and every vector would stay random. Check that its source gives parents "
            "(e.g. a CSV 'parents' column) and rebuild it with `text2node taxonomy build`.",
            exits=1,
        )


@app.command("embed-nodes")
def embed_nodes_cmd(
    taxonomy_dir: Path = typer.Argument(..., help="A taxonomy directory written by `text2node taxonomy build`."),
    out_dir: Path = typer.Argument(..., help="Directory to write vectors.npy, nodes.json and cfg.json to."),
    dim: int = typer.Option(128, "--dim", help="Vector size."),
    p: float = typer.Option(1.0, "--p", help="Return parameter (> 0)."),
    q: float = typer.Option(0.5, "--q", help="In-out parameter (> 0; < 1 explores outwards)."),
    walk_length: int = typer.Option(80, "--walk-length", help="Nodes per walk (>= 2)."),
    num_walks: int = typer.Option(10, "--num-walks", help="Walks started from every node."),
    window: int = typer.Option(10, "--window", help="Skip-gram context size on each side."),
    epochs: int = typer.Option(1, "--epochs", help="Passes over the walks."),
    negative: int = typer.Option(5, "--negative", help="Noise nodes per centre position."),
    sample: float = typer.Option(1e-3, "--sample", help="Subsampling threshold for frequent nodes (0 = off)."),
    workers: int = typer.Option(2, "--workers", help="Threads (1 = fully deterministic for a seed)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    directed: bool = typer.Option(
        False, "--directed", help="Walk child -> parent edges only (default: both directions)."
    ),
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Report the parent MRR of the result."),
) -> None:
    """node2vec vectors for every concept of TAXONOMY_DIR, saved to OUT_DIR."""
    check_out_dir(out_dir)
    tax = _load_taxonomy(taxonomy_dir)
    _check_has_edges(tax, taxonomy_dir)
    t0 = time.perf_counter()
    with user_errors("Could not compute node vectors"):
        nv = embed_nodes(
            tax,
            dim=dim,
            p=p,
            q=q,
            walk_length=walk_length,
            num_walks=num_walks,
            window=window,
            epochs=epochs,
            negative=negative,
            sample=sample,
            workers=workers,
            seed=seed,
            undirected=not directed,
            progress=True,
        )
    elapsed = time.perf_counter() - t0
    with user_errors("Could not save the node vectors"):
        if evaluate:
            report = parent_report(tax, nv)
            nv.cfg["quality"] = report
        nv.to_disk(out_dir)
    stats = nv.cfg["stats"]
    msg.good(
        f"{len(nv):,} x {nv.dim} node vectors -> {out_dir} in {elapsed:.1f}s "
        f"(walks {stats['walks_s']:.1f}s, training {stats['train_s']:.1f}s, {stats['workers']} workers)"
    )
    if stats["isolated_nodes"]:
        msg.warn(f"{stats['isolated_nodes']:,} isolated nodes kept their random initial vectors.")
    if evaluate:
        msg.info(
            f"parent MRR {report['parent_mrr']:.4f}, hits@1 {report['parent_hits@1']:.3f}, "
            f"hits@10 {report['parent_hits@10']:.3f} ({report['n_samples']:,} sampled nodes)"
        )


@nodes_app.command("eval")
def eval_cmd(
    taxonomy_dir: Path = typer.Argument(..., help="The taxonomy directory the vectors were made from."),
    vectors_dir: Path = typer.Argument(..., help="A node-vector directory written by `embed-nodes`."),
    samples: int = typer.Option(2000, "--samples", help="Nodes with a parent to sample."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Parent MRR of saved node vectors: how near each sampled node's parent ranks."""
    tax = _load_taxonomy(taxonomy_dir)
    with user_errors("Could not evaluate the node vectors"):
        nv = NodeVectors.from_disk(vectors_dir, taxonomy=tax)
        report = parent_report(tax, nv, n_samples=samples, seed=seed)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    msg.table([(k, f"{v:.4f}" if isinstance(v, float) else f"{v:,}") for k, v in report.items()])
