"""Which spans the linker links, and where it writes their concept.

The `spans` setting is a registered span getter, as spaCy's span getters are:

    [components.text2node_linker.spans]
    @misc = "spacy-text2node.ents_getter.v1"          # doc.ents
    # "spacy-text2node.doc_getter.v1"                  each doc is one phrase (becomes one entity)
    # "spacy-text2node.noun_chunks_getter.v1"          doc.noun_chunks
    # "spacy-text2node.span_group_getter.v1", key = "sc"   a span group

The string forms ("ents", "doc", "noun_chunks", "spans:<key>") are accepted too; the
component keeps the string in its cfg (`SpanSource.mode`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import registry

CANDIDATES_EXT = "text2node_candidates"
CONCEPTS_EXT = "text2node_concepts"
GOLD_EXT = "text2node_gold"
DOC_LABEL = "CONCEPT"
MODES = ("ents", "doc", "noun_chunks")

if not Span.has_extension(CANDIDATES_EXT):
    Span.set_extension(CANDIDATES_EXT, default=None)
if not Span.has_extension(CONCEPTS_EXT):
    Span.set_extension(CONCEPTS_EXT, default=None)
if not Span.has_extension(GOLD_EXT):
    Span.set_extension(GOLD_EXT, default=None)


class SpanSource:
    """The spans of a doc the linker links (`__call__`), the gold spans of a reference doc
    it trains on (`gold_spans`) and where a span's concept is written (`annotate`)."""

    def __init__(self, mode: str) -> None:
        self.mode = check_spans_setting(mode)
        self.key: Optional[str] = mode.split(":", 1)[1] if mode.startswith("spans:") else None

    def __repr__(self) -> str:
        return f"SpanSource({self.mode!r})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, SpanSource) and other.mode == self.mode

    def __hash__(self) -> int:
        return hash(self.mode)

    def __call__(self, doc: Doc) -> List[Span]:
        if self.mode == "ents":
            return list(doc.ents)
        if self.mode == "doc":
            return [doc[:]]
        if self.mode == "noun_chunks":
            return list(doc.noun_chunks)
        return list(doc.spans[self.key]) if self.key in doc.spans else []

    def gold_spans(self, reference: Doc) -> List[Span]:
        """The reference spans that carry gold concepts (a span group falls back to ents)."""
        if self.key is not None and self.key in reference.spans:
            return list(reference.spans[self.key])
        return list(reference.ents)

    def annotate(self, doc: Doc, spans: Sequence[Span], kb_ids: Sequence[str]) -> List[Span]:
        """Write each span's concept id (its kb_id) and return the spans as the doc now
        holds them (the ones the candidates extension is set on)."""
        if self.mode == "ents":
            for span, kb in zip(spans, kb_ids):
                for token in span:
                    token.ent_kb_id_ = kb
            return list(doc.ents)
        if self.mode == "doc":
            if not len(doc):
                return list(spans)
            doc.ents = [Span(doc, 0, len(doc), label=DOC_LABEL, kb_id=kb_ids[0])]
            return list(doc.ents)
        if self.key is not None:
            doc.spans[self.key] = [Span(doc, s.start, s.end, label=s.label, kb_id=kb) for s, kb in zip(spans, kb_ids)]
            return list(doc.spans[self.key])
        return list(spans)  # noun chunks are not stored: only the candidates extension


def check_spans_setting(spans: Any) -> str:
    """Validate the linker's `spans` setting in its string form.

    spans (Any): "ents", "doc", "noun_chunks" or "spans:<key>".
    RETURNS (str): the value.
    """
    if isinstance(spans, SpanSource):
        return spans.mode
    if not isinstance(spans, str) or not (spans in MODES or (spans.startswith("spans:") and len(spans) > 6)):
        raise ValueError(
            f"text2node_linker: spans={spans!r} is not one of 'ents' (the mentions in doc.ents), 'doc' (each doc "
            f"is one phrase), 'noun_chunks', 'spans:<key>' (a span group), or a span getter such as "
            '{"@misc": "spacy-text2node.ents_getter.v1"}.'
        )
    return spans


def spans_config(spans: Any) -> Dict[str, str]:
    """The config block of the span getter for a `spans` setting (a string or a SpanSource):
    what a pipeline's config.cfg holds for it."""
    mode = check_spans_setting(spans)
    if mode.startswith("spans:"):
        return {"@misc": "spacy-text2node.span_group_getter.v1", "key": mode[len("spans:") :]}
    return {"@misc": f"spacy-text2node.{mode}_getter.v1"}


def span_source(spans: Any) -> SpanSource:
    """The SpanSource of a `spans` setting (a string or a SpanSource)."""
    return spans if isinstance(spans, SpanSource) else SpanSource(check_spans_setting(spans))


@registry.misc("spacy-text2node.ents_getter.v1")
def ents_getter() -> SpanSource:
    """Link the entities (`doc.ents`); the concept goes to their tokens' ent_kb_id."""
    return SpanSource("ents")


@registry.misc("spacy-text2node.doc_getter.v1")
def doc_getter() -> SpanSource:
    """Link each whole doc as one phrase; it becomes one entity labelled CONCEPT."""
    return SpanSource("doc")


@registry.misc("spacy-text2node.noun_chunks_getter.v1")
def noun_chunks_getter() -> SpanSource:
    """Link the noun chunks (they are not stored: only the candidates extension is set)."""
    return SpanSource("noun_chunks")


@registry.misc("spacy-text2node.span_group_getter.v1")
def span_group_getter(key: str) -> SpanSource:
    """Link the spans of the span group `key` (rewritten with their kb_id)."""
    return SpanSource(f"spans:{key}")


def gold_ids(span: Span) -> List[str]:
    """The right concept ids of a gold span: its `_.text2node_gold`, else its kb_id_ (or none)."""
    gold = span._.get(GOLD_EXT)
    if gold:
        return [str(g) for g in gold]
    return [span.kb_id_] if span.kb_id_ else []


def training_spans(source: SpanSource, eg: Example) -> Tuple[List[Tuple[int, int]], List[List[str]]]:
    """Token offsets in the predicted doc and gold ids of each gold span of an example."""
    offsets, golds = [], []
    for span in source.gold_spans(eg.reference):
        g = gold_ids(span)
        if not g:
            continue
        pred = eg.predicted.char_span(span.start_char, span.end_char, alignment_mode="expand")
        if pred is None:
            continue
        offsets.append((pred.start, pred.end))
        golds.append(g)
    return offsets, golds


def linked_spans(doc: Doc) -> List[Span]:
    """The spans of a doc that carry linker candidates (entities, span groups and, in a
    parsed doc, noun chunks)."""
    spans = list(doc.ents)
    for group in doc.spans.values():
        spans.extend(group)
    if doc.has_annotation("DEP"):
        try:
            spans.extend(doc.noun_chunks)
        except NotImplementedError:  # a language without a noun chunk iterator
            pass
    return [s for s in spans if s._.get(CANDIDATES_EXT) is not None]


def predicted_concepts(span: Span) -> List[str]:
    """The concepts a linked span was given: `_.text2node_concepts` (one per part of a
    composite mention), else its kb_id_ (none for NIL)."""
    concepts = span._.get(CONCEPTS_EXT)
    if concepts is not None:
        return [str(c) for c in concepts]
    return [span.kb_id_] if span.kb_id_ else []
