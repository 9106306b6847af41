"""The bulk runner: stream records through a processor (the local backend) into an output. Its
validation (`valid_documents`) and resume state are shared with the Spark runner (`spark.run_spark_bulk`).

from spacy_text2node.bulk import link_documents
stats = link_documents("my_pipeline", "notes.jsonl", "linked.jsonl", n_process=2)
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import deque
from pathlib import Path
from typing import (
    AbstractSet,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
    cast,
)

from spacy.language import Language

from .checks import check_bulk_run, check_output_paths
from .local import local_processor, one_thread_per_process
from .pipeline_loading import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CHARS, load_pipeline
from .readers import InputRecord, PathLike, check_text, normalize_id_field, read_records
from .records import Processor
from .stats import BulkStats, BulkWarning, no_spans_message
from .writers import JsonlWriter, ParquetPartsWriter, done_error_indices, done_output_ids

logger = logging.getLogger("spacy_text2node")

# A run that has written this many documents without a single span warns (once).
NO_SPANS_SAMPLE = 200


def check_run_numbers(**values: Optional[int]) -> None:
    """Refuse a count option below its least value (1; `limit`: 0), naming it.

    **values (Optional[int]): the options by name (None: not given).
    """
    for name, value in values.items():
        least = 0 if name == "limit" else 1
        if value is not None and value < least:
            raise ValueError(f"{name} must be at least {least}, not {value}.")


def error_entry(rec: InputRecord, reason: str) -> Dict[str, Any]:
    """The errors file's entry of an input record: id, index, line and reason."""
    return {"id": rec.id, "index": rec.index, "line": rec.line, "reason": reason}


def valid_documents(
    records: Iterable[InputRecord],
    stats: BulkStats,
    on_error: Callable[[Dict[str, Any]], None],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    limit: Optional[int] = None,
    done_ids: AbstractSet[str] = frozenset(),
    done_errors: AbstractSet[int] = frozenset(),
) -> Iterator[Tuple[str, str]]:
    """The validation of a bulk run, for every backend: yield the (text, id) pairs to link, in input
    order, and hand every other record to `on_error` as its errors-file entry (`error_entry`): a record
    the reader could not read, a repeated id, an empty or too long text. Counts go to `stats` as they
    happen: `n_in` (each record seen, not counting those skipped), `n_skipped` (finished by an earlier
    run: its id in `done_ids` or its index in `done_errors`), `n_errors` and `reasons`. The caller
    counts what it writes, so that in = written + errors holds.

    records (Iterable[InputRecord]): the input (`read_records`).
    stats (BulkStats): the run's counts, updated in place.
    on_error (Callable[[Dict[str, Any]], None]): called with each errors-file entry, in input order.
    max_chars (int): texts longer than this are errors.
    limit (Optional[int]): read at most this many input records.
    done_ids (AbstractSet[str]): ids already in the output (--resume).
    done_errors (AbstractSet[int]): input indices already in the errors file (--resume).
    YIELDS (Tuple[str, str]): the text and id of each valid record not done before.
    """
    seen: Set[str] = set()

    def error(rec: InputRecord, reason: str) -> None:
        on_error(error_entry(rec, reason))
        stats.n_errors += 1
        key = reason.split(":")[0].split(" (")[0]
        stats.reasons[key] = stats.reasons.get(key, 0) + 1

    for n, rec in enumerate(records):
        if limit is not None and n >= limit:
            break
        if rec.index in done_errors:
            stats.n_skipped += 1
            continue
        if rec.error is not None:
            stats.n_in += 1
            error(rec, rec.error)
            continue
        if rec.id in seen:
            stats.n_in += 1
            error(rec, f"duplicate id {rec.id!r}: ids must be unique")
            continue
        seen.add(cast(str, rec.id))  # a record without an error has an id (the readers)
        if rec.id in done_ids:
            stats.n_skipped += 1
            continue
        stats.n_in += 1
        text, reason = check_text(rec.text, max_chars)
        if reason is not None:
            error(rec, reason)
            continue
        yield cast(str, text), cast(str, rec.id)  # a text without a reason is a str (check_text)


