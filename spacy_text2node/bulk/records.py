"""Doc -> plain record: the one function both backends use, so their outputs are equal."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from spacy.tokens import Doc, Span

from ..pipeline.context import FLAGS, context_flags
from ..pipeline.spans import predicted_concepts

CANDIDATES_ATTR = "text2node_candidates"
CONTEXT_FIELDS = FLAGS  # "negated", "historical", "hypothetical": see pipeline.context

# The Parquet / Spark schema of one output record, as (name, type) pairs; see the README, Bulk linking.
CANDIDATE_FIELDS = (("concept_id", "string"), ("concept_label", "string"), ("score", "double"))
SPAN_FIELDS = (
    ("start", "long"),
    ("end", "long"),
    ("text", "string"),
    ("label", "string"),
    ("source", "string"),
    ("concept_id", "string"),
    ("concept_label", "string"),
    ("score", "double"),
    ("negated", "boolean"),
    ("historical", "boolean"),
    ("hypothetical", "boolean"),
    ("concepts", "array<string>"),
)
RECORD_FIELDS = ("id", "n_tokens", "spans")

# A processor (a backend: local or Spark) turns (text, doc_id) pairs into output records, in the same order.
Processor = Callable[[Iterator[Tuple[str, str]]], Iterator[Dict[str, Any]]]


def iter_spans(doc: Doc, span_keys: Sequence[str]) -> Iterable[Tuple[str, Span]]:
    """Yield (source, span) for each span source, in order.

    doc (Doc): the processed document.
    span_keys (Sequence[str]): "ents" for `doc.ents`, any other key for
        `doc.spans[key]` (a missing group yields nothing).
    YIELDS (Tuple[str, Span]): the source key and the span.
    """
    for key in span_keys:
        if key == "ents":
            spans: Iterable[Span] = doc.ents
        elif key in doc.spans:
            spans = doc.spans[key]
        else:
            continue
        for span in spans:
            yield key, span


def _candidates(span: Span, top_k: Optional[int]) -> List[Dict[str, Any]]:
    if not Span.has_extension(CANDIDATES_ATTR):
        return []
    cands = getattr(span._, CANDIDATES_ATTR) or []
    out = []
    for cand in cands[: top_k if top_k is not None else len(cands)]:
        cid, label, score = cand[0], cand[1], cand[2]
        out.append(
            {
                "concept_id": None if cid is None else str(cid),
                "concept_label": None if label is None else str(label),
                "score": None if score is None else float(score),
            }
        )
    return out


def span_to_record(span: Span, source: str = "ents", top_k: Optional[int] = None) -> Dict[str, Any]:
    """Convert one span to a plain dict.

    The concept is `span.kb_id_` when the linker set it; its label and score come
    from the matching entry of `span._.text2node_candidates` (the linker's top-k).
    `concepts` is `span._.text2node_concepts` (one concept per part of a composite
    mention) when the linker set it, else [concept_id] ([] for NIL). `negated`,
    `historical` and `hypothetical` are the flags a `text2node_context` component
    computed for the span's source (None where none did).

    span (Span): the span.
    source (str): where the span came from ("ents" or a span group key).
    top_k (Optional[int]): keep at most this many candidates (None: all the linker gave).
    RETURNS (Dict[str, Any]): start and end (character offsets), text, label, source,
        concept_id, concept_label, score, negated, historical, hypothetical, concepts
        and candidates.
    """
    cands = _candidates(span, top_k)
    concept_id = span.kb_id_ or None
    concept_label = None
    score = None
    if concept_id is not None:
        for cand in cands:
            if cand["concept_id"] == concept_id:
                concept_label, score = cand["concept_label"], cand["score"]
                break
    flags = context_flags(span, source)
    rec: Dict[str, Any] = {
        "start": span.start_char,
        "end": span.end_char,
        "text": span.text,
        "label": span.label_,
        "source": source,
        "concept_id": concept_id,
        "concept_label": concept_label,
        "score": score,
    }
    for name in CONTEXT_FIELDS:
        rec[name] = flags.get(name)
    rec["concepts"] = predicted_concepts(span)
    rec["candidates"] = cands
    return rec


def doc_to_record(
    doc: Doc, doc_id: str, *, span_keys: Sequence[str] = ("ents",), top_k: Optional[int] = None
) -> Dict[str, Any]:
    """Convert a processed Doc to the plain output record of the bulk runners.

    doc (Doc): the processed document.
    doc_id (str): the document's id.
    span_keys (Sequence[str]): span sources, "ents" or span group keys.
    top_k (Optional[int]): candidates kept per span (None: all).
    RETURNS (Dict[str, Any]): {"id", "n_tokens", "spans": [...]}, JSON-serializable.
    """
    return {
        "id": doc_id,
        "n_tokens": len(doc),
        "spans": [span_to_record(span, src, top_k) for src, span in iter_spans(doc, span_keys)],
    }


def arrow_schema():
    """The pyarrow schema of an output record (for Parquet output)."""
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "long": pa.int64(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "array<string>": pa.list_(pa.string()),
    }
    cand = pa.struct([(n, types[t]) for n, t in CANDIDATE_FIELDS])
    span = pa.struct([(n, types[t]) for n, t in SPAN_FIELDS] + [("candidates", pa.list_(cand))])
    return pa.schema([("id", pa.string()), ("n_tokens", pa.int64()), ("spans", pa.list_(span))])


def spark_schema_ddl(with_error: bool = True) -> str:
    """The Spark DDL schema of an output record (plus an `error` column)."""
    cand = ", ".join(f"{n}: {t}" for n, t in CANDIDATE_FIELDS)
    span = ", ".join(f"{n}: {t}" for n, t in SPAN_FIELDS) + f", candidates: array<struct<{cand}>>"
    ddl = f"id string, n_tokens long, spans array<struct<{span}>>"
    return ddl + (", error string" if with_error else "")
