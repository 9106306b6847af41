"""Abbreviations defined in a document, after Schwartz & Hearst (2003), "A simple algorithm
for identifying abbreviation definitions in biomedical text".

A definition is "long form (SF)" or, when the parenthesised text is no short form,
"SF (long form)". A short form has 2 to 10 characters, at most two words, a letter, and
an alphanumeric first character. The long form is searched in the min(|SF| + 5, 2 * |SF|)
words before the parenthesis (never across a sentence end or another bracket): every
alphanumeric character of the short form, right to left, must occur in it in the same
order, the first one at the start of a word; the shortest such long form wins, unless
the last words' initials spell the short form (then those words are the long form). It is
rejected when it is not longer than the short form or holds the short form as a word.

    nlp.add_pipe("text2node_abbreviations")
    doc = nlp("adenomatous polyposis coli (APC) ... APC mutations")
    doc._.text2node_abbreviations   # [(APC, adenomatous polyposis coli), (APC, adenomatous polyposis coli)]
    long_form(doc[-2:-1])           # adenomatous polyposis coli

The pairs are kept as token offsets, so docs with them serialize (`Doc.to_bytes`, DocBin);
reading the extension builds the spans (assign a new list to change them).
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Set, Tuple

from spacy.language import Language
from spacy.tokens import Doc, Span

ABBREVIATIONS_EXT = "text2node_abbreviations"
OFFSETS_EXT = "text2node_abbreviation_offsets"
MIN_SHORT_CHARS = 2
MAX_SHORT_CHARS = 10
MAX_SHORT_WORDS = 2
MAX_INSIDE_TOKENS = 60  # the furthest a closing parenthesis is looked for
_STOP = {".", "!", "?", ";", "(", ")", "[", "]", "{", "}"}
_SEPARATORS = {",", ";"}

Pair = Tuple[Span, Span]
Offsets = Tuple[int, int, int, int]


def _get_pairs(doc: Doc) -> Optional[List[Pair]]:
    offsets = doc._.get(OFFSETS_EXT)
    return None if offsets is None else [(doc[a:b], doc[c:d]) for a, b, c, d in offsets]


def _set_pairs(doc: Doc, pairs: Optional[Iterable[Pair]]) -> None:
    offsets: List[Offsets] = []
    for pair in pairs or ():
        if not (
            isinstance(pair, (tuple, list))
            and len(pair) == 2
            and all(isinstance(s, Span) and s.doc is doc for s in pair)
        ):
            raise ValueError(
                f"doc._.{ABBREVIATIONS_EXT}: {pair!r} is no (short Span, long Span) pair of this doc; "
                f"assign a list of such pairs (or None)."
            )
        offsets.append((pair[0].start, pair[0].end, pair[1].start, pair[1].end))
    doc._.set(OFFSETS_EXT, None if pairs is None else offsets)


if not Doc.has_extension(OFFSETS_EXT):
    Doc.set_extension(OFFSETS_EXT, default=None)
if not Doc.has_extension(ABBREVIATIONS_EXT):
    Doc.set_extension(ABBREVIATIONS_EXT, getter=_get_pairs, setter=_set_pairs)


def is_short_form(text: str) -> bool:
    """Whether a text can be a short form (2 to 10 characters, at most two words, a letter,
    an alphanumeric first character)."""
    return (
        MIN_SHORT_CHARS <= len(text) <= MAX_SHORT_CHARS
        and len(text.split()) <= MAX_SHORT_WORDS
        and text[0].isalnum()
        and any(c.isalpha() for c in text)
    )


def max_long_words(short: str) -> int:
    """The most words a long form of `short` may have: min(|SF| + 5, 2 * |SF|)."""
    return min(len(short) + 5, 2 * len(short))


def match_long_form(short: str, text: str) -> Optional[int]:
    """Where the long form of `short` starts in `text`, matching characters right to left.

    short (str): the short form.
    text (str): the text the long form ends with (the words before the parenthesis).
    RETURNS (Optional[int]): the character offset of the start of the long form's first
        word in `text`, or None when the characters do not match.
    """
    s, t = short.lower(), text.lower()
    initials = _initials_start(s, t)
    if initials is not None:
        return initials
    i = len(t) - 1
    first = next((k for k, c in enumerate(s) if c.isalnum()), None)
    if first is None:
        return None
    for k in range(len(s) - 1, first - 1, -1):
        c = s[k]
        if not c.isalnum():
            continue
        while i >= 0 and (t[i] != c or (k == first and i > 0 and t[i - 1].isalnum())):
            i -= 1
        if i < 0:
            return None
        i -= 1
    start = i + 1
    while start > 0 and not t[start - 1].isspace():
        start -= 1
    return start


def _initials_start(short: str, text: str) -> Optional[int]:
    """Where the last words of `text` start when their initials spell `short` (letters only,
    lower case), one word per letter, else None. Such a long form is preferred to the
    shortest character match: in "attenuated adenomatous polyposis coli (AAPC)" the
    characters alone match from "adenomatous" on, using an inner "a" for the second A."""
    letters = [c for c in short if c.isalnum()]
    if len(letters) < 2 or not all(c.isalpha() for c in letters):
        return None
    found = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)][-len(letters) :]
    if len(found) < len(letters) or any(w[0] != c for (_, w), c in zip(found, letters)):
        return None
    return found[0][0]


def _word_start(doc: Doc, k: int) -> bool:
    return k == 0 or bool(doc[k - 1].whitespace_) or doc[k - 1].is_space


def _window_start(doc: Doc, end: int, max_words: int, sents: bool) -> int:
    """The first token of the (at most `max_words`) words before token `end`."""
    start, words, k = end, 0, end - 1
    while k >= 0:
        tok = doc[k]
        if tok.is_space or tok.text in _STOP:
            break
        start = k
        if sents and tok.is_sent_start:
            break
        if _word_start(doc, k):
            words += 1
            if words >= max_words:
                break
        k -= 1
    return start


def _closing(doc: Doc, i: int) -> Optional[int]:
    depth = 0
    for j in range(i + 1, min(len(doc), i + 1 + MAX_INSIDE_TOKENS)):
        if doc[j].text == "(":
            depth += 1
        elif doc[j].text == ")":
            if depth == 0:
                return j
            depth -= 1
    return None


def _contains_word(text: str, short: str) -> bool:
    return re.search(rf"(?<![0-9a-z]){re.escape(short.lower())}(?![0-9a-z])", text.lower()) is not None


def _long_span(doc: Doc, start: int, end: int, short: str) -> Optional[Span]:
    """Tokens start..end as a long form of `short` (matched in their text), trimmed of
    punctuation at both ends, or None."""
    if start >= end:
        return None
    text = doc[start:end].text
    offset = match_long_form(short, text)
    if offset is None:
        return None
    span = doc.char_span(doc[start].idx + offset, doc[end - 1].idx + len(doc[end - 1]), alignment_mode="expand")
    if span is None:
        return None
    a, b = span.start, span.end
    while a < b and (doc[a].is_punct or doc[a].is_space):
        a += 1
    while b > a and (doc[b - 1].is_punct or doc[b - 1].is_space):
        b -= 1
    long = doc[a:b]
    if len(long.text) <= len(short) or _contains_word(long.text, short):
        return None
    return long


def _definition(doc: Doc, i: int, j: int, sents: bool) -> Optional[Pair]:
    """The definition around the parentheses at tokens i and j, if any."""
    inside = i + 1
    while inside < j and doc[inside].text not in _SEPARATORS:
        inside += 1
    if inside == i + 1:
        return None
    short = doc[i + 1 : inside]
    if is_short_form(short.text) and not any(t.text in _STOP for t in short):
        begin = _window_start(doc, i, max_long_words(short.text), sents)
        long = _long_span(doc, begin, i, short.text)
        return (short, long) if long is not None else None
    # "SF (long form)": the short form is the word right before the parenthesis
    if i == 0 or doc[i - 1].is_space:
        return None
    k = i - 1
    while not _word_start(doc, k):
        k -= 1
    short = doc[k:i]
    text = short.text
    if not is_short_form(text) or doc[i - 1].is_punct or not any(c.isupper() or c.isdigit() for c in text):
        return None
    if len(doc[i + 1 : inside].text.split()) > max_long_words(text):
        return None
    long = _long_span(doc, i + 1, inside, text)
    return (short, long) if long is not None else None


def find_abbreviations(doc: Doc) -> List[Pair]:
    """The abbreviation definitions of a doc (no sentence boundaries needed; the parser's
    or a sentencizer's are respected when set).

    doc (Doc): the document.
    RETURNS (List[Tuple[Span, Span]]): (short form, long form) token spans, in order.
    """
    sents = doc.has_annotation("SENT_START")
    found: List[Pair] = []
    for tok in doc:
        if tok.text != "(":
            continue
        j = _closing(doc, tok.i)
        if j is None:
            continue
        pair = _definition(doc, tok.i, j, sents)
        if pair is not None:
            found.append(pair)
    return found


def with_occurrences(doc: Doc, definitions: List[Pair]) -> List[Pair]:
    """Every occurrence of a defined short form (the same token texts) with the long form
    of the nearest definition before it (the first definition when none is before).

    doc (Doc): the document.
    definitions (List[Tuple[Span, Span]]): its definitions, as `find_abbreviations` gives them.
    RETURNS (List[Tuple[Span, Span]]): (short form, long form) pairs in text order,
        the definitions included; occurrences do not overlap.
    """
    by_form: Dict[Tuple[str, ...], List[Pair]] = {}
    for short, long in definitions:
        by_form.setdefault(tuple(t.text for t in short), []).append((short, long))
    positions: Dict[str, List[int]] = {}
    for tok in doc:
        positions.setdefault(tok.text, []).append(tok.i)
    hits: List[Pair] = []
    for form, defs in by_form.items():
        n = len(form)
        for p in positions.get(form[0], []):
            if p + n <= len(doc) and all(doc[p + q].text == form[q] for q in range(1, n)):
                before = [d for d in defs if d[0].start <= p]
                hits.append((doc[p : p + n], (before[-1] if before else defs[0])[1]))
    hits.sort(key=lambda h: (h[0].start, -len(h[0])))
    out: List[Pair] = []
    end = 0
    for short, long in hits:
        if short.start >= end:
            out.append((short, long))
            end = short.end
    return out


def _initials(text: str) -> Optional[str]:
    """The upper-case initials of a text of two or more words (split at spaces, hyphens and
    slashes), or None when a word does not start with a letter or they are too many."""
    words = [w for w in re.split(r"[\s\-/]+", text) if w]
    if len(words) < 2 or len(words) > MAX_SHORT_CHARS or not all(w[0].isalpha() for w in words):
        return None
    return "".join(w[0] for w in words).upper()


def initialisms(doc: Doc, pairs: List[Pair]) -> List[Pair]:
    """Short forms used without a definition: each token, outside the entities and the
    short forms of `pairs`, that spells the initials of a multi-word entity of the doc
    ("IDDM" where "insulin-dependent diabetes mellitus" is an entity), paired with that
    entity (the nearest one before it, else the first).

    doc (Doc): the document, with `doc.ents` set by a mention finder.
    pairs (List[Tuple[Span, Span]]): the doc's defined pairs (`with_occurrences`).
    RETURNS (List[Tuple[Span, Span]]): (short form, long form) pairs in text order.
    """
    longs: Dict[str, List[Span]] = {}
    for ent in doc.ents:
        spelled = _initials(ent.text)
        if spelled is not None:
            longs.setdefault(spelled, []).append(ent)
    if not longs:
        return []
    taken = {i for ent in doc.ents for i in range(ent.start, ent.end)}
    taken.update(i for short, _ in pairs for i in range(short.start, short.end))
    found: List[Pair] = []
    for tok in doc:
        ents = longs.get(tok.text)
        if ents and tok.i not in taken:
            before = [e for e in ents if e.start < tok.i]
            found.append((doc[tok.i : tok.i + 1], (before[-1] if before else ents[0])))
    return found


def long_form(span: Span, pairs: Optional[List[Pair]] = None) -> Optional[Span]:
    """The long form of a span that is a short form of its doc's abbreviations: one listed
    in `doc._.text2node_abbreviations` (same tokens), or one whose text equals a listed
    short form (the nearest definition before it).

    span (Span): a mention.
    pairs (Optional[List[Pair]]): the doc's (short, long) pairs, if already read (None:
        read `doc._.text2node_abbreviations`).
    RETURNS (Optional[Span]): the long form, or None (no abbreviations set, not a short form).
    """
    pairs = span.doc._.get(ABBREVIATIONS_EXT) if pairs is None else pairs
    if not pairs:
        return None
    for short, long in pairs:
        if short.start == span.start and short.end == span.end:
            return long
    same = [(short, long) for short, long in pairs if short.text == span.text]
    if not same:
        return None
    before = [p for p in same if p[0].start <= span.start]
    return (before[-1] if before else same[0])[1]


def resolved_text(span: Span, pairs: Optional[List[Pair]] = None) -> Optional[str]:
    """The span's text with its doc's short forms written out: the long form when the span
    is a short form (`long_form`), else each short form inside it replaced by its long
    form (`expand_short_forms`). This is what BioSyn and SapBERT do with Ab3P before
    normalising NCBI Disease mentions.

    span (Span): a mention in a doc with `doc._.text2node_abbreviations` set.
    pairs (Optional[List[Pair]]): the doc's pairs, if already read.
    RETURNS (Optional[str]): the resolved text, or None when nothing changes.
    """
    pairs = span.doc._.get(ABBREVIATIONS_EXT) if pairs is None else pairs
    whole = long_form(span, pairs)
    return whole.text if whole is not None else expand_short_forms(span, pairs)


def expand_short_forms(span: Span, pairs: Optional[List[Pair]] = None) -> Optional[str]:
    """The span's text with each short form inside it replaced by its long form ("cerebral
    ALD" -> "cerebral adrenoleukodystrophy"), unless that long form lies inside the span
    too (a definition: "adenomatous polyposis coli (APC)" stays).

    span (Span): a mention.
    pairs (Optional[List[Pair]]): the doc's pairs, if already read.
    RETURNS (Optional[str]): the text, or None when no short form lies inside the span.
    """
    doc = span.doc
    pairs = (doc._.get(ABBREVIATIONS_EXT) if pairs is None else pairs) or []
    parts: List[str] = []
    i = span.start
    for short, long in sorted(pairs, key=lambda p: p[0].start):
        inside = span.start <= short.start and short.end <= span.end and short.start >= i
        if inside and not (span.start <= long.start and long.end <= span.end):
            parts.append(doc[i : short.start].text_with_ws + long.text + doc[short.end - 1].whitespace_)
            i = short.end
    if i == span.start:
        return None
    parts.append(doc[i : span.end].text)
    return "".join(parts).strip()


# words that put a long form after them in a mention as the argument, not the head:
# "deficiency of X (SF)" is a disease, SF names X
_ARGUMENT_WORDS = frozenset({"of", "in", "with", "for", "to"})


def _heads(mention: Span, long: Span) -> bool:
    """Whether a long form inside a mention stands for the mention: it ends the mention,
    and no preposition comes before it there."""
    return mention.end == long.end and not any(
        t.lower_ in _ARGUMENT_WORDS for t in mention.doc[mention.start : long.start]
    )


def propagate_mentions(doc: Doc, pairs: List[Pair], *, drop_undefined: bool = True) -> None:
    """Make the entities agree with the abbreviations: where an entity is a long form, or
    ends with it after modifiers ("X-linked adrenoleukodystrophy (ALD)"), every occurrence
    of its short form becomes an entity with that label (unless it overlaps another
    entity). An entity that goes on past the long form or holds it after a preposition
    ("G6PD deficiency", "deficiency of aspartoacylase (ASPA)") adds none: there the short
    form names the enzyme or gene, not the disease. With
    `drop_undefined`, an entity that is exactly a short form whose long form no entity
    covers at all (from its first to its last token, or more) is removed (the mention
    finder saw the short form, but the thing it stands for is not a mention: a gene
    named like its disease).

    doc (Doc): the document, with `doc.ents` set by a mention finder.
    pairs (List[Tuple[Span, Span]]): (short form, long form) pairs (`with_occurrences`).
    drop_undefined (bool): remove short-form entities whose long form is no mention.
    """
    if not pairs:
        return
    ents = list(doc.ents)

    def overlapping(span: Span) -> Optional[Span]:
        return next((e for e in ents if e.start < span.end and span.start < e.end), None)

    covered: Set[Tuple[int, int]] = set()
    label_of: Dict[Tuple[int, int], str] = {}
    for short, long in pairs:
        hit = overlapping(long)
        if hit is not None and hit.start <= long.start and hit.end >= long.end:
            covered.add((short.start, short.end))
            if _heads(hit, long):
                label_of[(short.start, short.end)] = hit.label_
    keep = []
    for ent in ents:
        is_short = any(ent.start == short.start and ent.end == short.end for short, _ in pairs)
        if drop_undefined and is_short and (ent.start, ent.end) not in covered:
            continue
        keep.append(ent)
    ents = keep
    for short, _ in pairs:
        label = label_of.get((short.start, short.end))
        if label is not None and overlapping(short) is None:
            ents.append(Span(doc, short.start, short.end, label=label))
    doc.ents = sorted(ents, key=lambda e: e.start)


class AbbreviationDetector:
    """Sets `doc._.text2node_abbreviations`: each abbreviation defined in the doc and each
    other occurrence of its short form, paired with the long form (see `with_occurrences`).
    With `mentions`, it also makes `doc.ents` agree with them (`propagate_mentions`).

    name (str): the component name.
    mentions (bool): add the short forms of long forms that are entities to `doc.ents`,
        and drop entities that are short forms of long forms that are not.
    initialisms (bool): also pair each undefined token spelling a multi-word entity's
        initials with that entity (`initialisms`; needs `doc.ents` set before).
    """

    def __init__(
        self, name: str = "text2node_abbreviations", *, mentions: bool = False, initialisms: bool = False
    ) -> None:
        self.name = name
        self.mentions = mentions
        self.initialisms = initialisms

    def __call__(self, doc: Doc) -> Doc:
        pairs = with_occurrences(doc, find_abbreviations(doc))
        if self.initialisms:
            pairs = sorted(pairs + initialisms(doc, pairs), key=lambda p: p[0].start)
        doc._.set(ABBREVIATIONS_EXT, pairs)
        if self.mentions:
            propagate_mentions(doc, pairs)
        return doc


@Language.factory(
    "text2node_abbreviations",
    assigns=[f"doc._.{ABBREVIATIONS_EXT}", "doc.ents"],
    default_config={"mentions": False, "initialisms": False},
)
def make_abbreviation_detector(nlp: Language, name: str, mentions: bool, initialisms: bool) -> AbbreviationDetector:
    """Factory of `text2node_abbreviations`: abbreviation definitions and their uses.

    mentions (bool): also make `doc.ents` agree with them (see `propagate_mentions`).
    initialisms (bool): also treat an undefined token spelling the initials of a
        multi-word entity as its short form (see `initialisms`).
    """
    return AbbreviationDetector(name, mentions=mentions, initialisms=initialisms)
