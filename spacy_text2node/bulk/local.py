"""The local backend: `nlp.pipe` in this process or in a pool of worker processes.
(The Spark backend is `spark.py`.)"""

from __future__ import annotations

import gc
import sys
from contextlib import contextmanager, nullcontext
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from spacy.language import Language

from .pipeline_loading import DEFAULT_BATCH_SIZE
from .records import Processor, doc_to_record

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


@contextmanager
def one_thread_while_forking(nlp: Language) -> Iterator[None]:
    """`one_thread_per_process` for the workers forked inside the block; this process's
    thread settings (torch, BLAS, the components' n_threads) are restored after it."""
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    cfgs = [cfg for cfg in (getattr(pipe, "cfg", None) for _, pipe in nlp.pipeline) if isinstance(cfg, dict)]
    saved = [(cfg, cfg["n_threads"]) for cfg in cfgs if "n_threads" in cfg]
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        blas: Any = nullcontext()
    else:
        blas = threadpool_limits(limits=None)  # restores the BLAS threads on exit
    with blas:
        try:
            one_thread_per_process(nlp)
            yield
        finally:
            for cfg, n in saved:
                cfg["n_threads"] = n
            if torch is not None and torch_threads is not None:
                torch.set_num_threads(torch_threads)


def _worker_init(nlp: Language, span_keys: Sequence[str], top_k: Optional[int], batch_size: int) -> None:
    one_thread_per_process(nlp)
    _WORKER.update(nlp=nlp, span_keys=tuple(span_keys), top_k=top_k, batch_size=batch_size)


def _worker_run(batch: List[Tuple[str, str]]) -> List[Dict[str, Any]]:
    nlp = _WORKER["nlp"]
    records = [
        doc_to_record(doc, doc_id, span_keys=_WORKER["span_keys"], top_k=_WORKER["top_k"])
        for doc, doc_id in nlp.pipe(batch, as_tuples=True, batch_size=_WORKER["batch_size"])
    ]
    release_free_memory()
    return records


def release_free_memory() -> None:
    """Give the memory a batch freed back to the system (glibc's malloc_trim), where the
    C library has it: the allocator otherwise keeps a batch's peak as the worker's size."""
    trim = _WORKER.get("malloc_trim", 0)
    if trim == 0:
        try:
            import ctypes

            trim = _WORKER["malloc_trim"] = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            trim = _WORKER["malloc_trim"] = None
    if trim is not None:
        trim(0)


WARM_UP_TEXT = "No chest pain. History of type 2 diabetes mellitus and essential hypertension (HTN)."


def warm_up(nlp: Language) -> None:
    """Run the pipeline once before workers are forked: what its components build on first
    use (compiled kernels, lazily built tables) is then built once and shared with the
    workers, not built again in each."""
    for _ in nlp.pipe([WARM_UP_TEXT]):
        pass


WORKER_POOLS = ("text2node", "spacy")


@contextmanager
def frozen_heap() -> Iterator[None]:
    """While worker processes are forked: the parent's Python objects (the pipeline's
    taxonomy, strings, tables) sit in a generation the cyclic collector never scans, so
    a collection in a worker does not write to, and so copy, the pages it shares with the
    parent (Python's gc.freeze recipe). Unfrozen after, for a long-lived caller."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def local_processor(
    nlp: Language,
    *,
    n_process: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    span_keys: Sequence[str] = ("ents",),
    top_k: Optional[int] = None,
    pool: str = "text2node",
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
    pool (str): "text2node" (the pool above) or "spacy" (`nlp.pipe(n_process=...)`, whose
        workers send back serialized Docs); both give the same records (docs/bulk.md, Workers).
    RETURNS (Processor): a function from (text, id) pairs to records, order kept.
    """
    if pool not in WORKER_POOLS:
        raise ValueError(f"Unknown worker pool {pool!r}: use one of {', '.join(WORKER_POOLS)}.")

    def process_one(items: Iterator[Tuple[str, str]]) -> Iterator[Dict[str, Any]]:
        for doc, doc_id in nlp.pipe(items, as_tuples=True, batch_size=batch_size):
            yield doc_to_record(doc, doc_id, span_keys=span_keys, top_k=top_k)

    def process_many(items: Iterator[Tuple[str, str]]) -> Iterator[Dict[str, Any]]:
        import multiprocessing as mp
        from collections import deque

        from spacy.util import minibatch

        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        ctx = mp.get_context(method)
        warm_up(nlp)
        with (
            frozen_heap(),
            ctx.Pool(
                n_process, initializer=_worker_init, initargs=(nlp, tuple(span_keys), top_k, batch_size)
            ) as workers,
        ):
            pending: deque = deque()
            for batch in minibatch(items, batch_size):
                pending.append(workers.apply_async(_worker_run, (list(batch),)))
                while len(pending) >= 2 * n_process:
                    yield from pending.popleft().get()
            while pending:
                yield from pending.popleft().get()

    def process_spacy(items: Iterator[Tuple[str, str]]) -> Iterator[Dict[str, Any]]:
        warm_up(nlp)
        # one thread while the workers start (they inherit it); the caller's own again after
        with one_thread_while_forking(nlp), frozen_heap():
            for doc, doc_id in nlp.pipe(items, as_tuples=True, batch_size=batch_size, n_process=n_process):
                yield doc_to_record(doc, doc_id, span_keys=span_keys, top_k=top_k)

    if n_process == 1:
        return process_one
    return process_many if pool == "text2node" else process_spacy
