"""`text2node evaluate MODEL DATA`: a pipeline's scores on JSONL phrase pairs or PubTator
documents, read by the same registered readers that `spacy train` uses.

`spacy evaluate` reads only `.spacy` files (DocBin); this command reads what
`text2node data gem|ncbi` writes."""

import json
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from ._app import app


@app.command("evaluate")
def evaluate_cmd(
    model: str = typer.Argument(..., help="Pipeline: installed package or folder written by nlp.to_disk."),
    data: Path = typer.Argument(..., help="JSONL phrase -> concept pairs, or a PubTator file (.txt/.pubtator)."),
    data_format: Optional[str] = typer.Option(None, "--format", help="pairs or pubtator (default: from DATA's name)."),
    taxonomy: Optional[Path] = typer.Option(
        None, "--taxonomy", help="PubTator: CTD MEDIC file or taxonomy folder to resolve ids with."
    ),
    gold_mentions: bool = typer.Option(
        True,
        "--gold-mentions/--predicted-mentions",
        help="PubTator: link the gold mentions (default; none left NIL for a low probability) "
        "or those the pipeline finds.",
    ),
    limit: int = typer.Option(0, "--limit", help="At most this many pairs or documents (0: all)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the scores as JSON here."),
) -> None:
    """Score MODEL on DATA and print the scores (`text2node_acc@1`, ...)."""
    import spacy

    from ..readers.linking import PhraseConceptsCorpus, PubTatorCorpus

    fmt = data_format or ("pairs" if data.name.lower().endswith((".jsonl", ".jsonl.gz")) else "pubtator")
    if fmt not in ("pairs", "pubtator"):
        msg.fail(f"--format {fmt!r}: use pairs or pubtator.")
        raise SystemExit(2)  # wasabi's exits= is typed for 0 and 1 only
    if not data.exists():
        msg.fail(f"{data} does not exist.", exits=1)
    try:
        nlp = spacy.load(model)
    except (OSError, ValueError) as e:
        msg.fail(f"Cannot load the pipeline {model!r}", str(e), exits=1)
    try:
        if fmt == "pairs":
            examples = list(PhraseConceptsCorpus(data, limit=limit)(nlp))
            scores = nlp.evaluate(examples)
        else:
            examples = list(PubTatorCorpus(data, taxonomy_path=taxonomy, limit=limit)(nlp))
            scores = _evaluate_documents(nlp, examples, gold_mentions)
    except ValueError as e:
        msg.fail(f"Cannot evaluate on {data}", str(e), exits=1)
    shown = {k: v for k, v in scores.items() if isinstance(v, (int, float))}
    msg.table(
        [(k, f"{v:.4f}" if isinstance(v, float) else v) for k, v in shown.items()],
        header=("score", "value"),
        divider=True,
    )
    msg.good(f"{len(examples):,} examples of {data}")
    if output:
        output.write_text(json.dumps(scores, indent=2, default=str))


def _evaluate_documents(nlp, examples, gold_mentions: bool):
    """Evaluate on documents; with `gold_mentions` the linker links the reference's
    mentions (copied into the predicted docs), the mention finders are switched off and no
    mention is left NIL for a low probability (`min_probability`, a cut for false finds)."""
    from ..bulk.clinical import LINKER, mention_finders

    if not gold_mentions or LINKER not in nlp.pipe_names:
        return nlp.evaluate(examples)
    for eg in examples:
        spans = [eg.predicted.char_span(e.start_char, e.end_char, label=e.label_) for e in eg.reference.ents]
        eg.predicted.ents = [s for s in spans if s is not None]
    linker = nlp.get_pipe(LINKER)
    saved = {key: linker.cfg[key] for key in ("spans", "min_probability") if key in linker.cfg}
    linker.cfg.update(spans="ents", min_probability=0.0)
    try:
        with nlp.select_pipes(disable=mention_finders(nlp)):
            return nlp.evaluate(examples)
    finally:
        linker.cfg.pop("min_probability", None)
        linker.cfg.update(saved)
