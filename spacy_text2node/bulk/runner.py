"""The local bulk runner: stream records through a spaCy pipeline into an output.

from spacy_text2node.bulk import link_documents
stats = link_documents("my_pipeline", "notes.jsonl", "linked.jsonl", n_process=2)
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import spacy
from spacy.language import Language

from .io import (
    OUTPUT_FORMATS,
    JsonlWriter,
    ParquetPartsWriter,
    PathLike,
    check_text,
    detect_output_format,
    done_error_indices,
    done_output_ids,
    normalize_id_field,
    read_records,
)
from .records import doc_to_record

logger = logging.getLogger("spacy_text2node")

DEFAULT_MAX_CHARS = 1_000_000
# A run that has written this many documents without a single span warns (once).
NO_SPANS_SAMPLE = 200
# A processor turns (text, doc_id) pairs into output records, in the same order.
Processor = Callable[[Iterator[Tuple[str, str]]], Iterator[Dict[str, Any]]]


@dataclass
class BulkStats:
    """What a bulk run did.

    n_in (int): input records seen by this run, not counting those skipped on resume.
    n_written (int): records written to the output by this run.
    n_errors (int): records written to the errors file by this run.
    n_skipped (int): records skipped because an earlier run finished them (--resume).
    n_tokens (int): tokens in the written documents.
    n_chars (int): characters in the written documents.
    n_spans (int): spans in the written documents.
    seconds (float): wall time of the run.
    total_written (int): records in the output after the run.
    total_errors (int): entries in the errors file after the run.
    output (str): the output path.
    errors_path (str): the errors file.
    reasons (Dict[str, int]): errors by kind of reason.
    warnings (List[str]): what the run warned about (e.g. no spans found at all).
    """

    n_in: int = 0
    n_written: int = 0
    n_errors: int = 0
    n_skipped: int = 0
    n_tokens: int = 0
    n_chars: int = 0
    n_spans: int = 0
    seconds: float = 0.0
    total_written: int = 0
    total_errors: int = 0
    output: str = ""
    errors_path: str = ""
    reasons: Dict[str, int] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        """True when every input record is in the output or the errors file."""
        return (
            self.n_in == self.n_written + self.n_errors
            and self.n_in + self.n_skipped == self.total_written + self.total_errors
        )

    @property
    def docs_per_second(self) -> float:
        return self.n_written / self.seconds if self.seconds else 0.0

    @property
    def words_per_second(self) -> float:
        return self.n_tokens / self.seconds if self.seconds else 0.0

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.update(balanced=self.balanced, docs_per_second=self.docs_per_second, words_per_second=self.words_per_second)
        return d

    def summary(self) -> str:
        """One line: in = written + errors, for this run and in total."""
        s = f"documents in {self.n_in:,} = written {self.n_written:,} + errors {self.n_errors:,}"
        if self.n_skipped:
            s += (
                f"; with {self.n_skipped:,} done by earlier runs: input {self.n_in + self.n_skipped:,} = "
                f"output {self.total_written:,} + errors file {self.total_errors:,}"
            )
        return s + ("" if self.balanced else "  (MISMATCH)")


class BulkWarning(UserWarning):
    """A bulk run's output is probably not what was meant (e.g. no spans found at all)."""


def no_spans_message(n_docs: int, span_keys: Optional[Sequence[str]] = None) -> str:
    """The warning of a run that found no spans in its first `n_docs` documents.

    n_docs (int): documents written so far.
    span_keys (Optional[Sequence[str]]): the span sources read, when known.
    RETURNS (str): the message, saying what to change.
    """
    keys = f" (span sources read: {', '.join(span_keys)})" if span_keys else ""
    return (
        f"No spans were found in the first {n_docs} documents{keys}: the pipeline has no mention finder in front "
        f"of the linker, or the linker links `spans` of a kind the pipeline does not produce. Use --mentions "
        f"ner|ruler|noun_chunks, or configs/clinical.cfg, or check --span-key."
    )


