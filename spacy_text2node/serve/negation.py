"""Negation for the service: negspacy's `negex` with the clinical termsets, and reading it back."""

from __future__ import annotations

from typing import Sequence

from spacy.language import Language
from spacy.tokens import Span

NEGEX = "negex"
SENTENCE_SETTERS = ("parser", "senter", "sentencizer")


def negation_pipe(nlp: Language) -> bool:
    """Whether the pipeline has a negspacy `negex` component (whatever its name).

    nlp (Language): the pipeline.
    RETURNS (bool): True when spans get `span._.negex`.
    """
    return any(nlp.get_pipe_meta(name).factory == NEGEX for name in nlp.pipe_names)


def add_negation(nlp: Language, span_keys: Sequence[str] = ("ents",)) -> Language:
    """Add negspacy's `negex` with the `en_clinical` termsets at the end of the pipeline
    (and a sentencizer in front when nothing sets sentence boundaries: negex needs them).

    nlp (Language): the pipeline; changed in place.
    span_keys (Sequence[str]): the span sources to mark ("ents" or span group keys).
    RETURNS (Language): the pipeline.
    """
    try:
        import negspacy.negation  # noqa: F401  (registers the factory)
        from negspacy.termsets import termset
    except ImportError:
        raise ValueError(
            "--negation needs negspacy: pip install 'spacy-text2node[serve]' (or negspacy==1.1.0), "
            "or start the service without --negation."
        ) from None
    if negation_pipe(nlp):
        return nlp
    if not any(nlp.get_pipe_meta(n).factory in SENTENCE_SETTERS for n in nlp.pipe_names):
        nlp.add_pipe("sentencizer", first=True)
    terms = termset("en_clinical").get_patterns()
    groups = [k for k in span_keys if k != "ents"]
    if "ents" in span_keys or not groups:
        nlp.add_pipe(NEGEX, config={"neg_termset": terms}, last=True)
    if groups:  # negex reads either doc.ents or span groups: one component each
        nlp.add_pipe(NEGEX, name=f"{NEGEX}_spans", config={"neg_termset": terms, "span_keys": groups}, last=True)
    return nlp


def is_negated(span: Span) -> bool:
    """`span._.negex` as a bool (False where negspacy has not set it).

    span (Span): a span of a doc the pipeline processed.
    RETURNS (bool): whether the span is negated.
    """
    return bool(Span.has_extension(NEGEX) and span._.get(NEGEX))
