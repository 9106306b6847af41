"""SNOMED CT from an RF2 snapshot folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from ..builder import TaxonomyBuilder
from ..concepts import Synonym, TaxonomyError
from ..core import Taxonomy
from .common import PathLike, numbered_lines

SNOMED_IS_A = "116680003"
SNOMED_FSN = "900000000000003001"
SNOMED_SYNONYM = "900000000000013009"
SNOMED_PREFERRED = "900000000000548007"

# a text definition is a description row in its own file: the same columns
_DESCRIPTION_COLUMNS = [
    "id",
    "effectiveTime",
    "active",
    "moduleId",
    "conceptId",
    "languageCode",
    "typeId",
    "term",
    "caseSignificanceId",
]
_RF2_COLUMNS = {
    "Concept": ["id", "effectiveTime", "active", "moduleId", "definitionStatusId"],
    "Description": _DESCRIPTION_COLUMNS,
    "Relationship": [
        "id",
        "effectiveTime",
        "active",
        "moduleId",
        "sourceId",
        "destinationId",
        "relationshipGroup",
        "typeId",
        "characteristicTypeId",
        "modifierId",
    ],
    "TextDefinition": _DESCRIPTION_COLUMNS,
    "Language": ["id", "effectiveTime", "active", "moduleId", "refsetId", "referencedComponentId", "acceptabilityId"],
}


_RF2_FILES = {
    "Concept": "sct2_Concept_*.txt",
    "Description": "sct2_Description_*.txt",
    "Relationship": "sct2_Relationship_*.txt",
    "TextDefinition": "sct2_TextDefinition_*.txt",
    "Language": "der2_cRefset_Language*.txt",
}


def _rf2_find(folder: Path, kind: str) -> Optional[Path]:
    """The first RF2 file of `kind` under `folder` (stated relationships left out), or None."""
    found = sorted(x for x in folder.rglob(_RF2_FILES[kind]) if "StatedRelationship" not in x.name)
    return found[0] if found else None


def _rf2_require(folder: Path, kind: str) -> Path:
    """The first RF2 file of `kind` under `folder`; none raises a TaxonomyError saying where to point."""
    found = _rf2_find(folder, kind)
    if found is None:
        raise TaxonomyError(
            f"{folder}: no {_RF2_FILES[kind]} file found. Point to the RF2 'Snapshot' folder "
            "(it holds Terminology/sct2_Concept_Snapshot_*.txt and friends)."
        )
    return found


def _rf2_rows(path: Path, kind: str) -> Iterator[Tuple[int, Dict[str, str]]]:
    """Rows of an RF2 file with their line numbers; only the latest version of each id."""
    cols = _RF2_COLUMNS[kind]
    latest: Dict[str, Tuple[int, Dict[str, str]]] = {}
    for n, line in numbered_lines(path):
        parts = line.split("\t")
        if n == 1:
            if parts[: len(cols)] != cols:
                raise TaxonomyError(
                    f"{path}, line 1: expected the RF2 {kind} header {cols}, found {parts[: len(cols)]}."
                )
            continue
        if not line:
            continue
        if len(parts) != len(cols):
            raise TaxonomyError(f"{path}, line {n}: expected {len(cols)} tab-separated columns, found {len(parts)}.")
        row = dict(zip(cols, parts))
        prev = latest.get(row["id"])
        if prev is None or prev[1]["effectiveTime"] <= row["effectiveTime"]:
            latest[row["id"]] = (n, row)
    yield from latest.values()


def load_snomed_rf2(
    folder: PathLike,
    *,
    on_error: str = "raise",
    language_refset: Optional[str] = None,
    name: str = "snomedct",
) -> Taxonomy:
    """Load a SNOMED CT RF2 snapshot folder.

    Active concepts; the fully specified name (FSN) and synonyms from the active rows
    of the description file; active `116680003 |Is a|` relationships as is-a edges.
    The label is the preferred synonym of the language refset when one is present
    (the first one found, or `language_refset`), else the FSN without its semantic
    tag. Text definitions become definitions.

    folder (str / Path): the RF2 Snapshot folder (searched recursively).
    on_error (str): "raise" or "skip".
    language_refset (str): the refsetId whose preferred terms give labels.
    name (str): the taxonomy's name.
    RETURNS (Taxonomy): the SNOMED CT hierarchy.
    """
    root = Path(folder)
    if not root.is_dir():
        raise TaxonomyError(f"{root}: not a folder. Give the RF2 Snapshot folder.")
    concept_file = _rf2_require(root, "Concept")
    desc_file = _rf2_require(root, "Description")
    rel_file = _rf2_require(root, "Relationship")
    def_file = _rf2_find(root, "TextDefinition")
    lang_file = _rf2_find(root, "Language")
    b = TaxonomyBuilder(str(root), on_error=on_error, name=name)
    active: Dict[str, int] = {}
    inactive = 0
    for n, row in _rf2_rows(concept_file, "Concept"):
        if row["active"] == "1":
            active[row["id"]] = n
        else:
            inactive += 1
    preferred: set = set()
    if lang_file is not None:
        for _, row in _rf2_rows(lang_file, "Language"):
            if row["active"] == "1" and row["acceptabilityId"] == SNOMED_PREFERRED:
                if language_refset is None:
                    language_refset = row["refsetId"]
                if row["refsetId"] == language_refset:
                    preferred.add(row["referencedComponentId"])
    fsn: Dict[str, str] = {}
    pref: Dict[str, str] = {}
    syns: Dict[str, List[Synonym]] = {c: [] for c in active}
    for _, row in _rf2_rows(desc_file, "Description"):
        cid = row["conceptId"]
        if row["active"] != "1" or cid not in active:
            continue
        if row["typeId"] == SNOMED_FSN:
            fsn[cid] = row["term"]
            syns[cid].append(Synonym(row["term"], "fsn"))
        else:
            if row["id"] in preferred:
                pref[cid] = row["term"]
            syns[cid].append(Synonym(row["term"], "synonym"))
    defs: Dict[str, str] = {}
    if def_file is not None:
        for _, row in _rf2_rows(def_file, "TextDefinition"):
            if row["active"] == "1" and row["conceptId"] in active:
                defs[row["conceptId"]] = row["term"]
    parents: Dict[str, List[str]] = {c: [] for c in active}
    for n, row in _rf2_rows(rel_file, "Relationship"):
        if row["active"] != "1" or row["typeId"] != SNOMED_IS_A:
            continue
        src, dst = row["sourceId"], row["destinationId"]
        if src not in active:
            continue
        if dst not in active:
            b.problem(n, f"{rel_file.name}: active is-a from {src} to {dst}, which is not an active concept")
            continue
        parents[src].append(dst)
    for cid, n in active.items():
        label = pref.get(cid) or re.sub(r"\s*\([^()]*\)\s*$", "", fsn.get(cid, ""))
        if not label:
            b.problem(n, f"{concept_file.name}: active concept {cid} has no active description")
            continue
        b.add(cid, label, synonyms=syns[cid], definition=defs.get(cid), parents=parents[cid], line=n)
    tax = b.build()
    tax.meta["dropped_inactive"] = inactive
    return tax
