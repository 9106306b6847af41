"""The Spark backend: link the text column of a Spark DataFrame, and `text2node link --backend spark`.

The pipeline is loaded once per executor Python process (a module-level cache
keyed by the model path) inside `mapInPandas`; rows come back as plain columns,
built by the same `doc_to_record` as the local backend, so both outputs are equal.

    from spacy_text2node.bulk.spark import link_spark_dataframe
    out = link_spark_dataframe(df, "/models/clinical", text_col="note", id_col="note_id")
    out.write.parquet("linked.parquet")

`run_spark_bulk` is the bulk run of the CLI: the driver reads and checks the input as the local runner
does (errors file, resume), stages the valid rows as Parquet under OUTPUT/_staging, and the executors
link them and write their partitions straight into OUTPUT; nothing comes back to the driver but counts.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union, cast
from urllib.parse import urlparse

from .checks import check_bulk_run
from .pipeline_loading import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CHARS
from .readers import PathLike, check_id, check_text, normalize_id_field, read_records
from .records import doc_to_record, spark_schema_ddl
from .runner import check_run_numbers, resume_state, valid_documents
from .stats import BulkStats, BulkWarning, no_spans_message
from .writers import JsonlWriter, detect_output_format, output_parts

logger = logging.getLogger("spacy_text2node")

# tasks per job for each core: notes differ in length, so equal row counts are unequal work,
# and with one task per core the first to finish waits for the others
TASKS_PER_CORE = 4
STAGING = "_staging"  # under OUTPUT: hidden from Spark and pyarrow readers, as _temporary is
# what Spark itself writes into an output folder besides the parts (and their .crc checksums)
SPARK_FILES = ("part-*", ".part-*.crc", "_SUCCESS", "._SUCCESS.crc")

_PIPELINES: Dict[Tuple[Any, ...], Any] = {}
_LOADS: Dict[str, int] = {}  # loads by model in this process (`pipeline_loads`)


def pipeline_loads() -> Dict[str, int]:
    """How many times this (executor Python) process loaded each model (resolved path or package
    name): once per model and settings, however many partitions and jobs it ran.

    RETURNS (Dict[str, int]): the number of loads by model.
    """
    return dict(_LOADS)


def _get_pipeline(
    model: str, max_chars: int, overrides: Optional[Dict[str, Any]] = None, mentions: Optional[str] = None
):
    """Load a pipeline once per (executor) process."""
    key = (model, max_chars, tuple(sorted((overrides or {}).items())), mentions)
    if key not in _PIPELINES:
        from .local import one_thread_per_process
        from .pipeline_loading import load_pipeline

        nlp = load_pipeline(model, max_chars=max_chars, overrides=overrides, mentions=mentions)
        if not any(str(k).endswith("n_threads") for k in (overrides or {})):
            one_thread_per_process(nlp)  # Spark runs one Python worker per task core
        _PIPELINES[key] = nlp
        _LOADS[model] = _LOADS.get(model, 0) + 1
    return _PIPELINES[key]


def _null_nan(value: Any) -> Any:
    """None for pandas' NaN of a null value."""
    return None if isinstance(value, float) and value != value else value


def _link_partition(
    batches: Iterator[Any],
    *,
    model: str,
    text_col: str,
    id_col: str,
    span_keys: Sequence[str],
    top_k: Optional[int],
    max_chars: int,
    batch_size: int,
    overrides: Optional[Dict[str, Any]] = None,
    mentions: Optional[str] = None,
    with_error: bool = True,
) -> Iterator[Any]:
    import pandas as pd

    nlp = _get_pipeline(model, max_chars, overrides, mentions)
    columns = ["id", "n_tokens", "spans"] + (["error"] if with_error else [])
    for pdf in batches:
        checked = [check_id(_null_nan(v)) for v in pdf[id_col].tolist()]
        ids = [rid for rid, _ in checked]
        texts = pdf[text_col].tolist()
        rows: List[Dict[str, Any]] = [None] * len(ids)  # type: ignore
        todo: List[Tuple[str, int]] = []
        for i, (rid, raw) in enumerate(zip(ids, texts)):
            text, reason = check_text(_null_nan(raw), max_chars)
            reason = checked[i][1] or reason  # a bad id first, as in the errors file of run_bulk
            if reason is not None and not with_error:
                raise ValueError(f"Spark could not link document {rid!r}: {reason}")
            if reason is not None:
                rows[i] = {"id": rid, "n_tokens": 0, "spans": [], "error": reason}
            else:
                todo.append((cast(str, text), i))  # no reason: check_text gave a text
        for doc, i in nlp.pipe(todo, as_tuples=True, batch_size=batch_size):
            rec = doc_to_record(doc, ids[i], span_keys=span_keys, top_k=top_k)
            if with_error:
                rec["error"] = None
            rows[i] = rec
        yield pd.DataFrame(rows, columns=columns)


