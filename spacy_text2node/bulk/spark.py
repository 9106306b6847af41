"""The Spark backend: link the text column of a Spark DataFrame.

The pipeline is loaded once per executor Python process (a module-level cache
keyed by the model path) inside `mapInPandas`; rows come back as plain columns,
built by the same `doc_to_record` as the local backend, so both outputs are equal.

    from spacy_text2node.bulk.spark import link_spark_dataframe
    out = link_spark_dataframe(df, "/models/clinical", text_col="note", id_col="note_id")
    out.write.parquet("linked.parquet")
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union, cast

from .readers import check_id, check_text
from .records import doc_to_record, spark_schema_ddl

logger = logging.getLogger("spacy_text2node")

_PIPELINES: Dict[Tuple[Any, ...], Any] = {}


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
) -> Iterator[Any]:
    import pandas as pd

    nlp = _get_pipeline(model, max_chars, overrides, mentions)
    for pdf in batches:
        checked = [check_id(_null_nan(v)) for v in pdf[id_col].tolist()]
        ids = [rid for rid, _ in checked]
        texts = pdf[text_col].tolist()
        rows: List[Dict[str, Any]] = [None] * len(ids)  # type: ignore
        todo: List[Tuple[str, int]] = []
        for i, (rid, raw) in enumerate(zip(ids, texts)):
            text, reason = check_text(_null_nan(raw), max_chars)
            reason = checked[i][1] or reason  # a bad id first, as in the errors file of run_bulk
            if reason is not None:
                rows[i] = {"id": rid, "n_tokens": 0, "spans": [], "error": reason}
            else:
                todo.append((cast(str, text), i))  # no reason: check_text gave a text
        for doc, i in nlp.pipe(todo, as_tuples=True, batch_size=batch_size):
            rec = doc_to_record(doc, ids[i], span_keys=span_keys, top_k=top_k)
            rec["error"] = None
            rows[i] = rec
        yield pd.DataFrame(rows, columns=["id", "n_tokens", "spans", "error"])


def link_spark_dataframe(
    df: Any,
    model: Union[str, Path],
    *,
    text_col: str = "text",
    id_col: str = "id",
    span_keys: Sequence[str] = ("ents",),
    top_k: Optional[int] = None,
    max_chars: int = 1_000_000,
    batch_size: int = 64,
    overrides: Optional[Dict[str, Any]] = None,
    mentions: Optional[str] = None,
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
    RETURNS (pyspark.sql.DataFrame): columns id string, n_tokens long,
        spans array<struct<start, end, text, label, source, concept_id,
        concept_label, score, candidates array<struct<concept_id, concept_label,
        score>>>>, error string (null when the row was linked; then spans is empty).
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
    )

    def fn(batches):
        return _link_partition(batches, **args)

    return df.select(id_col, text_col).mapInPandas(fn, schema=spark_schema_ddl(with_error=True))


def _row_to_record(row: Any) -> Dict[str, Any]:
    d = row.asDict(recursive=True)
    d.pop("error", None)
    return d


def spark_processor(
    spark: Any,
    model: Union[str, Path],
    *,
    span_keys: Sequence[str] = ("ents",),
    top_k: Optional[int] = None,
    max_chars: int = 1_000_000,
    batch_size: int = 64,
    chunk_size: int = 5_000,
    partitions: Optional[int] = None,
    overrides: Optional[Dict[str, Any]] = None,
    mentions: Optional[str] = None,
):
    """A processor for `run_bulk` that sends chunks of validated documents through
    `link_spark_dataframe` and yields the records in input order (used by
    `text2node link --backend spark`, which keeps resume and the errors file).

    spark (SparkSession): the session.
    model (Union[str, Path]): the pipeline (see `link_spark_dataframe`).
    chunk_size (int): documents per Spark job.
    partitions (Optional[int]): partitions per job (default: the default parallelism).
    RETURNS (Processor): a function from (text, id) pairs to records.
    """
    import pandas as pd

    def run_chunk(chunk: List[Tuple[str, str]]) -> Iterator[Dict[str, Any]]:
        pdf = pd.DataFrame({"id": [c[1] for c in chunk], "text": [c[0] for c in chunk]})
        sdf = spark.createDataFrame(pdf, schema="id string, text string")
        if partitions and sdf.rdd.getNumPartitions() > partitions:
            sdf = sdf.coalesce(partitions)  # coalesce keeps contiguous ranges, so order
        out = link_spark_dataframe(
            sdf,
            model,
            span_keys=span_keys,
            top_k=top_k,
            max_chars=max_chars,
            batch_size=batch_size,
            overrides=overrides,
            mentions=mentions,
        )
        for row in out.collect():  # one job per chunk; partitions run in parallel
            if row["error"] is not None:
                raise ValueError(f"Spark could not link document {row['id']!r}: {row['error']}")
            yield _row_to_record(row)

    def process(items: Iterator[Tuple[str, str]]) -> Iterator[Dict[str, Any]]:
        chunk: List[Tuple[str, str]] = []
        for item in items:
            chunk.append(item)
            if len(chunk) >= chunk_size:
                yield from run_chunk(chunk)
                chunk = []
        if chunk:
            yield from run_chunk(chunk)

    return process


def local_spark_session(master: str = "local[2]", app_name: str = "text2node-link", **conf: str):
    """Start (or get) a Spark session whose Python workers use this interpreter.

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
    for k, v in conf.items():
        builder = builder.config(k, v)
    return builder.getOrCreate()
