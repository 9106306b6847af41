"""Split a coordinated (composite) disease mention into the mentions it abbreviates.

    split_composite("breast and ovarian cancer")          # ["breast cancer", "ovarian cancer"]
    split_composite("breast, ovarian and prostate cancers")  # [... "prostate cancers"]
    split_composite("type 1 and type 2 diabetes")         # ["type 1 diabetes", "type 2 diabetes"]
    split_composite("Duchenne/Becker muscular dystrophy")  # ["Duchenne muscular dystrophy", "Becker ..."]
    split_composite("cleft lip and palate")               # ["cleft lip", "cleft palate"]
    split_composite("deficiency of C5 and C6")            # ["deficiency of C5", "deficiency of C6"]
    split_composite("cancer and diabetes")                # ["cancer", "diabetes"]

The conjuncts are the words around one coordinator ("and", "or", "and/or") and the commas
of a list before it. A conjunct that ends in a disease word ("cancer", "-itis", "-oma",
"-ia", ... see `is_complete`) stands alone: "ataxia-telangiectasia and Nijmegen breakage
syndrome" is two complete names, not a head-initial coordination. Otherwise:

- head-final ("A and B head"): each left conjunct gets the right conjunct's head, its words
  after as many words as the left conjuncts have ("type 1 and type 2 diabetes"), after a
  capitalised word when the modifiers are single capitalised names ("Duchenne and Becker
  muscular dystrophy"), else its last word ("hereditary breast and ovarian cancer" gives
  "hereditary breast cancer" and "ovarian cancer": a modifier before the first conjunct
  stays with it);
- head-initial ("A x and y", the right conjunct one word): the right conjunct takes the
  left one's words but its last ("cleft lip and palate", "hemophilia A and B");
- "X of A and B" gives "X of A", "X of B" (the parts of "A and B" split as above), and
  "A and B of X" gives "A of X", "B of X"; the same with "in";
- a "/" inside a word coordinates only the words it joins, the words around are shared:
  "familial breast/ovarian cancer" gives "familial breast cancer", "familial ovarian cancer".

Anything else (several coordinators, brackets, quotes, other prepositions, commas without a
coordinator) is returned unchanged, as is a text whose split would give an empty or
repeated part. The parts keep the casing of the text; whitespace becomes single spaces.
"""

from __future__ import annotations

import re
from typing import Callable, List, Optional, Sequence, Set, Tuple

from spacy.language import Language
from spacy.tokens import Doc, Span

COORDINATORS = {"and", "or", "and/or"}
DETERMINERS = {"the", "a", "an"}
# words that end a complete disease name, so a conjunct ending in one stands alone
HEAD_WORDS = {
    "abnormality", "abnormalities", "anomaly", "anomalies", "blindness", "cancer", "cancers", "carcinoma",
    "carcinomas", "cyst", "cysts", "deafness", "defect", "defects", "deficiency", "deficiencies", "diabetes",
    "disease", "diseases", "disorder", "disorders", "dystrophy", "dystrophies", "epilepsy", "failure", "fever",
    "infection", "infections", "injury", "lesion", "lesions", "loss", "malformation", "malformations",
    "neoplasm", "neoplasms", "pain", "palsy", "seizures", "syndrome", "syndromes", "tumor", "tumors",
    "tumour", "tumours",
}  # fmt: skip
HEAD_SUFFIXES = ("ia", "ias", "osis", "oses", "itis", "oma", "omas", "pathy", "pathies", "trophy", "ism", "isms")
_UNSURE = re.compile(r"[()\[\]{}\"';:]")
_SLASH = re.compile(r"^[A-Za-z][\w-]+/[A-Za-z][\w-]+$")
ATTACHING = {"of", "in"}  # "X of A and B", "cysts in the kidney and pancreas"
PREPOSITIONS = {"for", "than", "with", "without", "from", "on", "by", "at", "as", "after", "during"}
# words that are no conjunct of a disease name ("the and breast cancer" takes nothing in)
FUNCTION_WORDS = DETERMINERS | ATTACHING | PREPOSITIONS | {
    "to", "into", "is", "are", "was", "were", "be", "this", "that", "these", "those", "both", "either",
    "its", "their", "not", "no", "such", "other", "all", "some",
}  # fmt: skip


def is_complete(word: str) -> bool:
    """Whether a word ends a complete disease name ("cancer", "ataxia-telangiectasia").

    word (str): the last word of a conjunct.
    RETURNS (bool): True for a disease head word or suffix.
    """
    w = word.lower().rsplit("-", 1)[-1]
    return w in HEAD_WORDS or (len(w) > 4 and w.endswith(HEAD_SUFFIXES))


def _words(text: str) -> Optional[List[str]]:
    """The words of a text, commas as words of their own; None when the text is unsure
    ground (brackets, quotes, a preposition other than "of" and "in")."""
    if _UNSURE.search(text):
        return None
    out: List[str] = []
    for raw in text.split():
        if raw.endswith(",") and len(raw) > 1:
            out += [raw[:-1], ","]
        else:
            out.append(raw)
    if any(w.lower() in PREPOSITIONS for w in out):
        return None
    return out