def link_spark_dataframe(
    df: Any,
    model: Union[str, Path],
    *,
    text_col: str = "text",
    id_col: str = "id",
    span_keys: Sequence[str] = ("ents",),
    top_k: Optional[int] = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    overrides: Optional[Dict[str, Any]] = None,
    mentions: Optional[str] = None,
    with_error: bool = True,
) -> Any:
    """Link the text column of a Spark DataFrame with a spaCy pipeline.

    Runs `df.mapInPandas`: each executor process loads the pipeline once (from a
    path every executor can read, or an installed package name) and processes its
    partitions with `nlp.pipe`. Row order within partitions is kept.

    df (pyspark.sql.DataFrame): the input, with an id and a text column.
    model (Union[str, Path]): pipeline package name, pipeline folder or .cfg file.
    text_col (str): the text column.
    id_col (str): the id column (cast to string in the output; a null, empty or non-string id,
        other than an integer, gives the row an error, as in the errors file of `run_bulk`).
    span_keys (Sequence[str]): span sources: "ents" and/or span group keys.
    top_k (Optional[int]): candidates kept per span.
    max_chars (int): longer texts get an error instead of spans.
    batch_size (int): documents per `nlp.pipe` batch inside a partition.
    overrides (Optional[Dict[str, Any]]): config overrides for a .cfg model.
    mentions (Optional[str]): a mention finder to put in front of a linker pipeline.
    with_error (bool): add the error column. False: the record columns only, and a row that cannot
        be linked fails its task with the reason (for rows checked before, as `run_spark_bulk` does).
    RETURNS (pyspark.sql.DataFrame): columns id string, n_tokens long,
        spans array<struct<start, end, text, label, source, concept_id,
        concept_label, score, candidates array<struct<concept_id, concept_label,
        score>>>>, error string (null when the row was linked; else spans is empty).
    """
    for col in (text_col, id_col):
        if col not in df.columns:
            raise ValueError(f"The DataFrame has no column {col!r} (columns: {df.columns}). Pass text_col= / id_col=.")
    model = str(model)
    if Path(model).exists():
        model = str(Path(model).resolve())
    args = dict(
        model=model,
        text_col=text_col,
        id_col=id_col,
        span_keys=tuple(span_keys),
        top_k=top_k,
        max_chars=max_chars,
        batch_size=batch_size,
        overrides=dict(overrides or {}),
        mentions=mentions,
        with_error=with_error,
    )

    def fn(batches):
        return _link_partition(batches, **args)

    return df.select(id_col, text_col).mapInPandas(fn, schema=spark_schema_ddl(with_error=with_error))


def _uri(path: Path) -> str:
    """A local path as the file: URI every executor resolves alike (a relative path would be
    resolved against each executor's own working folder). Not percent-encoded: Hadoop's
    Path quotes the characters a URI needs quoted itself, and reads a "%3A" as those three
    characters, so `Path.as_uri()` named another file for a folder with a colon or a space."""
    return "file://" + path.resolve().as_posix()


