"""`text2node link MODEL INPUT OUTPUT`: bulk linking, a thin wrapper over spacy_text2node.bulk."""

import json
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import typer
from wasabi import msg

from ..bulk.pipeline_loading import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CHARS
from ._app import app


def _check_options(**values: Optional[int]) -> None:
    """Exit with one line naming the flag when a count option is out of range."""
    least = {"--limit": 1}
    for flag, value in values.items():
        if value is not None and value < least.get(flag, 1):
            msg.fail(f"{flag} must be at least {least.get(flag, 1)}, not {value}.")
            raise SystemExit(2)  # wasabi's exits= is typed for 0 and 1 only


@app.command("link", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def link_cmd(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Pipeline: installed package, folder from nlp.to_disk, or a .cfg config."),
    input_path: Path = typer.Argument(..., help="JSONL, CSV/TSV or Parquet file (.gz ok), or a folder of .txt files."),
    output: Path = typer.Argument(
        ..., help="Output: a .jsonl file or a .parquet folder (--backend spark: a folder of part files either way)."
    ),
    input_format: Optional[str] = typer.Option(
        None, "--input-format", help="jsonl, csv, tsv, parquet or txt (default: from INPUT)."
    ),
    output_format: Optional[str] = typer.Option(
        None, "--output-format", help="jsonl or parquet (default: from OUTPUT)."
    ),
    id_field: str = typer.Option(
        "id",
        "--id-field",
        help="Id field/column; it must exist. 'none': the 0-based record index (.txt folders: the file name).",
    ),
    text_field: str = typer.Option("text", "--text-field", help="Text field/column."),
    errors: Optional[Path] = typer.Option(None, "--errors", help="Errors file (JSONL; default OUTPUT.errors.jsonl)."),
    n_process: int = typer.Option(1, "--n-process", "-n", help="Worker processes (local backend)."),
    batch_size: int = typer.Option(
        DEFAULT_BATCH_SIZE,
        "--batch-size",
        "-b",
        help="Documents per nlp.pipe batch: a worker's memory grows with it (long notes); raise it for short phrases.",
    ),
    pool: str = typer.Option(
        "text2node", "--pool", help="Worker pool for --n-process > 1: text2node or spacy (nlp.pipe n_process)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run: skip records already written."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output and errors file."),
    max_chars: int = typer.Option(DEFAULT_MAX_CHARS, "--max-chars", help="Longer texts go to the errors file."),
    span_key: List[str] = typer.Option(
        ["ents"], "--span-key", help="Span source: 'ents' or a span group key (repeatable)."
    ),
    mentions: Optional[str] = typer.Option(
        None,
        "--mentions",
        help="Treat MODEL as a linker pipeline and put a mention finder in front: noun_chunks, ruler or ner.",
    ),
    top_k: Optional[int] = typer.Option(
        None, "--top-k", help="Candidates kept per span (default: all the linker gives)."
    ),
    limit: Optional[int] = typer.Option(None, "--limit", help="Read at most this many input records."),
    flush_every: int = typer.Option(256, "--flush-every", help="Records per write (flushed and fsynced)."),
    backend: str = typer.Option("local", "--backend", help="local (nlp.pipe with --n-process) or spark."),
    spark_master: str = typer.Option("local[2]", "--spark-master", help="Spark master URL (--backend spark)."),
    spark_chunk: int = typer.Option(5_000, "--spark-chunk", help="Documents per Spark job (--backend spark)."),
    stats_json: Optional[Path] = typer.Option(
        None, "--stats-json", help="Also write the run's counts and timings as JSON here."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Link every document of INPUT with MODEL and write one record per document
    (id, n_tokens, spans with start, end, text, label, concept_id, concept_label,
    score and top-k candidates) to OUTPUT; unreadable records go to the errors file.
    Extra `--section.key value` options override a .cfg MODEL (e.g. --paths.linker DIR).
    A mistake in the options (exit status 2), paths or input fields (1) is one line,
    reported before MODEL is loaded or OUTPUT touched."""
    from spacy.cli._util import parse_config_overrides

    from ..bulk.clinical import MENTION_MODES
    from ..bulk.io import INPUT_FORMATS
    from ..bulk.local import WORKER_POOLS
    from ..bulk.runner import BulkWarning, check_bulk_run, load_pipeline, local_processor, run_bulk

    try:
        overrides = parse_config_overrides(ctx.args)
    except SystemExit:
        raise typer.Exit(2) from None
    if backend not in ("local", "spark"):
        msg.fail(f"Unknown --backend {backend!r}: use local or spark.")
        raise SystemExit(2)  # wasabi's exits= is typed for 0 and 1 only
    if pool not in WORKER_POOLS:
        msg.fail(f"Unknown --pool {pool!r}: use one of {', '.join(WORKER_POOLS)}.")
        raise SystemExit(2)  # wasabi's exits= is typed for 0 and 1 only
    _check_options(
        **{
            "--n-process": n_process,
            "--batch-size": batch_size,
            "--max-chars": max_chars,
            "--flush-every": flush_every,
            "--top-k": top_k,
            "--limit": limit,
            "--spark-chunk": spark_chunk,
        }
    )
    if mentions is not None and mentions not in MENTION_MODES:
        msg.fail(f"Unknown --mentions {mentions!r}: use one of {', '.join(MENTION_MODES)}.")
        raise SystemExit(2)  # wasabi's exits= is typed for 0 and 1 only
    if input_format is not None and input_format not in INPUT_FORMATS:
        msg.fail(f"Unknown --input-format {input_format!r}: use one of {', '.join(INPUT_FORMATS)}.")
        raise SystemExit(2)  # wasabi's exits= is typed for 0 and 1 only
    if output_format is not None and output_format not in ("jsonl", "parquet"):
        msg.fail(f"Unknown --output-format {output_format!r}: use jsonl or parquet.")
        raise SystemExit(2)  # wasabi's exits= is typed for 0 and 1 only

    common: Dict[str, Any] = dict(
        input_format=input_format,
        output_format=output_format,
        id_field=id_field,
        text_field=text_field,
        errors_path=errors,
        resume=resume,
        overwrite=overwrite,
    )
    try:
        if backend == "spark":
            from ..bulk.spark import check_spark_run

            check_spark_run(input_path, output, **common)
        else:
            check_bulk_run(input_path, output, **common)
    except ValueError as e:
        msg.fail(str(e), exits=1)
    common.update(flush_every=flush_every, limit=limit, progress=progress, span_keys=span_key)

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if issubclass(category, BulkWarning):
            msg.warn(str(message))
        else:
            shown(message, category, filename, lineno, file, line)

    try:
        with warnings.catch_warnings():
            shown = warnings.showwarning
            warnings.showwarning = show
            warnings.simplefilter("always", BulkWarning)
            if backend == "local":
                nlp = load_pipeline(model, max_chars=max_chars, overrides=overrides, mentions=mentions)
                proc = local_processor(
                    nlp, n_process=n_process, batch_size=batch_size, span_keys=span_key, top_k=top_k, pool=pool
                )
                stats = run_bulk(proc, input_path, output, max_chars=max_chars, **common)
            else:
                from ..bulk.spark import local_spark_session, run_spark_bulk

                spark = local_spark_session(spark_master)  # executors start while the driver loads MODEL
                try:
                    # fail early, before any job, if it cannot load
                    load_pipeline(model, max_chars=max_chars, overrides=overrides, mentions=mentions)
                    stats = run_spark_bulk(
                        spark,
                        model,
                        input_path,
                        output,
                        max_chars=max_chars,
                        chunk_size=spark_chunk,
                        top_k=top_k,
                        batch_size=batch_size,
                        overrides=overrides,
                        mentions=mentions,
                        **common,
                    )
                finally:
                    spark.stop()
    except (ValueError, TypeError, OSError) as e:
        msg.fail(f"Bulk linking failed: {e}", exits=1)
        return
    except KeyboardInterrupt:
        msg.fail("Interrupted: what was written is kept; continue with --resume.")
        raise SystemExit(130) from None
    if stats_json:
        try:
            stats_json.write_text(json.dumps(stats.to_dict(), indent=2))
        except OSError as e:
            msg.fail(f"Cannot write --stats-json {stats_json}: {e}", exits=1)
    msg.info(
        f"{stats.n_written:,} docs in {stats.seconds:.1f}s: {stats.docs_per_second:,.1f} docs/s, "
        f"{stats.words_per_second:,.0f} words/s -> {stats.output}"
    )
    if stats.n_errors:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(stats.reasons.items(), key=lambda kv: -kv[1]))
        msg.warn(f"{stats.n_errors:,} records in {stats.errors_path} ({reasons})")
    if stats.balanced:
        msg.good(stats.summary())
    else:
        msg.fail(stats.summary(), "Some records are neither in the output nor in the errors file.", exits=1)


@app.command("calibrate-linker")
def calibrate_linker_cmd(
    model: Path = typer.Argument(..., help="Trained linker pipeline folder (e.g. training/P1/model-best)."),
    dev_path: Path = typer.Argument(
        ..., help="Development pairs (JSONL: text, concept[, gold]) the mapper did not train on."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Where to save the calibrated pipeline (default: overwrite MODEL)."
    ),
    l2_words: Optional[float] = typer.Option(
        None,
        "--l2-words",
        help="L2 penalty of the per-word reranker weights (default: chosen by 2-fold cross-validation on the pairs).",
    ),
    limit: int = typer.Option(0, "--limit", help="Use at most this many development pairs (0: all)."),
    select_on: Optional[Path] = typer.Option(
        None,
        "--select-on",
        help=(
            "Other held-out pairs (JSONL), worded unlike DEV_PATH (e.g. synonyms held out of training): choose "
            "the word penalty by Acc@1 on them instead of by cross-validation on DEV_PATH. For DEV_PATH pairs "
            "that are only a proxy of the target text."
        ),
    ),
    siamese: str = typer.Option(
        "auto",
        "--siamese",
        help=(
            "The reranker's siamese feature (every taxonomy string mapped into the index): 'auto' drops it where "
            "it lowers the held-out Acc@1 that chooses the word penalty, 'on' keeps it, 'off' drops it (faster "
            "searches)."
        ),
    ),
    dictionary: Optional[Path] = typer.Option(
        None,
        "--dictionary",
        help=(
            "Annotated pairs (JSONL), e.g. all the training mentions: a phrase they always link to one concept is "
            "linked to it first (the phrase dictionary). It takes no part in the calibration, so it may hold "
            "DEV_PATH's pairs."
        ),
    ),
) -> None:
    """Fit the linker's reranker (learned fusion of the lexical, node-space and word
    channels) on development pairs and save the pipeline; with --dictionary, set its
    phrase dictionary too."""
    import spacy

    from ..errors import NotCalibratableError
    from ..linker_api import calibrate_linker, get_linker
    from ..readers.linking import phrase_example, read_pairs

    if not (model / "config.cfg").exists():
        msg.fail(f"{model}: not a pipeline folder (no config.cfg).", exits=1)
    use_siamese = {"auto": None, "on": True, "off": False}
    if siamese not in use_siamese:
        msg.fail(f"--siamese {siamese!r}: expected one of auto, on, off.", exits=1)
    out = output or model
    try:  # before the calibration: spaCy's to_disk makes only the last folder
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        msg.fail(f"Cannot write the calibrated pipeline to {out}: {err}", exits=1)
    nlp = spacy.load(model)
    if dictionary is not None:  # first: a bad file fails before the calibration's minutes
        try:
            counts = get_linker(nlp).set_dictionary(dictionary)
        except ValueError as err:
            msg.fail(str(err), exits=1)
        msg.info(
            f"Phrase dictionary: {counts['phrases']} phrases from {counts['pairs']} pairs of {dictionary} "
            f"(left out: {counts['conflicting']} linked to different concepts, "
            f"{counts['composite']} to several at once)."
        )
    try:
        pairs = read_pairs(dev_path, taxonomy=get_linker(nlp).taxonomy, limit=limit)
        examples = [phrase_example(nlp, str(p["text"]), str(p["concept"]), list(p["gold"])) for p in pairs]
        select = None
        if select_on is not None:
            select = [
                phrase_example(nlp, str(p["text"]), str(p["concept"]), list(p["gold"]))
                for p in read_pairs(select_on, taxonomy=get_linker(nlp).taxonomy, limit=limit)
            ]
            msg.info(f"The word penalty is chosen on {len(select)} pairs of {select_on}.")
        msg.info(f"Calibrating on {len(examples)} development pairs...")
        info = calibrate_linker(nlp, examples, l2_words=l2_words, select_examples=select, siamese=use_siamese[siamese])
        if "siamese_acc@1_with" in info:
            kept = "kept" if info["siamese"] else "dropped (searches skip it)"
            msg.info(
                f"Siamese feature {kept}: held-out Acc@1 {info['siamese_acc@1_with']:.4f} with it, "
                f"{info['siamese_acc@1_without']:.4f} without."
            )
    except NotCalibratableError as err:  # the pipeline is saved with its fixed fusion
        msg.warn(str(err))
        info = {"calibrated": False}
    except ValueError as err:
        msg.fail(str(err), exits=1)
    msg.table(
        [(k, f"{v:.4f}" if isinstance(v, float) else v) for k, v in info.items()], header=("", "value"), divider=True
    )
    nlp.to_disk(out)
    msg.good(f"Saved the calibrated pipeline to {out}")
