"""ICD-10-CM from the `simple-icd-10-cm` package."""

from __future__ import annotations

from typing import Dict

from ..builder import TaxonomyBuilder
from ..concepts import Synonym
from ..core import Taxonomy


def load_icd10cm(*, inclusion_terms: bool = True, name: str = "icd10cm") -> Taxonomy:
    """Load ICD-10-CM from the `simple-icd-10-cm` package (the embedded default).

    Chapters ("1".."22") are roots, blocks ("E08-E13") and categories are internal
    nodes, and every code keeps its dotted form ("E11.9"). The 39 blocks that hold
    a single category of the same name (block "B10" over category "B10") get the
    id "B10-B10", so that block and category stay two nodes.

    inclusion_terms (bool): add each code's inclusion terms as synonyms of type
        "inclusion".
    name (str): the taxonomy's name.
    RETURNS (Taxonomy): 98,505 concepts for the FY2026 release.
    """
    try:
        import simple_icd_10_cm as icd
    except ImportError:
        raise ImportError("ICD-10-CM needs the simple-icd-10-cm package: pip install 'spacy-text2node[icd]'") from None
    b = TaxonomyBuilder("simple-icd-10-cm", name=name)
    codes = icd.get_all_codes(True)
    # 39 blocks hold a single category of the same name ("B10" the block, "B10" the
    # category). The block comes first in the tree walk; it gets the id "B10-B10".
    counts: Dict[str, int] = {}
    for code in codes:
        counts[code] = counts.get(code, 0) + 1
    seen: set = set()
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
            syns = [Synonym(t, "inclusion") for t in icd.get_inclusion_term(code, prioritize_blocks=block)]
        b.add(
            cid, icd.get_description(code, prioritize_blocks=block), synonyms=syns, parents=[parent] if parent else []
        )
    tax = b.build()
    tax.meta["source"] = "simple-icd-10-cm (ICD-10-CM tabular list)"
    return tax
