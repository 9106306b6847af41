"""`text2node data gem|ncbi`: write linking datasets as JSONL pairs (and spaCy docs)."""

import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import typer
from wasabi import msg

from ._app import app, check_out_dir, user_errors

data_app = typer.Typer(help="Write linking datasets (phrase -> concept pairs).", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("gem")
def gem_cmd(
    out_dir: Path = typer.Argument(..., help="Folder to write P3/, P1/, Z/, taxonomy/ and stats.json to."),
    seed: int = typer.Option(0, "--seed", help="Seed of the P1 split (by ICD-9 code) and the Z held-out leaves."),
    subtree: Optional[List[str]] = typer.Option(
        None,
        "--subtree",
        help="Keep only this ICD-10-CM subtree (chapter '4', block 'E08-E13', ...); "
        "repeat or comma-separate for several; empty for all.",
    ),
    dev_size: int = typer.Option(
        2000, "--dev-size", help="Non-label training pairs held out into each dev.jsonl (calibration)."
    ),
) -> None:
    """ICD-9-CM -> ICD-10-CM benchmark from the CMS GEMs (settings P3, P1, Z)."""
    from ..datasets import write_gem_splits

    check_out_dir(out_dir)
    t0 = time.perf_counter()
    subtree = [r for part in subtree or [] for r in part.split(",") if r]
    with user_errors("Could not write the GEM benchmark"):
        try:
            stats: Dict[str, Any] = write_gem_splits(out_dir, seed=seed, subtree=subtree or None, dev_size=dev_size)
        except ImportError as e:
            msg.fail(f"Could not write the GEM benchmark: {e}", exits=1)
    g = stats["gem"]
    msg.good(
        f"{g['kept']:,} ICD-9-CM codes kept of {g['icd9_codes']:,} (no map {g['no_map']}, "
        f"target missing in ICD-10-CM {g['missing_target']}, outside subtree {g['outside_subtree']}); "
        f"{stats['concepts']:,} concepts -> {out_dir} ({time.perf_counter() - t0:.1f}s)"
    )
    rows = [(s, stats[s]["train"], stats[s]["train_gem"], stats[s]["test"]) for s in ("P3", "P1", "Z")]
    msg.table(rows, header=("setting", "train pairs", "of which GEM", "test queries"), aligns=("l", "r", "r", "r"))


@data_app.command("ncbi")
def ncbi_cmd(
    out_dir: Path = typer.Argument(
        ..., help="Folder to write {split}.jsonl, {split}.spacy, taxonomy/ and stats.json to."
    ),
    ncbi_dir: Path = typer.Option(
        ..., "--ncbi-dir", help="Folder with NCBItrainset_corpus.txt, NCBIdevelopset_corpus.txt (PubTator)."
    ),
    medic: Path = typer.Option(..., "--medic", help="CTD MEDIC CTD_diseases.tsv(.gz)."),
    docs: bool = typer.Option(True, "--docs/--no-docs", help="Also write document-level DocBins."),
    abbreviations: bool = typer.Option(
        True,
        "--abbreviations/--no-abbreviations",
        help="Write the short forms an abstract defines out in its dev and test mentions' pair text, as the document "
        "pipeline's linker searches them ('cerebral ALD' -> 'cerebral adrenoleukodystrophy').",
    ),
) -> None:
    """NCBI Disease mentions against CTD MEDIC: pairs per split (and spaCy docs)."""
    from ..datasets import write_ncbi

    check_out_dir(out_dir)
    t0 = time.perf_counter()
    with user_errors("Could not write the NCBI Disease data"):
        stats = write_ncbi(out_dir, ncbi_dir, medic, docs=docs, abbreviations=abbreviations)
    rows = []
    for split, st in stats.items():
        if isinstance(st, dict) and split != "linker":
            rows.append(
                (
                    split,
                    st["docs"],
                    st["mentions"],
                    st["kept"],
                    st["dropped_unresolved"],
                    st["unresolved_distinct"],
                    st.get("doc_misaligned", "-"),
                )
            )
    msg.good(f"{stats['concepts']:,} MEDIC concepts -> {out_dir} ({time.perf_counter() - t0:.1f}s)")
    msg.table(
        rows,
        header=(
            "split",
            "docs",
            "mentions",
            "pairs",
            "dropped (unresolved ids)",
            "distinct unresolved ids",
            "misaligned spans",
        ),
        aligns=("l", "r", "r", "r", "r", "r", "r"),
    )
    lk: Any = stats.get("linker")
    if isinstance(lk, dict):
        msg.info(
            f"linker split: {lk['fit']:,} fit and {lk['calibration']:,} calibration mentions; "
            f"linker_train.jsonl = MEDIC names and synonyms + fit ({lk['linker_train']:,} pairs)"
        )
