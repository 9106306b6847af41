"""Negation for the service: the `text2node_context` component (negspacy's NegEx with the
`en_clinical` termset, plus the historical and hypothetical flags), and reading it back.

`--negation` adds the component under the name `negex`, the name /info has listed since the
option came in; a pipeline saved with negspacy's own `negex` still counts as negating.
"""

from __future__ import annotations

from typing import Sequence

from spacy.language import Language
from spacy.tokens import Span

from ..pipeline.context import FLAG_EXTENSIONS, NEGEX_FACTORY, SENTENCE_SETTERS, add_context, pipeline_flags

NEGEX = NEGEX_FACTORY
__all__ = ["NEGEX", "SENTENCE_SETTERS", "add_negation", "is_negated", "negation_pipe"]


def negation_pipe(nlp: Language) -> bool:
    """Whether the pipeline marks negated spans: a `text2node_context` with negation on, or
    negspacy's own `negex` component (whatever their names).

    nlp (Language): the pipeline.
    RETURNS (bool): True when spans get `span._.negex`.
    """
    return "negated" in pipeline_flags(nlp) or any(nlp.get_pipe_meta(name).factory == NEGEX for name in nlp.pipe_names)


def add_negation(nlp: Language, span_keys: Sequence[str] = ("ents",)) -> Language:
    """Add `text2node_context` (negated, historical, hypothetical) at the end of the pipeline,
    named `negex` (and a sentencizer in front when nothing sets sentence boundaries).
    A pipeline that already negates is returned as it is.

    nlp (Language): the pipeline; changed in place.
    span_keys (Sequence[str]): the span sources to mark ("ents" or span group keys).
    RETURNS (Language): the pipeline.
    """
    try:
        import negspacy.negation  # noqa: F401
    except ImportError:
        raise ValueError(
            "--negation needs negspacy: pip install 'spacy-text2node[serve]' (or negspacy==1.1.0), "
            "or start the service without --negation."
        ) from None
    if negation_pipe(nlp):
        return nlp
    return add_context(nlp, span_keys, name=None if NEGEX in nlp.component_names else NEGEX)


def is_negated(span: Span) -> bool:
    """`span._.negex` as a bool (False where nothing has set it).

    span (Span): a span of a doc the pipeline processed.
    RETURNS (bool): whether the span is negated.
    """
    ext = FLAG_EXTENSIONS["negated"]
    return bool(Span.has_extension(ext) and span._.get(ext))