def _is_coordinator(word: str) -> bool:
    return word.lower() in COORDINATORS


def _is_slashed(word: str) -> bool:
    return word.lower() not in COORDINATORS and _SLASH.match(word) is not None


def _has_coordination(words: List[str]) -> bool:
    return any(_is_coordinator(w) or _is_slashed(w) for w in words)


def _split_slash(words: List[str]) -> Optional[List[List[str]]]:
    """The parts of "prefix a/b suffix": "prefix a suffix", "prefix b suffix"."""
    at = [k for k, w in enumerate(words) if _is_slashed(w)]
    if len(at) != 1 or any(_is_coordinator(w) or w == "," for w in words):
        return None
    k = at[0]
    a, b = words[k].split("/")
    if is_complete(a):
        return None
    return [words[:k] + [a] + words[k + 1 :], words[:k] + [b] + words[k + 1 :]]


def _split_words(words: List[str]) -> Optional[List[List[str]]]:
    """The parts of a coordination of words, or None when it is none (or unsure)."""
    if not any(_is_coordinator(w) for w in words):
        return _split_slash(words)
    coords = [k for k, w in enumerate(words) if _is_coordinator(w)]
    if len(coords) != 1 or any(_is_slashed(w) for w in words):
        return None
    c = coords[0]
    right = words[c + 1 :]
    before = words[:c]
    if before and before[-1] == ",":
        before = before[:-1]  # "A, B, and C"
    lefts: List[List[str]] = [[]]
    for w in before:
        if w == ",":
            lefts.append([])
        else:
            lefts[-1].append(w)
    if "," in right or not right or any(not left for left in lefts):
        return None
    if len(right) == 1:
        left = lefts[0]
        if len(lefts) > 1 or len(left) == 1 or is_complete(left[-1]) or is_complete(right[0]):
            return lefts + [right]
        return [left, left[:-1] + right]  # head-initial: "cleft lip and palate"
    k = min(len(left) for left in lefts)
    if k >= 2 and len(right) > k and all(len(left) == k for left in lefts):
        head = right[k:]  # "type 1 and type 2 diabetes"
    elif all(len(left) == 1 and left[0][:1].isupper() for left in lefts) and right[0][:1].isupper():
        head = right[1:]  # "Duchenne and Becker muscular dystrophy"
    else:
        head = right[-1:]
    parts: List[List[str]] = []
    for left in lefts:
        if is_complete(left[-1]) or left[-1].lower() == right[-1].lower():
            parts.append(left)
        elif left[-1].endswith("-") and "-" in right[0] and len(right) > 1:
            parts.append(left[:-1] + [left[-1] + right[0].split("-", 1)[1]] + head)  # "B- and T-cell lymphomas"
        else:
            parts.append(left + head)
    return parts + [right]


def _split_attached(words: List[str]) -> Optional[List[List[str]]]:
    """Split around the first "of" / "in" ("deficiency of C5 and C6", "pits and sinuses of the lip")."""
    at = next(k for k, w in enumerate(words) if w.lower() in ATTACHING)
    head, prep, rest = words[:at], words[at], words[at + 1 :]
    if not head or not rest:
        return None
    if _has_coordination(rest) and not _has_coordination(head):
        inner = _split_words(rest)
        return None if inner is None else [head + [prep] + part for part in inner]
    if _has_coordination(head) and not _has_coordination(rest):
        inner = _split_words(head)
        return None if inner is None else [part + [prep] + rest for part in inner]
    return None


def split_composite(text: str) -> List[str]:
    """The mentions a coordinated mention stands for, or the text itself.

    text (str): a mention's text.
    RETURNS (List[str]): the parts, in order (at least one; `[text]` when the text is no
        coordination or its structure is unclear).
    """
    words = _words(text)
    if not words or not _has_coordination(words):
        return [text]
    attached = any(w.lower() in ATTACHING for w in words)
    parts = _split_attached(words) if attached else _split_words(words)
    if parts is None:
        return [text]
    out = [" ".join(p) for p in parts]
    if len(out) < 2 or any(not p.strip() or p.lower() in DETERMINERS for p in out):
        return [text]
    if len({p.lower() for p in out}) != len(out):
        return [text]
    return out


def keep_whole(whole: Sequence[Tuple[int, float]], parts: Sequence[Sequence[Tuple[int, float]]]) -> bool:
    """Whether a coordinated mention is linked whole rather than part by part: when the
    whole's best candidate is at least as probable as the least sure part's ("hereditary
    breast and ovarian cancer", one syndrome in CTD MEDIC, against "hereditary breast
    cancer" and "ovarian cancer"). The scores must be probabilities (a calibrated linker's):
    fixed-fusion scores of different queries are not comparable.

    whole (Sequence[Tuple[int, float]]): the whole mention's candidates, best first.
    parts (Sequence[Sequence[Tuple[int, float]]]): each part's candidates, best first.
    RETURNS (bool): True to link the whole; a query without candidates counts as 0.
    """
    best_whole = whole[0][1] if whole else 0.0
    return bool(whole) and best_whole >= min((p[0][1] if p else 0.0) for p in parts)