def resume_state(
    output: Path, output_format: str, errors_path: Path, resume: bool
) -> Tuple[Set[str], int, Set[int], int]:
    """What earlier runs finished, for --resume (nothing without it): the ids in the output and the
    input indices in the errors file, each with its number of entries. Reading them repairs what a
    killed run left unfinished (`done_output_ids`, `done_error_indices`).

    output (Path): the output file or folder.
    output_format (str): "jsonl" or "parquet".
    errors_path (Path): the errors file.
    resume (bool): whether the run resumes.
    RETURNS (Tuple[Set[str], int, Set[int], int]): done ids, records in the output, done indices,
        entries in the errors file.
    """
    if not resume:
        return set(), 0, set(), 0
    done_ids, n_done_out = done_output_ids(output, output_format)
    done_err, n_done_err = done_error_indices(errors_path)
    if n_done_out or n_done_err:
        logger.info("Resuming: %d records in %s, %d in %s", n_done_out, output, n_done_err, errors_path)
    return done_ids, n_done_out, done_err, n_done_err


def run_bulk(
    processor: Processor,
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
    rows_per_part: int = 10_000,
    limit: Optional[int] = None,
    progress: bool = True,
    span_keys: Optional[Sequence[str]] = None,
) -> BulkStats:
    """Read, validate, process and write: the backend-independent part of a bulk run.

    Everything that can be checked up front is, before any output is opened or replaced: the paths
    (`check_output_paths`: OUTPUT or the errors file must not be the input), the input, its format and
    its id and text fields. A run that has written documents but found no span at all in the first
    NO_SPANS_SAMPLE of them (or in all, when fewer) warns once (`BulkWarning`, also in `stats.warnings`).

    processor (Processor): turns (text, id) pairs into records in order.
    input_path (PathLike): the input (see `read_records`).
    output (PathLike): a .jsonl file or a .parquet folder.
    input_format (Optional[str]): input format (None: from the path).
    output_format (Optional[str]): "jsonl" or "parquet" (None: from the path).
    id_field (Optional[str]): id field or column of the input; None or "none": the 0-based record index.
    text_field (str): text field or column of the input.
    errors_path (Optional[PathLike]): the errors JSONL file (default: OUTPUT.errors.jsonl).
    resume (bool): continue a run: skip records already in the output or errors file.
    overwrite (bool): replace an existing output and errors file.
    max_chars (int): texts longer than this go to the errors file.
    flush_every (int): records per write (each write is flushed and fsynced).
    rows_per_part (int): records per Parquet part file.
    limit (Optional[int]): read at most this many input records.
    progress (bool): show a progress bar with docs/s and words/s.
    span_keys (Optional[Sequence[str]]): the span sources the processor reads (named in the no-spans warning).
    RETURNS (BulkStats): the counts; `stats.balanced` says whether in = written + errors.
    """
    check_run_numbers(max_chars=max_chars, flush_every=flush_every, limit=limit)
    output = Path(output)
    fmt, errors_path, exists = check_bulk_run(
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
        if fmt == "jsonl" and output.exists():
            output.unlink()
        elif output.exists():
            for p in list(output.glob("part-*.parquet")) + list(output.glob(".*.tmp")):
                p.unlink()
        if errors_path.exists():
            errors_path.unlink()
    done_ids, n_done_out, done_err, n_done_err = resume_state(output, fmt, errors_path, resume)

    stats = BulkStats(output=str(output), errors_path=str(errors_path))
    writer = JsonlWriter(output) if fmt == "jsonl" else ParquetPartsWriter(output, rows_per_part=rows_per_part)
    err_writer = JsonlWriter(errors_path)
    pending_errors: List[Dict[str, Any]] = []
    lengths: deque = deque()  # characters of the documents sent to the processor, in order

    def valid_items() -> Iterator[Tuple[str, str]]:
        for text, rid in valid_documents(
            records,
            stats,
            pending_errors.append,
            max_chars=max_chars,
            limit=limit,
            done_ids=done_ids,
            done_errors=done_err,
        ):
            lengths.append(len(text))
            yield text, rid

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="doc", desc="linking", dynamic_ncols=True, mininterval=0.5)
    t0 = time.perf_counter()
    buf: List[Dict[str, Any]] = []

    def flush() -> None:
        writer.write(buf)
        err_writer.write(pending_errors)
        pending_errors.clear()
        buf.clear()

    def warn_no_spans() -> None:
        message = no_spans_message(stats.n_written, span_keys)
        stats.warnings.append(message)
        warnings.warn(message, BulkWarning, stacklevel=3)

    try:
        for record in processor(valid_items()):
            buf.append(record)
            stats.n_written += 1
            stats.n_tokens += record["n_tokens"]
            stats.n_chars += lengths.popleft()
            stats.n_spans += len(record["spans"])
            if stats.n_written == NO_SPANS_SAMPLE and stats.n_spans == 0:
                warn_no_spans()
            if len(buf) >= flush_every:
                flush()
            if bar is not None:
                bar.update(1)
                if stats.n_written % 50 == 0:
                    el = time.perf_counter() - t0
                    bar.set_postfix(words_s=f"{stats.n_tokens / el:,.0f}", errors=stats.n_errors, refresh=False)
        flush()
        if 0 < stats.n_written < NO_SPANS_SAMPLE and stats.n_spans == 0:
            warn_no_spans()
    finally:
        writer.close()
        err_writer.close()
        if bar is not None:
            bar.close()
    stats.seconds = time.perf_counter() - t0
    stats.total_written = n_done_out + stats.n_written
    stats.total_errors = n_done_err + stats.n_errors
    logger.info(stats.summary())
    return stats


