"""OBO 1.2/1.4 ontologies (HPO, Disease Ontology...)."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from ..builder import TaxonomyBuilder
from ..concepts import Synonym, TaxonomyError
from ..core import Taxonomy
from .common import PathLike, check_file, numbered_lines

_OBO_SYN = re.compile(r'^"((?:[^"\\]|\\.)*)"\s*(EXACT|BROAD|NARROW|RELATED)?')
_OBO_DEF = re.compile(r'^"((?:[^"\\]|\\.)*)"')


def _obo_unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


def _obo_value(line: str) -> str:
    """Strip trailing `! comment` and `{qualifiers}` from an OBO tag value."""
    v = line
    if " !" in v:
        v = v.split(" !", 1)[0]
    v = re.sub(r"\s*\{[^}]*\}\s*$", "", v)
    return v.strip()


def load_obo(
    path: PathLike,
    *,
    synonym_scopes: Tuple[str, ...] = ("EXACT", "RELATED", "NARROW", "BROAD"),
    on_error: str = "raise",
    name: Optional[str] = None,
) -> Taxonomy:
    """Load an OBO 1.2/1.4 ontology (HPO, Disease Ontology...).

    Only `[Term]` stanzas are read. `is_a` edges become parents; synonyms keep their
    scope as type; obsolete terms are dropped and counted in `meta["dropped_obsolete"]`
    (an `is_a` to an obsolete term is dropped too); `alt_id`s resolve to their term.

    path (str / Path): the .obo file (gzipped or not).
    synonym_scopes (Tuple[str]): which synonym scopes to keep.
    on_error (str): "raise" or "skip" (skip and report bad stanzas).
    name (str): the taxonomy's name (default: the file stem).
    RETURNS (Taxonomy): the ontology.
    """
    p = check_file(path)
    b = TaxonomyBuilder(str(p), on_error=on_error, name=name or p.name.split(".")[0])
    stanzas: List[Tuple[int, Dict[str, List[str]]]] = []
    current: Optional[Dict[str, List[str]]] = None
    seen_header = False
    for n, raw in numbered_lines(p):
        line = raw.strip()
        if not line or line.startswith("!"):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                b.problem(n, f"malformed stanza header {line!r}")
                current = None
                continue
            current = {} if line == "[Term]" else None
            if current is not None:
                stanzas.append((n, current))
            seen_header = True
            continue
        if not seen_header and not stanzas and n == 1 and not line.startswith("format-version"):
            raise TaxonomyError(
                f"{p}, line 1: does not look like OBO (expected 'format-version: ...'). Is this the right --format?"
            )
        if ":" not in line:
            b.problem(n, f"malformed line {line[:60]!r}: expected 'tag: value'")
            continue
        if not seen_header:
            continue
        if current is None:
            continue
        tag, value = line.split(":", 1)
        current.setdefault(tag.strip(), []).append(value.strip())
        current.setdefault("numbered_lines", []).append(str(n))
    if not stanzas:
        raise TaxonomyError(f"{p}: no [Term] stanzas found. Is this an OBO file?")
    obsolete = set()
    for _, st in stanzas:
        if any(v.lower().startswith("true") for v in st.get("is_obsolete", [])):
            ids = st.get("id")
            if ids:
                obsolete.add(_obo_value(ids[0]))
    for n, st in stanzas:
        ids = st.get("id")
        if not ids:
            b.problem(n, "[Term] stanza without an id")
            continue
        cid = _obo_value(ids[0])
        if cid in obsolete:
            b.dropped["obsolete"] += 1
            continue
        label = st.get("name", [""])[0]
        syns = []
        for s in st.get("synonym", []):
            m = _OBO_SYN.match(s)
            if not m:
                b.problem(n, f"term {cid}: malformed synonym {s[:60]!r}")
                continue
            scope = m.group(2) or "RELATED"
            if scope in synonym_scopes:
                syns.append(Synonym(_obo_unescape(m.group(1)), scope))
        definition = None
        if st.get("def"):
            m = _OBO_DEF.match(st["def"][0])
            definition = _obo_unescape(m.group(1)) if m else None
        parents = []
        for v in st.get("is_a", []):
            par = _obo_value(v)
            if par in obsolete:
                b.dropped["is_a_to_obsolete"] += 1
                continue
            parents.append(par)
        b.add(
            cid,
            label,
            synonyms=syns,
            definition=definition,
            parents=parents,
            xrefs=[_obo_value(a) for a in st.get("alt_id", [])],
            line=n,
        )
    tax = b.build()
    tax.meta["dropped_obsolete"] = b.dropped["obsolete"]
    return tax
