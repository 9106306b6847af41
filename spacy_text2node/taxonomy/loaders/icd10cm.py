"""ICD-10-CM from the `simple-icd-10-cm` package."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Set, Tuple

from ..builder import TaxonomyBuilder
from ..concepts import Synonym
from ..core import Taxonomy

# ICD-10-CM's conventions for words that do not change the code (Official Guidelines,
# section I.A): parentheses enclose nonessential modifiers, "NOS" means "not otherwise
# specified", and a trailing "unspecified" qualifier marks the code a coder assigns when
# the text says no more. A bare "hypertension" is I10 "Essential (primary) hypertension".
_PARENS = re.compile(r"\s*\([^()]*\)")
_NOS = re.compile(r"\s*\bNOS\b")
# a comma part that only states the default: "unspecified", "unspecified organism",
# "site not specified"; not "unspecified right arm" (a laterality is a detail)
_DEFAULT_PART = re.compile(r"^(?:unspecified(?: \w+)?|(?:\w+ )?not specified)$", re.IGNORECASE)
_DETAIL = re.compile(r"\b(?:right|left|bilateral)\b", re.IGNORECASE)
_DANGLING = re.compile(r"\b(?:by|of|with|without|and|or|to|in|due|from|for|at)$", re.IGNORECASE)


def nonessential_variant(text: str) -> Optional[str]:
    """`text` without the words that ICD-10-CM's conventions mark as not changing the
    code: parenthesised modifiers, "NOS" and trailing comma parts that only say
    "unspecified" ("Pneumonia, unspecified organism" -> "Pneumonia"). None when nothing
    is left out or what is left ends in a dangling word ("Poisoning by, ...").

    text (str): a label, inclusion term or includes note.
    RETURNS (Optional[str]): the variant, or None.
    """
    t = _NOS.sub("", _PARENS.sub("", text))
    parts = [p.strip() for p in t.split(",")]
    head, rest = parts[0], parts[1:]
    rest = [p for p in rest if p and not (_DEFAULT_PART.match(p) and not _DETAIL.search(p))]
    t = re.sub(r"\s+", " ", ", ".join([head] + rest)).strip(" ,")
    if not t or t.lower() == text.strip().lower() or _DANGLING.search(head) or not head:
        return None
    return t


def load_icd10cm(
    *, inclusion_terms: bool = True, includes_notes: bool = True, variants: bool = True, name: str = "icd10cm"
) -> Taxonomy:
    """Load ICD-10-CM from the `simple-icd-10-cm` package (the embedded default).

    Chapters ("1".."22") are roots, blocks ("E08-E13") and categories are internal
    nodes, and every code keeps its dotted form ("E11.9"). The 39 blocks that hold
    a single category of the same name (block "B10" over category "B10") get the
    id "B10-B10", so that block and category stay two nodes.

    inclusion_terms (bool): add each code's inclusion terms as synonyms of type
        "inclusion".
    includes_notes (bool): add each code's "includes" notes (I10: "high blood
        pressure") as synonyms of type "includes".
    variants (bool): add, as synonyms of type "variant", each label's, inclusion
        term's and note's form without the words ICD-10-CM's conventions call
        nonessential (`nonessential_variant`): "Essential (primary) hypertension" ->
        "Essential hypertension", "diabetes NOS" -> "diabetes", "Urinary tract
        infection, site not specified" -> "Urinary tract infection". A variant that
        another branch also has (as a variant, label or synonym) is left out: it would
        not say which concept is meant.
    name (str): the taxonomy's name.
    RETURNS (Taxonomy): 98,505 concepts for the FY2026 release.
    """
    try:
        import simple_icd_10_cm as icd
    except ImportError:
        raise ImportError("ICD-10-CM needs the simple-icd-10-cm package: pip install 'spacy-text2node[icd]'") from None
    codes = icd.get_all_codes(True)
    # 39 blocks hold a single category of the same name ("B10" the block, "B10" the
    # category). The block comes first in the tree walk; it gets the id "B10-B10".
    counts: Dict[str, int] = {}
    for code in codes:
        counts[code] = counts.get(code, 0) + 1
    seen: set = set()
    rows: List[Tuple[str, str, List[Synonym], Optional[str]]] = []
    for code in codes:
        cid, parent, block = code, icd.get_parent(code), False
        if counts[code] > 1:
            if code not in seen:
                seen.add(code)
                cid, block = f"{code}-{code}", True
                parent = icd.get_parent(code, prioritize_blocks=True)
            else:
                parent = f"{code}-{code}"
        syns = []
        if inclusion_terms:
            syns += [Synonym(t, "inclusion") for t in icd.get_inclusion_term(code, prioritize_blocks=block)]
        if includes_notes:
            syns += [Synonym(t, "includes") for t in icd.get_includes(code, prioritize_blocks=block)]
        rows.append((cid, icd.get_description(code, prioritize_blocks=block), syns, parent or None))
    if variants:
        _add_variants(rows)
    b = TaxonomyBuilder("simple-icd-10-cm", name=name)
    for cid, label, syns, parent in rows:
        b.add(cid, label, synonyms=syns, parents=[parent] if parent else [])
    tax = b.build()
    tax.meta["source"] = "simple-icd-10-cm (ICD-10-CM tabular list)"
    return tax


def _add_variants(rows: List[Tuple[str, str, List[Synonym], Optional[str]]]) -> None:
    """Append each row's unambiguous nonessential variants to its synonyms, in place."""
    parent_of = {cid: parent for cid, _, _, parent in rows}

    def line(cid: str) -> Set[str]:  # the concept and its ancestors
        out: Set[str] = set()
        node: Optional[str] = cid
        while node is not None and node not in out:
            out.add(node)
            node = parent_of.get(node)
        return out

    owners: Dict[str, Set[str]] = {}  # lowercase string -> concepts that have it
    derived: List[List[str]] = []
    for cid, label, syns, _ in rows:
        own = {t.lower() for t in [label] + [s.text for s in syns]}
        for t in own:
            owners.setdefault(t, set()).add(cid)
        vs: List[str] = []
        for t in [label] + [s.text for s in syns]:
            v = nonessential_variant(t)
            if v is not None and v.lower() not in own and v.lower() not in {x.lower() for x in vs}:
                vs.append(v)
                owners.setdefault(v.lower(), set()).add(cid)
        derived.append(vs)
    for (cid, _, syns, _), vs in zip(rows, derived):
        mine = line(cid)
        for v in vs:
            # every owner lies on one line of descent with this concept
            if all(o in mine or cid in line(o) for o in owners[v.lower()]):
                syns.append(Synonym(v, "variant"))