def _same_path(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        try:
            return os.path.samefile(a, b)
        except OSError:
            pass
    return a.resolve() == b.resolve()


def check_output_paths(input_path: PathLike, output: PathLike, errors_path: PathLike, output_format: str) -> None:
    """Refuse outputs that would destroy the input or cannot be written, before anything is opened:
    OUTPUT or the errors file being the input (also through links or `..`), the input inside a Parquet
    output folder, the errors file being OUTPUT, a folder where a JSONL file goes, a file where a
    Parquet folder goes.

    input_path (PathLike): the input.
    output (PathLike): the output file or folder.
    errors_path (PathLike): the errors file.
    output_format (str): "jsonl" or "parquet".
    """
    inp, out, err = Path(input_path), Path(output), Path(errors_path)
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(
            f"Unknown output format {output_format!r} (--output-format): use one of {', '.join(OUTPUT_FORMATS)}."
        )
    if inp.exists():
        if _same_path(out, inp):
            raise ValueError(f"The output {out} is the same file as the input {inp}: choose another OUTPUT.")
        if _same_path(err, inp):
            raise ValueError(
                f"The errors file {err} is the same file as the input {inp}: choose another --errors path."
            )
        if output_format == "parquet" and out.resolve() in inp.resolve().parents:
            raise ValueError(f"The input {inp} is inside the output folder {out}: choose another OUTPUT.")
    if _same_path(err, out):
        raise ValueError(f"The errors file {err} is the output {out}: choose another --errors path.")
    if output_format == "jsonl" and out.is_dir():
        raise ValueError(
            f"The output {out} is a folder; JSONL output is a file (a .parquet OUTPUT is a folder of part files). "
            f"Choose another OUTPUT."
        )
    if output_format == "parquet" and out.exists() and not out.is_dir():
        raise ValueError(
            f"The output {out} is a file; Parquet output is a folder of part files. Remove it or choose another OUTPUT."
        )
    if err.is_dir():
        raise ValueError(f"The errors file {err} is a folder: choose another --errors path.")


def check_bulk_run(
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
    """Check a bulk run before anything is loaded, opened or replaced: the output paths
    (`check_output_paths`), the input with its id and text fields (`read_records`), and that an
    existing output comes with --resume or --overwrite. Reads the input's header or first record only.

    input_path (PathLike): the input.
    output (PathLike): the output file or folder.
    input_format, output_format, id_field, text_field, errors_path, resume, overwrite: as in `run_bulk`.
    RETURNS (Tuple[str, Path, bool]): the output format, the errors file, and whether an output exists.
    """
    output = Path(output)
    fmt = output_format or detect_output_format(output)
    errors = Path(errors_path) if errors_path else output.with_name(output.name + ".errors.jsonl")
    check_output_paths(input_path, output, errors, fmt)
    records = read_records(
        input_path, input_format=input_format, id_field=normalize_id_field(id_field), text_field=text_field
    )
    close = getattr(records, "close", None)
    if close is not None:
        close()
    out_exists = output.exists() and (fmt == "jsonl" or any(output.glob("part-*.parquet")))
    if (out_exists or errors.exists()) and not (resume or overwrite):
        raise ValueError(
            f"Output {output if out_exists else errors} already exists. Pass --resume to continue "
            f"that run, or --overwrite to start again."
        )
    return fmt, errors, out_exists or errors.exists()


def _register_components() -> None:
    """Import the package's components so their factories exist in this process
    (also in Spark executors and spawned workers, where entry points may be absent)."""
    import importlib

    for mod in ("spacy_text2node.pipeline.linker", "spacy_text2node.vectors.component"):
        try:
            importlib.import_module(mod)
        except ImportError as e:  # a layer not installed: pipelines that need it fail with spaCy's E002
            logger.debug("could not import %s: %s", mod, e)


def load_pipeline(
    model: Union[str, Path, Language],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    exclude: Sequence[str] = (),
    overrides: Optional[Dict[str, Any]] = None,
    mentions: Optional[str] = None,
) -> Language:
    """Load a pipeline for bulk linking.

    model (Union[str, Path, Language]): an installed package name, a pipeline folder
        (written by `nlp.to_disk`), a `.cfg` config file, or a Language (used as is).
        A config is built and initialized: components with `source` keep their
        weights, the others are initialized from its [initialize] section; a
        component whose `source` is null (an unset path such as `paths.linker`) is
        left out with a warning.
    max_chars (int): raise `nlp.max_length` to at least this.
    exclude (Sequence[str]): components not to load.
    overrides (Optional[Dict[str, Any]]): config overrides ({"paths.linker": "..."}).
    mentions (Optional[str]): "noun_chunks", "ruler" or "ner": treat MODEL as a
        linker pipeline and put that mention finder in front of it
        (`build_clinical_pipeline`).
    RETURNS (Language): the pipeline.
    """
    from . import clinical  # noqa: F401  (registers the mention components and pattern builder)

    _register_components()
    if isinstance(model, Language):
        nlp = model
    elif str(model).endswith(".cfg"):
        from spacy.util import get_sourced_components, load_config, load_model_from_config

        path = Path(model)
        if not path.exists():
            raise ValueError(f"Config {path} does not exist.")
        config = load_config(path, overrides=dict(overrides or {}), interpolate=True)
        for name in list(config["nlp"]["pipeline"]):
            comp = config["components"].get(name, {})
            if "source" in comp and comp["source"] in (None, "", "null"):
                logger.warning("%s: component %r has no source (an unset path): leaving it out", path, name)
                config["nlp"]["pipeline"] = [n for n in config["nlp"]["pipeline"] if n != name]
                del config["components"][name]
        nlp = load_model_from_config(config, auto_fill=True, exclude=list(exclude))
        sourced = set(get_sourced_components(config))
        with nlp.select_pipes(disable=[n for n in nlp.pipe_names if n in sourced]):
            nlp.initialize()
        _configure_sourced_linker(nlp, config, path)
    else:
        try:
            nlp = spacy.load(model, exclude=list(exclude), config=dict(overrides or {}))
        except OSError as e:
            raise ValueError(
                f"Cannot load the pipeline {model!r}: {e}. Give an installed pipeline package, "
                f"a folder written by nlp.to_disk, or a .cfg config file."
            ) from None
    if mentions:
        nlp = clinical.build_clinical_pipeline(nlp, mentions=mentions)
    elif not isinstance(model, Language):
        _warn_whole_doc_linking(nlp)
    nlp.max_length = max(nlp.max_length, max_chars + 1)
    return nlp


def _configure_sourced_linker(nlp: Language, config: Any, path: Path) -> None:
    """A linker sourced by a config keeps the settings it was saved with: apply the
    `spans` the config gives beside `source`, and refuse a linker that would link whole
    documents behind components that find mentions (it would overwrite them)."""
    from .clinical import LINKER, link_mentions, mention_finders

    if LINKER not in nlp.pipe_names or "source" not in config["components"].get(LINKER, {}):
        return
    spans = config["components"][LINKER].get("spans")
    if spans is not None:
        link_mentions(nlp, spans)
        return
    finders = mention_finders(nlp)
    if finders and nlp.get_pipe(LINKER).cfg.get("spans") == "doc":
        raise ValueError(
            f"{path}: the {LINKER} sourced from {config['components'][LINKER]['source']} links each whole "
            f'document as one span (spans="doc": it was trained on phrases), which would replace the mentions '
            f'found by {", ".join(finders)}. Add `spans = "ents"` under [components.{LINKER}] beside `source`.'
        )


def _warn_whole_doc_linking(nlp: Language) -> None:
    from .clinical import LINKER, mention_finders

    if LINKER in nlp.pipe_names and nlp.get_pipe(LINKER).cfg.get("spans") == "doc" and not mention_finders(nlp):
        logger.warning(
            "%s links each whole record as one phrase (spans='doc'): right for a file of phrases. "
            "For notes, put a mention finder in front: --mentions ner|ruler|noun_chunks "
            "(API: mentions=...), or run configs/clinical.cfg with --paths.linker.",
            LINKER,
        )


_WORKER: Dict[str, Any] = {}


def one_thread_per_process(nlp: Language) -> None:
    """Run this process's pipeline on one thread (torch, numpy's BLAS and the
    text2node_linker's search threads): where processes are the parallelism (the
    `n_process` workers, Spark's Python workers), threads inside them only contend."""
    torch = sys.modules.get("torch")  # only where the pipeline brought it in
    if torch is not None:
        torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - scikit-learn brings it
        pass
    for _, pipe in nlp.pipeline:
        cfg = getattr(pipe, "cfg", None)
        if isinstance(cfg, dict) and "n_threads" in cfg:
            cfg["n_threads"] = 1


def _worker_init(nlp: Language, span_keys: Sequence[str], top_k: Optional[int], batch_size: int) -> None:
    one_thread_per_process(nlp)
    _WORKER.update(nlp=nlp, span_keys=tuple(span_keys), top_k=top_k, batch_size=batch_size)


def _worker_run(batch: List[Tuple[str, str]]) -> List[Dict[str, Any]]:
    nlp = _WORKER["nlp"]
    return [
        doc_to_record(doc, doc_id, span_keys=_WORKER["span_keys"], top_k=_WORKER["top_k"])
        for doc, doc_id in nlp.pipe(batch, as_tuples=True, batch_size=_WORKER["batch_size"])
    ]


def local_processor(
    nlp: Language,
    *,
    n_process: int = 1,
    batch_size: int = 64,
    span_keys: Sequence[str] = ("ents",),
    top_k: Optional[int] = None,
) -> Processor:
    """The local backend. With one process: `nlp.pipe(..., as_tuples=True)`. With
    more: a pool of worker processes (forked where the platform can, so the pipeline
    is not reloaded), each running `nlp.pipe` on batches and sending back plain
    records rather than Docs (cheaper than Doc serialization, and independent of
    what components keep in `doc.user_data`). At most 2 x n_process batches are in
    flight, so memory stays flat; records come back in input order.

    nlp (Language): the pipeline.
    n_process (int): worker processes (1: in this process).
    batch_size (int): documents per batch.
    span_keys (Sequence[str]): span sources ("ents" or span group keys).
    top_k (Optional[int]): candidates kept per span.
    RETURNS (Processor): a function from (text, id) pairs to records, order kept.
    """

    def process_one(items: Iterator[Tuple[str, str]]) -> Iterator[Dict[str, Any]]:
        for doc, doc_id in nlp.pipe(items, as_tuples=True, batch_size=batch_size):
            yield doc_to_record(doc, doc_id, span_keys=span_keys, top_k=top_k)

    def process_many(items: Iterator[Tuple[str, str]]) -> Iterator[Dict[str, Any]]:
        import multiprocessing as mp
        from collections import deque

        from spacy.util import minibatch

        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        ctx = mp.get_context(method)
        with ctx.Pool(n_process, initializer=_worker_init, initargs=(nlp, tuple(span_keys), top_k, batch_size)) as pool:
            pending: deque = deque()
            for batch in minibatch(items, batch_size):
                pending.append(pool.apply_async(_worker_run, (list(batch),)))
                while len(pending) >= 2 * n_process:
                    yield from pending.popleft().get()
            while pending:
                yield from pending.popleft().get()

    return process_one if n_process == 1 else process_many


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
    for name, value, least in (("max_chars", max_chars, 1), ("flush_every", flush_every, 1), ("limit", limit, 0)):
        if value is not None and value < least:
            raise ValueError(f"{name} must be at least {least}, not {value}.")
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
    done_ids, n_done_out = done_output_ids(output, fmt) if resume else (set(), 0)
    done_err, n_done_err = done_error_indices(errors_path) if resume else (set(), 0)
    if resume and (n_done_out or n_done_err):
        logger.info("Resuming: %d records in %s, %d in %s", n_done_out, output, n_done_err, errors_path)

    stats = BulkStats(output=str(output), errors_path=str(errors_path))
    writer = JsonlWriter(output) if fmt == "jsonl" else ParquetPartsWriter(output, rows_per_part=rows_per_part)
    err_writer = JsonlWriter(errors_path)
    pending_errors: List[Dict[str, Any]] = []
    seen: set = set()
    lengths: deque = deque()  # characters of the documents sent to the processor, in order

    def error(rec, reason: str) -> None:
        pending_errors.append({"id": rec.id, "index": rec.index, "line": rec.line, "reason": reason})
        stats.n_errors += 1
        key = reason.split(":")[0].split(" (")[0]
        stats.reasons[key] = stats.reasons.get(key, 0) + 1

    def valid_items() -> Iterator[Tuple[str, str]]:
        for n, rec in enumerate(records):
            if limit is not None and n >= limit:
                break
            if rec.index in done_err:
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
            seen.add(rec.id)
            if rec.id in done_ids:
                stats.n_skipped += 1
                continue
            stats.n_in += 1
            text, reason = check_text(rec.text, max_chars)
            if reason is not None:
                error(rec, reason)
                continue
            lengths.append(len(text))
            yield text, rec.id

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
    batch_size: int = 64,
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