def check_spark_run(
    input_path: PathLike,
    output: PathLike,
    *,
    input_format: Optional[str] = None,
    output_format: Optional[str] = None,
    id_field: Optional[str] = "id",
    text_field: str = "text",
    errors_path: Optional[PathLike] = None,
    resume: bool = False,
    overwrite: bool = False,
) -> Tuple[str, Path, bool]:
    """`check_bulk_run` for a run whose executors write OUTPUT: there OUTPUT is a folder of part files
    in both formats (Parquet parts for a .parquet OUTPUT, JSON-lines parts for a .jsonl one). Refused
    before anything is loaded or opened: OUTPUT being a file or holding the parts of the other format,
    an existing output without --resume or --overwrite, and all that `check_bulk_run` refuses.

    input_path, output, input_format, output_format, id_field, text_field, errors_path, resume,
        overwrite: as in `run_spark_bulk`.
    RETURNS (Tuple[str, Path, bool]): the output format, the errors file, and whether an output exists.
    """
    output = Path(output)
    fmt = output_format or detect_output_format(output)
    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"Unknown output format {fmt!r} (--output-format): use one of jsonl, parquet.")
    if output.exists() and not output.is_dir():
        raise ValueError(
            f"The output {output} is a file; with --backend spark OUTPUT is a folder of part files that the "
            f"executors write (a .jsonl OUTPUT too). Remove it or choose another OUTPUT."
        )
    errors = Path(errors_path) if errors_path else output.with_name(output.name + ".errors.jsonl")
    # the paths and the input, with the folder rules of a Parquet output; existence is checked below
    check_bulk_run(
        input_path,
        output,
        input_format=input_format,
        output_format="parquet",
        id_field=id_field,
        text_field=text_field,
        errors_path=errors,
        resume=True,
    )
    other = "parquet" if fmt == "jsonl" else "jsonl"
    if output_parts(output, other) and not overwrite:
        raise ValueError(
            f"The output folder {output} holds {other} parts and this run writes {fmt}: choose another OUTPUT, "
            f"--output-format {other}, or --overwrite."
        )
    out_exists = output.is_dir() and any(output.glob("part-*"))
    if (out_exists or errors.exists()) and not (resume or overwrite):
        raise ValueError(
            f"Output {output if out_exists else errors} already exists. Pass --resume to continue "
            f"that run, or --overwrite to start again."
        )
    return fmt, errors, out_exists or errors.exists()


def clear_spark_output(output: Path) -> None:
    """Remove what runs wrote into an output folder (--overwrite): the part files, Spark's _SUCCESS
    and checksum files, unfinished parts, and the staging folder; nothing else of the folder."""
    if not output.is_dir():
        return
    for pattern in (*SPARK_FILES, ".*.tmp"):
        for f in output.glob(pattern):
            f.unlink()
    for name in ("_temporary", STAGING):
        if (output / name).is_dir():
            shutil.rmtree(output / name)


