"""Context flags of linked spans: negated, historical, hypothetical (NegEx, through negspacy).

The `text2node_context` component marks the spans the linker links (`doc.ents` and/or span
groups) with three booleans, each found by its own negspacy `Negex` matcher over the span's
sentence:

* `span._.negex`: negated, with negspacy's `en_clinical` termset ("no evidence of",
  "denies", "rule out", ...); the extension is negspacy's own, so code written for negspacy
  reads it unchanged.
* `span._.text2node_historical`: in the patient's history ("history of", "status post",
  "previous", "... years ago"); "family history" and "history of present illness" do not count.
* `span._.text2node_hypothetical`: a condition that may come ("if", "in case of", "return if",
  "watch for", "rule out", "at risk for").

A trigger reaches from where it stands to the end of its sentence (preceding triggers) or back to
the sentence's start (following ones), cut short by a termination term ("but", "however";
"now" and "presents with" for the history). A span that crosses a sentence or termination
boundary is never marked. "Rule out X" is both negated (the `en_clinical` termset lists it) and
hypothetical (this module's termset does).

The component needs sentence boundaries (a parser, senter or sentencizer in front of it): a doc
without them is an error that says what to add; `add_context` adds a sentencizer where nothing
in the pipeline sets sentences. Put it after the linker (`add_context` adds it last): spaCy keys
a span's extension values by the span's label and kb_id too, so a component that relabels or
relinks the spans afterwards drops their flags.

Each doc records which flags were computed for which span sources (`doc._.text2node_context`),
so `context_flags` tells "not negated" from "not checked". The component has no weights and no
files: its config is all that `nlp.to_disk` / `spacy.load` need.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, cast

from spacy.language import Language
from spacy.tokens import Doc, Span

FACTORY = "text2node_context"
NEGEX_FACTORY = "negex"
DOC_EXT = "text2node_context"
# record field / context_flags key -> span extension
FLAG_EXTENSIONS: Dict[str, str] = {
    "negated": "negex",
    "historical": "text2node_historical",
    "hypothetical": "text2node_hypothetical",
}
FLAGS = tuple(FLAG_EXTENSIONS)
SENTENCE_SETTERS = ("parser", "beam_parser", "senter", "sentencizer")
# the four parts of a negspacy termset, and the short names the *_terms settings also take
TERM_KEYS: Dict[str, str] = {
    "pseudo": "pseudo_negations",
    "preceding": "preceding_negations",
    "following": "following_negations",
    "termination": "termination",
}

# words that end a trigger's scope in both termsets below: a contrast starts a new statement
CONTRAST_TERMS = [
    "but",
    "however",
    "although",
    "though",
    "yet",
    "nevertheless",
    "except",
    "aside from",
    "apart from",
]
HISTORICAL_TERMS: Dict[str, List[str]] = {
    # phrases that contain a trigger but do not put what follows in the patient's past
    "pseudo_negations": [
        "family history",
        "history and physical",
        "history and exam",
        "history and examination",
        "history of present illness",
        "history of the present illness",
        "history taking",
        "social history",
    ],
    "preceding_negations": [
        "history of",
        "h/o",
        "hx of",
        "known history of",
        "past history of",
        "past medical history",
        "past medical history of",
        "personal history of",
        "pmh",
        "pmhx",
        "previous",
        "previous history of",
        "previously",
        "prior",
        "prior history of",
        "remote history of",
        "history significant for",
        "in the past",
        "former",
        "status post",
        "s/p",
    ],
    "following_negations": [
        "in the past",
        "in the remote past",
        "years ago",
        "months ago",
        "as a child",
        "in childhood",
        "previously",
    ],
    "termination": [
        *CONTRAST_TERMS,
        "now",
        "currently",
        "today",
        "presents with",
        "presented with",
        "presenting with",
        "admitted with",
        "admitted for",
        "here with",
        "here for",
        "complains of",
    ],
}

HYPOTHETICAL_TERMS: Dict[str, List[str]] = {
    "pseudo_negations": [
        "as if",
        "even if",
        "if any",
        "if needed",
        "if necessary",
        "if possible",
        "if so",
        "what if",
    ],
    "preceding_negations": [
        "if",
        "in case",
        "in case of",
        "in the event of",
        "should he",
        "should she",
        "should the patient",
        "should there be",
        "should any",
        "rule out",
        "to rule out",
        "rule him out",
        "rule her out",
        "rule the patient out",
        "r/o",
        "return if",
        "return for",
        "return with",
        "come back if",
        "call if",
        "watch for",
        "monitor for",
        "look out for",
        "as needed for",
        "at risk for",
        "at risk of",
        "risk of",
        "to prevent",
        "prevention of",
        "prophylaxis for",
        "prophylaxis against",
    ],
    "following_negations": [
        "should it occur",
        "should it develop",
        "should they occur",
        "should they develop",
        "if it occurs",
        "if it develops",
        "if they occur",
        "if present",
        "as needed",
        "prn",
    ],
    "termination": [
        *CONTRAST_TERMS,
        "otherwise",
        "because",
        "which",
        "now",
        "currently",
        "today",
    ],
}

if not Span.has_extension(FLAG_EXTENSIONS["historical"]):
    Span.set_extension(FLAG_EXTENSIONS["historical"], default=False)
if not Span.has_extension(FLAG_EXTENSIONS["hypothetical"]):
    Span.set_extension(FLAG_EXTENSIONS["hypothetical"], default=False)
if not Doc.has_extension(DOC_EXT):
    Doc.set_extension(DOC_EXT, default=None)


def _negex_class() -> Any:
    try:
        from negspacy.negation import Negex
    except ImportError:
        raise ValueError(
            f"{FACTORY} (negated / historical / hypothetical flags) needs negspacy: "
            f"pip install negspacy==1.1.0 (or 'spacy-text2node[serve]')."
        ) from None
    return Negex


def _check_terms(flag: str, extra: Optional[Dict[str, List[str]]]) -> Dict[str, List[str]]:
    """Extra terms of one flag under negspacy's key names, checked."""
    out: Dict[str, List[str]] = {}
    for key, terms in (extra or {}).items():
        full = TERM_KEYS.get(key, key)
        if full not in TERM_KEYS.values():
            raise ValueError(
                f"{FACTORY}: {flag}_terms has an unknown key {key!r}: use "
                f"{', '.join(TERM_KEYS)} (or negspacy's {', '.join(TERM_KEYS.values())})."
            )
        bad = [t for t in terms if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ValueError(f"{FACTORY}: {flag}_terms.{key} must be non-empty strings, got {bad!r}.")
        out.setdefault(full, []).extend(terms)
    return out


def flag_termset(flag: str, extra: Optional[Dict[str, List[str]]] = None) -> Dict[str, List[str]]:
    """The negspacy termset a flag is found with: the built-in terms plus `extra`.

    flag (str): "negated" (negspacy's `en_clinical`), "historical" or "hypothetical".
    extra (Optional[Dict[str, List[str]]]): terms to add, keyed by "pseudo", "preceding",
        "following", "termination" (or negspacy's names: "preceding_negations", ...).
    RETURNS (Dict[str, List[str]]): a termset for negspacy's `Negex(neg_termset=...)`.
    """
    if flag == "negated":
        from negspacy.termsets import termset

        base = termset("en_clinical").get_patterns()
    elif flag == "historical":
        base = HISTORICAL_TERMS
    elif flag == "hypothetical":
        base = HYPOTHETICAL_TERMS
    else:
        raise ValueError(f"Unknown context flag {flag!r}: use one of {', '.join(FLAGS)}.")
    out = {key: list(terms) for key, terms in base.items()}
    for key, terms in _check_terms(flag, extra).items():
        out[key].extend(t for t in terms if t not in out[key])
    return out


def _sources(doc: Doc, span_keys: Sequence[str]) -> Iterator[Span]:
    for key in span_keys:
        if key == "ents":
            yield from doc.ents
        elif key in doc.spans:
            yield from doc.spans[key]


class ContextFlags:
    """Mark spans as negated, historical and hypothetical with negspacy's NegEx matchers.

    nlp (Language): the pipeline (its tokenizer reads the terms).
    name (str): the component's name.
    span_keys (Sequence[str]): the spans to mark: "ents" for `doc.ents`, any other key for
        `doc.spans[key]`.
    negation (bool): set `span._.negex` (negspacy's `en_clinical` termset).
    historical (bool): set `span._.text2node_historical`.
    hypothetical (bool): set `span._.text2node_hypothetical`.
    negation_terms (Optional[Dict[str, List[str]]]): terms added to the negation termset
        (keys "pseudo", "preceding", "following", "termination").
    historical_terms (Optional[Dict[str, List[str]]]): terms added to the historical termset.
    hypothetical_terms (Optional[Dict[str, List[str]]]): terms added to the hypothetical termset.
    """

    def __init__(
        self,
        nlp: Language,
        name: str = FACTORY,
        *,
        span_keys: Sequence[str] = ("ents",),
        negation: bool = True,
        historical: bool = True,
        hypothetical: bool = True,
        negation_terms: Optional[Dict[str, List[str]]] = None,
        historical_terms: Optional[Dict[str, List[str]]] = None,
        hypothetical_terms: Optional[Dict[str, List[str]]] = None,
    ):
        negex = _negex_class()
        self.name = name
        keys = [span_keys] if isinstance(span_keys, str) else list(span_keys)
        if not keys or any(not isinstance(k, str) or not k for k in keys):
            raise ValueError(
                f"{name} ({FACTORY}): span_keys={span_keys!r} must name at least one span source: "
                f'"ents" for doc.ents or a span group key such as "sc".'
            )
        self.span_keys: List[str] = list(dict.fromkeys(keys))
        wanted = {"negated": negation, "historical": historical, "hypothetical": hypothetical}
        self.flags: List[str] = [flag for flag in FLAGS if wanted[flag]]
        if not self.flags:
            raise ValueError(
                f"{name} ({FACTORY}): negation, historical and hypothetical are all false, so it would mark "
                f"nothing: turn one on or leave the component out."
            )
        extra = {"negated": negation_terms, "historical": historical_terms, "hypothetical": hypothetical_terms}
        groups = [k for k in self.span_keys if k != "ents"]
        # negspacy's Negex reads either doc.ents (span_keys=None) or span groups: one matcher each
        self._matchers: List[Any] = []
        for flag in self.flags:
            terms = flag_termset(flag, extra[flag])
            ext = FLAG_EXTENSIONS[flag]
            if "ents" in self.span_keys:
                self._matchers.append(negex(nlp, f"{name}.{flag}", neg_termset=terms, extension_name=ext))
            if groups:
                self._matchers.append(
                    negex(nlp, f"{name}.{flag}.spans", neg_termset=terms, extension_name=ext, span_keys=groups)
                )
        for flag, added in extra.items():  # a setting for a flag that is off is still checked
            if flag not in self.flags:
                _check_terms(flag, added)

    def __call__(self, doc: Doc) -> Doc:
        """Set the flags of the doc's spans and record which flags were computed.

        doc (Doc): a doc with sentence boundaries.
        RETURNS (Doc): the doc.
        """
        spans = list(_sources(doc, self.span_keys))
        if spans:  # a doc with nothing to mark needs no sentences
            self._mark(doc, spans)
        done = dict(doc._.get(DOC_EXT) or {})
        for key in self.span_keys:
            done[key] = [f for f in FLAGS if f in self.flags or f in done.get(key, ())]
        doc._.set(DOC_EXT, done)
        return doc

    def _mark(self, doc: Doc, spans: List[Span]) -> None:
        if not doc.has_annotation("SENT_START"):
            raise ValueError(
                f"{self.name} ({FACTORY}) needs sentence boundaries and this doc has none: put a parser, "
                f"senter or sentencizer before it (nlp.add_pipe('sentencizer', first=True)), or add the "
                f"component with spacy_text2node.pipeline.context.add_context(nlp), which adds a "
                f"sentencizer when nothing in the pipeline sets sentences."
            )
        exts = [FLAG_EXTENSIONS[f] for f in self.flags]
        for span in spans:  # stored as computed values: False is "checked, not found"
            for ext in exts:
                span._.set(ext, False)
        for matcher in self._matchers:
            matcher(doc)


@Language.factory(
    FACTORY,
    default_config={
        "span_keys": ["ents"],
        "negation": True,
        "historical": True,
        "hypothetical": True,
        "negation_terms": None,
        "historical_terms": None,
        "hypothetical_terms": None,
    },
    requires=["token.is_sent_start"],
    assigns=[f"span._.{ext}" for ext in FLAG_EXTENSIONS.values()] + [f"doc._.{DOC_EXT}"],
)
def make_context_flags(
    nlp: Language,
    name: str,
    span_keys: List[str],
    negation: bool,
    historical: bool,
    hypothetical: bool,
    negation_terms: Optional[Dict[str, List[str]]],
    historical_terms: Optional[Dict[str, List[str]]],
    hypothetical_terms: Optional[Dict[str, List[str]]],
) -> ContextFlags:
    """The `text2node_context` factory (see `ContextFlags`)."""
    return ContextFlags(
        nlp,
        name,
        span_keys=span_keys,
        negation=negation,
        historical=historical,
        hypothetical=hypothetical,
        negation_terms=negation_terms,
        historical_terms=historical_terms,
        hypothetical_terms=hypothetical_terms,
    )


def context_flags(span: Span, source: Optional[str] = None) -> Dict[str, bool]:
    """The context flags a `text2node_context` component set on a span.

    span (Span): a span of a processed doc.
    source (Optional[str]): where the span came from ("ents" or a span group key); the flags
        count only when a component marked that source. None: any source it marked.
    RETURNS (Dict[str, bool]): "negated", "historical" and/or "hypothetical": the flags that
        were computed (absent ones were not: no component, or one with the flag off).
    """
    done = span.doc._.get(DOC_EXT) if Doc.has_extension(DOC_EXT) else None
    if not done:
        return {}
    if source is None:
        computed = {f for flags in done.values() for f in flags}
    else:
        computed = set(done.get(source, ()))
    return {f: bool(span._.get(FLAG_EXTENSIONS[f])) for f in FLAGS if f in computed}


def context_pipes(nlp: Language) -> List[Tuple[str, ContextFlags]]:
    """The enabled `text2node_context` components of a pipeline.

    nlp (Language): the pipeline.
    RETURNS (List[Tuple[str, ContextFlags]]): (name, component) pairs in pipeline order.
    """
    return [(n, cast(ContextFlags, p)) for n, p in nlp.pipeline if nlp.get_pipe_meta(n).factory == FACTORY]


def pipeline_flags(nlp: Language) -> List[str]:
    """The flags the pipeline's `text2node_context` components compute.

    nlp (Language): the pipeline.
    RETURNS (List[str]): a subset of ("negated", "historical", "hypothetical"), in that order.
    """
    on = {f for _, pipe in context_pipes(nlp) for f in pipe.flags}
    return [f for f in FLAGS if f in on]


def add_context(
    nlp: Language,
    span_keys: Sequence[str] = ("ents",),
    *,
    name: Optional[str] = None,
    negation: bool = True,
    historical: bool = True,
    hypothetical: bool = True,
) -> Language:
    """Add `text2node_context` at the end of the pipeline, with a sentencizer first when nothing
    in the pipeline sets sentence boundaries. A pipeline that already has a `text2node_context`
    marking all of `span_keys` is returned as it is.

    nlp (Language): the pipeline; changed in place.
    span_keys (Sequence[str]): the span sources to mark ("ents" or span group keys).
    name (Optional[str]): the component's name (None: "text2node_context", numbered when taken).
    negation (bool): compute `negated`.
    historical (bool): compute `historical`.
    hypothetical (bool): compute `hypothetical`.
    RETURNS (Language): the pipeline.
    """
    keys = [span_keys] if isinstance(span_keys, str) else list(span_keys)
    _negex_class()  # the missing dependency is named before the pipeline changes
    if any(set(keys) <= set(pipe.span_keys) for _, pipe in context_pipes(nlp)):
        return nlp
    if not any(nlp.get_pipe_meta(n).factory in SENTENCE_SETTERS for n in nlp.pipe_names):
        nlp.add_pipe("sentencizer", name=_free_name(nlp, "sentencizer"), first=True)
    config = {"span_keys": keys, "negation": negation, "historical": historical, "hypothetical": hypothetical}
    nlp.add_pipe(FACTORY, name=name or _free_name(nlp, FACTORY), config=config, last=True)
    return nlp


def _free_name(nlp: Language, base: str) -> str:
    name, i = base, 1
    while name in nlp.component_names:
        i += 1
        name = f"{base}_{i}"
    return name