def composite_parts(span: Span) -> List[str]:
    """`split_composite` of a span's text.

    span (Span): a mention.
    RETURNS (List[str]): the parts of its text.
    """
    return split_composite(span.text)


def _conjunct(doc: Doc, i: int, taken: Set[int]) -> bool:
    tok = doc[i]
    return i not in taken and tok.text.isalnum() and tok.lower_ not in FUNCTION_WORDS and tok.lower_ not in COORDINATORS


def widened_start(doc: Doc, span: Span, taken: Set[int]) -> int:
    """Where a mention starts once it takes in the conjuncts coordinated before it: the
    tokens before it are a coordinator ("and", "or", "and/or"), perhaps a comma, and one word
    per conjunct with commas between ("brain, breast, and" before "prostate cancer"). A
    conjunct is one alphanumeric token, no function word and no token in `taken` (other
    mentions). RETURNS (int): the new start token, or span.start.
    """
    i = span.start - 1
    if i < 0 or doc[i].lower_ not in COORDINATORS:
        return span.start
    i -= 1
    if i >= 0 and doc[i].text == ",":
        i -= 1
    start = span.start
    while i >= 0 and _conjunct(doc, i, taken):
        start = i
        i -= 1
        if i >= 0 and doc[i].text == ",":
            i -= 1
        else:
            break
    return start


def widen_coordinations(doc: Doc, known: Callable[[str], bool]) -> int:
    """Widen each entity of two or more tokens over the conjuncts coordinated before it
    (`widened_start`) when the widened text splits into parts (`split_composite`) and a
    part besides the entity's own is a known name: a mention finder that found "prostate
    cancer" in "brain, breast, and prostate cancer" gets the whole coordination, as NCBI
    Disease annotates it ("brain cancer" is a name), but not "mutations and breast cancer".

    doc (Doc): the document, with `doc.ents` set by a mention finder.
    known (Callable[[str], bool]): whether a text is a concept's name or synonym.
    RETURNS (int): how many entities were widened.
    """
    ents = list(doc.ents)
    taken = {i for e in ents for i in range(e.start, e.end)}
    out: List[Span] = []
    widened = 0
    for ent in ents:
        start = widened_start(doc, ent, taken) if len(ent) >= 2 else ent.start
        if start < ent.start:
            parts = split_composite(doc[start : ent.end].text)
            if len(parts) >= 2 and any(known(p) for p in parts[:-1]):
                ent = Span(doc, start, ent.end, label=ent.label, kb_id=ent.kb_id)
                taken.update(range(start, ent.end))
                widened += 1
        out.append(ent)
    doc.ents = out
    return widened


class CoordinationWidener:
    """Widens found mentions over the conjuncts coordinated before them
    (`widen_coordinations`), with the names and synonyms of a text2node linker of the same
    pipeline as the known names (its exact-match table).

    nlp (Language): the pipeline, where the linker is looked up when a doc comes.
    name (str): the component name.
    linker (str): the name of the text2node linker component.
    """

    def __init__(self, nlp: Language, name: str = "text2node_coordinations", *, linker: str = "text2node_linker"):
        self.nlp = nlp
        self.name = name
        self.linker = linker

    def known(self) -> Callable[[str], bool]:
        """Whether a text is a name or synonym in the linker's taxonomy (normalised)."""
        from ..index.text import normalize_text

        if self.linker not in self.nlp.pipe_names:
            raise ValueError(
                f"{self.name}: the pipeline {self.nlp.pipe_names} has no component {self.linker!r}, whose "
                f"names tell which coordinations to widen; add the text2node linker, or set "
                f"[components.{self.name}] linker to its name."
            )
        index = getattr(self.nlp.get_pipe(self.linker), "index", None)
        if index is None:
            raise ValueError(
                f"{self.name}: the component {self.linker!r} is no initialized text2node linker; "
                f"initialize or load a trained one."
            )
        exact = index.lexical.exact
        return lambda text: normalize_text(text) in exact

    def __call__(self, doc: Doc) -> Doc:
        if doc.ents:
            widen_coordinations(doc, self.known())
        return doc


@Language.factory(
    "text2node_coordinations",
    assigns=["doc.ents"],
    default_config={"linker": "text2node_linker"},
)
def make_coordination_widener(nlp: Language, name: str, linker: str) -> CoordinationWidener:
    """Factory of `text2node_coordinations`: found mentions widened over the conjuncts
    coordinated before them ("brain, breast, and prostate cancer").

    linker (str): the text2node linker component whose names are the known ones.
    """
    return CoordinationWidener(nlp, name, linker=linker)
