"""PubTator files (NCBI Disease corpus) and mention-level pairs against CTD MEDIC.

PubTator format: for each abstract a `pmid|t|title` line, a `pmid|a|abstract` line,
then one line per mention `pmid<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>ids`, and a
blank line. Offsets index the text `title + " " + abstract`. Composite mentions join
several concept ids with `|` or `+`; ids are bare MeSH ("D012345") or "OMIM:123456".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from ..taxonomy import Taxonomy

logger = logging.getLogger("spacy_text2node")

_ID_SPLIT = re.compile(r"[|+]")


@dataclass(frozen=True)
class Mention:
    """A gold mention: character offsets into the document text, surface, type, ids."""

    start: int
    end: int
    text: str
    type: str
    ids: Tuple[str, ...]
    line: int


@dataclass
class PubTatorDoc:
    """One abstract: `text` is title + " " + abstract."""

    pmid: str
    title: str
    abstract: str
    mentions: List[Mention] = field(default_factory=list)
    line: int = 0

    @property
    def text(self) -> str:
        return f"{self.title} {self.abstract}" if self.abstract else self.title


def split_ids(value: str) -> Tuple[str, ...]:
    """Split a (composite) PubTator concept field into its ids ("D1|D2", "D1+D2")."""
    return tuple(x.strip() for x in _ID_SPLIT.split(value) if x.strip())


def read_pubtator(path: Union[str, Path]) -> Iterator[PubTatorDoc]:
    """Parse a PubTator file.

    Every mention is checked: its offsets must lie inside the text and the surface
    must equal the text at the offsets (ignoring surrounding whitespace; the text
    at the offsets is kept); otherwise a ValueError names the file and line.

    path (str / Path): the file.
    YIELDS (PubTatorDoc): the documents in file order.
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: PubTator file not found.")
    doc: Optional[PubTatorDoc] = None
    with p.open(encoding="utf8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                if doc is not None:
                    yield doc
                    doc = None
                continue
            head = line.split("|", 2)
            if len(head) == 3 and head[1] in ("t", "a") and "\t" not in head[0]:
                pmid, kind, text = head
                if kind == "t":
                    if doc is not None:
                        yield doc
                    doc = PubTatorDoc(pmid=pmid, title=text, abstract="", line=n)
                else:
                    if doc is None or doc.pmid != pmid:
                        raise ValueError(f"{p}, line {n}: abstract of {pmid} without its title line before it.")
                    doc.abstract = text
                continue
            parts = line.split("\t")
            if len(parts) < 5:
                raise ValueError(
                    f"{p}, line {n}: expected 'pmid|t|title', 'pmid|a|abstract' or "
                    f"'pmid<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>ids', found {line[:80]!r}."
                )
            if doc is None or parts[0] != doc.pmid:
                raise ValueError(f"{p}, line {n}: mention of document {parts[0]!r} outside that document's block.")
            try:
                start, end = int(parts[1]), int(parts[2])
            except ValueError:
                raise ValueError(
                    f"{p}, line {n}: start/end offsets {parts[1]!r}, {parts[2]!r} are not integers."
                ) from None
            text = doc.text
            if not (0 <= start < end <= len(text)):
                raise ValueError(
                    f"{p}, line {n}: offsets {start}-{end} lie outside the document text ({len(text)} characters)."
                )
            if text[start:end].strip() != parts[3].strip():
                raise ValueError(
                    f"{p}, line {n}: mention {parts[3]!r} does not match the text at {start}-{end} "
                    f"({text[start:end]!r})."
                )
            ids = split_ids(parts[5]) if len(parts) > 5 else ()
            doc.mentions.append(Mention(start, end, text[start:end], parts[4], ids, n))
    if doc is not None:
        yield doc


def resolve_ids(ids: Tuple[str, ...], taxonomy: Taxonomy) -> Tuple[List[str], List[str]]:
    """Resolve PubTator ids to taxonomy ids.

    ids (Tuple[str, ...]): ids as in the file ("D012345", "OMIM:123456").
    taxonomy (Taxonomy): e.g. CTD MEDIC, whose cross-references map bare MeSH and OMIM
        ids to MEDIC ids.
    RETURNS (Tuple[List[str], List[str]]): resolved ids (deduplicated, in order) and
        the ids that do not resolve.
    """
    good: List[str] = []
    bad: List[str] = []
    for x in ids:
        cands = [x] if ":" in x else [x, f"MESH:{x}"]
        for c in cands:
            if c in taxonomy:
                r = taxonomy.resolve(c)
                if r not in good:
                    good.append(r)
                break
        else:
            bad.append(x)
    return good, bad


def mention_pairs(
    path: Union[str, Path], taxonomy: Taxonomy, *, abbreviations: bool = False
) -> Tuple[List[Dict[str, object]], Dict[str, object]]:
    """Mention-level pairs of a PubTator file against a taxonomy.

    A mention whose ids do not all resolve is dropped (and counted): its gold set
    would otherwise be incomplete. Mentions without any id are dropped too.

    path (str / Path): a PubTator file.
    taxonomy (Taxonomy): CTD MEDIC (or another taxonomy whose ids/xrefs cover the ids).
    abbreviations (bool): write the short forms that the abstract defines out in a
        mention's text ("cerebral ALD" -> "cerebral adrenoleukodystrophy", `resolved_text`),
        as the document pipeline's linker searches it; the surface is kept as "mention".
    RETURNS (Tuple[List[Dict], Dict]): pairs {"text", "concept", "gold", "source",
        "pmid", "type"[, "mention"]} and counts: docs, mentions, kept, dropped_unresolved,
        dropped_no_id, unresolved_ids (occurrences), unresolved_distinct and a sample
        (and "abbreviations_resolved").
    """
    pairs: List[Dict[str, object]] = []
    stats: Dict[str, Any] = {
        "docs": 0,
        "mentions": 0,
        "kept": 0,
        "dropped_unresolved": 0,
        "dropped_no_id": 0,
        "unresolved_ids": 0,
    }
    unresolved: Dict[str, int] = {}
    resolve = _abbreviation_resolver() if abbreviations else None
    if abbreviations:
        stats["abbreviations_resolved"] = 0
    for doc in read_pubtator(path):
        stats["docs"] += 1
        resolved = resolve(doc) if resolve is not None else {}
        for m in doc.mentions:
            stats["mentions"] += 1
            if not m.ids:
                stats["dropped_no_id"] += 1
                continue
            good, bad = resolve_ids(m.ids, taxonomy)
            if bad:
                stats["dropped_unresolved"] += 1
                stats["unresolved_ids"] += len(bad)
                for b in bad:
                    unresolved[b] = unresolved.get(b, 0) + 1
                continue
            pair: Dict[str, object] = {
                "text": m.text,
                "concept": good[0],
                "gold": good,
                "source": "ncbi-disease",
                "pmid": doc.pmid,
                "type": m.type,
            }
            text = resolved.get((m.start, m.end))
            if text is not None and text != m.text:
                pair["text"], pair["mention"] = text, m.text
                stats["abbreviations_resolved"] += 1
            pairs.append(pair)
    stats["kept"] = len(pairs)
    stats["unresolved_distinct"] = len(unresolved)
    stats["unresolved_sample"] = sorted(unresolved, key=lambda k: (-unresolved[k], k))[:10]
    if stats["dropped_unresolved"]:
        logger.warning(
            "%s: dropped %d mentions whose ids do not resolve (%d distinct ids, e.g. %s)",
            path,
            stats["dropped_unresolved"],
            len(unresolved),
            stats["unresolved_sample"][:5],
        )
    return pairs, stats


def _abbreviation_resolver() -> Callable[[PubTatorDoc], Dict[Tuple[int, int], str]]:
    """A function from a PubTator doc to {(start, end): resolved text} of its mentions
    that hold a short form it defines (spaCy's English tokenizer, `text2node_abbreviations`)."""
    import spacy

    from ..pipeline.abbreviations import find_abbreviations, resolved_text, with_occurrences

    nlp = spacy.blank("en")

    def resolve(doc: PubTatorDoc) -> Dict[Tuple[int, int], str]:
        sdoc = nlp.make_doc(doc.text)
        pairs = with_occurrences(sdoc, find_abbreviations(sdoc))
        out: Dict[Tuple[int, int], str] = {}
        for m in doc.mentions:
            span = sdoc.char_span(m.start, m.end, alignment_mode="expand")
            text = resolved_text(span, pairs) if span is not None and span.text == m.text else None
            if text is not None:
                out[(m.start, m.end)] = text
        return out

    return resolve