def _stage(chunk: List[Tuple[str, str]], folder: Path, number: int, n_parts: int) -> List[Path]:
    """Write a chunk of (id, text) rows as `n_parts` Parquet files of near-equal size (one task each)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    n = max(1, min(n_parts, len(chunk)))
    size = -(-len(chunk) // n)
    files = []
    for j in range(0, len(chunk), size):
        rows = chunk[j : j + size]
        file = folder / f"chunk-{number:06d}-{j // size:04d}.parquet"
        table = pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows]}, schema=schema)
        pq.write_table(table, file)
        files.append(file)
    return files


def _link_chunk(spark: Any, files: List[Path], output: Path, output_format: str, link_args: Dict[str, Any]) -> None:
    """One Spark job: read the staged files (one partition each), link them, and append each
    partition's records to OUTPUT as a part file. Spark commits the job's parts at once, so a job
    that fails or is killed leaves no part (only _temporary/, removed on --resume)."""
    reader = spark.read.schema("id string, text string")
    df = functools.reduce(lambda a, b: a.union(b), [reader.parquet(_uri(f)) for f in files])
    linked = link_spark_dataframe(df, with_error=False, **link_args)
    writer = linked.write.mode("append")
    if output_format == "parquet":
        writer.parquet(_uri(output))
    else:  # nulls written as null, as the local backend's records have them
        writer.option("ignoreNullFields", "false").json(_uri(output))


def count_written(spark: Any, files: Sequence[Path], output_format: str) -> Tuple[int, int, int, int]:
    """Count records in part files with a Spark aggregation on the executors (nothing is collected
    but the four numbers).

    spark (SparkSession): the session.
    files (Sequence[Path]): the part files.
    output_format (str): "jsonl" or "parquet".
    RETURNS (Tuple[int, int, int, int]): records, distinct ids, tokens, spans.
    """
    if not files:
        return 0, 0, 0, 0
    from pyspark.sql import functions as F

    reader = spark.read.schema(spark_schema_ddl(with_error=False))
    uris = [_uri(f) for f in files]
    df = reader.parquet(*uris) if output_format == "parquet" else reader.json(uris)
    row = df.agg(F.count(F.lit(1)), F.countDistinct("id"), F.sum("n_tokens"), F.sum(F.size("spans"))).first()
    return int(row[0]), int(row[1]), int(row[2] or 0), int(row[3] or 0)


def run_spark_bulk(
    spark: Any,
    model: Union[str, Path],
    input_path: PathLike,
    output: PathLike,
    *,
    input_format: Optional[str] = None,
    output_format: Optional[str] = None,
    id_field: Optional[str] = "id",
    text_field: str = "text",
    errors_path: Optional[PathLike] = None,
    resume: bool = False,
    overwrite: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
    flush_every: int = 256,
    chunk_size: int = 5_000,
    partitions: Optional[int] = None,
    limit: Optional[int] = None,
    progress: bool = True,
    span_keys: Sequence[str] = ("ents",),
    top_k: Optional[int] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    overrides: Optional[Dict[str, Any]] = None,
    mentions: Optional[str] = None,
) -> BulkStats:
    """A bulk run on Spark (`text2node link --backend spark`) whose executors write the output.

    The driver reads and checks the input as the local runner does (`valid_documents`: the same
    errors file, resume and counts) and stages each chunk of `chunk_size` valid rows as Parquet files
    under OUTPUT/_staging, one per partition. One Spark job per chunk links them (`link_spark_dataframe`,
    the pipeline loaded once per executor Python process) and appends each partition's records to
    OUTPUT as a part file: Parquet for a .parquet OUTPUT, JSON lines (nulls written) for a .jsonl one,
    which is then a folder. Records never come back to the driver: the written records, tokens and
    spans are counted by a Spark aggregation over this run's part files, and a run whose parts do not
    hold each staged row exactly once warns (`BulkWarning`) and is not `balanced`. Spark retries the
    tasks of a lost executor; a job's parts are committed together, so a killed run resumes (`resume`)
    after its last finished chunk. Order is kept within a part, not across parts.

    spark (SparkSession): the session (`local_spark_session`); OUTPUT must be a path every executor
        can write (on a cluster of several machines, a shared filesystem).
    model (Union[str, Path]): the pipeline, loadable by every executor (see `link_spark_dataframe`).
    input_path (PathLike): the input (see `read_records`); read by the driver.
    output (PathLike): the output folder (a name ending in .parquet or .jsonl says the format).
    input_format, output_format, id_field, text_field, errors_path, resume, overwrite, max_chars,
        flush_every, limit, progress: as in `run_bulk` (flush_every: errors-file entries per write).
    chunk_size (int): valid documents per Spark job.
    partitions (Optional[int]): partitions (tasks, part files) per job (default: 4 x the default
        parallelism, so that cores that finish their shorter notes early take another task).
    span_keys, top_k, batch_size, overrides, mentions: as in `link_spark_dataframe`.
    RETURNS (BulkStats): the counts; `stats.balanced` says whether in = written + errors.
    """
    check_run_numbers(
        max_chars=max_chars,
        flush_every=flush_every,
        chunk_size=chunk_size,
        partitions=partitions,
        batch_size=batch_size,
        limit=limit,
    )
    output = Path(output)
    fmt, errors_path, exists = check_spark_run(
        input_path,
        output,
        input_format=input_format,
        output_format=output_format,
        id_field=id_field,
        text_field=text_field,
        errors_path=errors_path,
        resume=resume,
        overwrite=overwrite,
    )
    records = read_records(
        input_path, input_format=input_format, id_field=normalize_id_field(id_field), text_field=text_field
    )
    if exists and overwrite:
        clear_spark_output(output)
        if errors_path.exists():
            errors_path.unlink()
    staging = output / STAGING
    if staging.exists():  # a killed run's
        shutil.rmtree(staging)
    done_ids, n_done_out, done_err, n_done_err = resume_state(output, fmt, errors_path, resume)
    output.mkdir(parents=True, exist_ok=True)
    before = set(output_parts(output, fmt))
    n_parts = partitions or TASKS_PER_CORE * max(1, int(spark.sparkContext.defaultParallelism))
    link_args: Dict[str, Any] = dict(
        model=model,
        span_keys=span_keys,
        top_k=top_k,
        max_chars=max_chars,
        batch_size=batch_size,
        overrides=overrides,
        mentions=mentions,
    )

    stats = BulkStats(output=str(output), errors_path=str(errors_path))
    err_writer = JsonlWriter(errors_path)
    pending: List[Dict[str, Any]] = []

    def flush_errors() -> None:
        err_writer.write(pending)
        pending.clear()

    def on_error(entry: Dict[str, Any]) -> None:
        pending.append(entry)
        if len(pending) >= flush_every:
            flush_errors()

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="doc", desc="linking (spark)", dynamic_ncols=True, mininterval=0.5)
    t0 = time.perf_counter()
    n_staged = 0
    chunk: List[Tuple[str, str]] = []

    def run_chunk(number: int) -> None:
        nonlocal n_staged
        flush_errors()  # the errors before this chunk's records are on disk before its parts
        files = _stage(chunk, staging, number, n_parts)
        _link_chunk(spark, files, output, fmt, link_args)
        for f in files:
            f.unlink()
        n_staged += len(chunk)
        stats.n_chars += sum(len(text) for _, text in chunk)
        if bar is not None:
            bar.update(len(chunk))
            bar.set_postfix(errors=stats.n_errors, refresh=False)
        chunk.clear()

    n_chunks = 0
    try:
        documents = valid_documents(
            records, stats, on_error, max_chars=max_chars, limit=limit, done_ids=done_ids, done_errors=done_err
        )
        for text, rid in documents:
            chunk.append((rid, text))
            if len(chunk) >= chunk_size:
                run_chunk(n_chunks)
                n_chunks += 1
        if chunk:
            run_chunk(n_chunks)
        flush_errors()
    finally:
        err_writer.close()
        if bar is not None:
            bar.close()
        shutil.rmtree(staging, ignore_errors=True)
    new_parts = [f for f in output_parts(output, fmt) if f not in before]
    stats.n_written, n_ids, stats.n_tokens, stats.n_spans = count_written(spark, new_parts, fmt)
    problems = []
    if n_ids != stats.n_written:
        problems.append(f"{stats.n_written - n_ids:,} ids are in the new parts of {output} more than once")
    if stats.n_written != n_staged:
        problems.append(f"Spark wrote {stats.n_written:,} records for {n_staged:,} documents sent to it")
    if stats.n_written and not stats.n_spans:
        problems.append(no_spans_message(stats.n_written, span_keys))
    for message in problems:
        stats.warnings.append(message)
        warnings.warn(message, BulkWarning, stacklevel=2)
    stats.seconds = time.perf_counter() - t0
    stats.total_written = n_done_out + stats.n_written
    stats.total_errors = n_done_err + stats.n_errors
    logger.info(stats.summary())
    return stats


def local_spark_session(master: str = "local[2]", app_name: str = "text2node-link", **conf: str):
    """Start (or get) a Spark session whose Python workers use this interpreter and this process's
    torch policy (SPACY_TEXT2NODE_TORCH, see `spacy_text2node._runtime`). With a master on this
    machine (local[N], spark://127.0.0.1:PORT) the driver binds to 127.0.0.1.

    master (str): the Spark master URL.
    app_name (str): the application name.
    **conf: extra Spark settings ("spark.driver.memory": "4g"...).
    RETURNS (SparkSession): the session.
    """
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
    )
    if master.startswith("local") or urlparse(master).hostname in ("127.0.0.1", "localhost"):
        # a master on this machine: the driver's ports stay on the loopback too
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # read by the driver's JVM as it starts
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    from .._runtime import ENV as TORCH_ENV

    if os.environ.get(TORCH_ENV):  # executors follow the driver's torch policy (a cluster's do not inherit it)
        builder = builder.config(f"spark.executorEnv.{TORCH_ENV}", os.environ[TORCH_ENV])
    for k, v in conf.items():
        builder = builder.config(k, v)
    return builder.getOrCreate()