def link_documents(
    model: Union[str, Path, Language],
    input_path: PathLike,
    output: PathLike,
    *,
    n_process: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    span_keys: Sequence[str] = ("ents",),
    top_k: Optional[int] = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    mentions: Optional[str] = None,
    **kwargs: Any,
) -> BulkStats:
    """Link every document of INPUT with a spaCy pipeline and write one record per
    document to OUTPUT (streaming: memory stays flat whatever the input size).

    model (Union[str, Path, Language]): the pipeline (see `load_pipeline`).
    input_path (PathLike): JSONL, CSV/TSV or Parquet file, or a folder of .txt files.
    output (PathLike): a .jsonl file or a .parquet folder.
    n_process (int): worker processes for `nlp.pipe`.
    batch_size (int): documents per `nlp.pipe` batch.
    span_keys (Sequence[str]): span sources: "ents" and/or span group keys.
    top_k (Optional[int]): candidates kept per span (None: all the linker gives).
    max_chars (int): texts longer than this go to the errors file.
    mentions (Optional[str]): put this mention finder ("noun_chunks", "ruler",
        "ner") in front of the linker pipeline MODEL (see `build_clinical_pipeline`).
    **kwargs: the other options of `run_bulk` (id_field, text_field, errors_path,
        resume, overwrite, input_format, output_format, flush_every, limit, progress).
    RETURNS (BulkStats): the counts and timings.
    """
    if n_process < 1:
        raise ValueError(f"n_process must be at least 1, not {n_process}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}.")
    check_keys = ("input_format", "output_format", "id_field", "text_field", "errors_path", "resume", "overwrite")
    check_bulk_run(input_path, output, **{k: kwargs[k] for k in check_keys if k in kwargs})
    nlp = load_pipeline(model, max_chars=max_chars, mentions=mentions)
    proc = local_processor(nlp, n_process=n_process, batch_size=batch_size, span_keys=span_keys, top_k=top_k)
    kwargs.setdefault("span_keys", span_keys)
    return run_bulk(proc, input_path, output, max_chars=max_chars, **kwargs)


__all__ = [
    "DEFAULT_MAX_CHARS",
    "NO_SPANS_SAMPLE",
    "BulkStats",
    "BulkWarning",
    "Processor",
    "check_bulk_run",
    "check_output_paths",
    "check_run_numbers",
    "error_entry",
    "link_documents",
    "load_pipeline",
    "local_processor",
    "no_spans_message",
    "one_thread_per_process",
    "resume_state",
    "run_bulk",
    "valid_documents",
]
