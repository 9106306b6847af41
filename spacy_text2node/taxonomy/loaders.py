"""Loaders for real taxonomies: ICD-10-CM, OBO, SNOMED CT RF2, CTD MEDIC, CSV, JSONL.

Each loader is a plain function, a `Taxonomy.from_*` classmethod and a versioned
`registry.misc` entry, so configs can name it under `[initialize]`.
"""

from __future__ import annotations

import csv
import difflib
import json
import logging
import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from spacy.util import registry

from ..util import DamagedFileError, open_binary
from .core import Synonym, Taxonomy, TaxonomyBuilder, TaxonomyError

PathLike = Union[str, Path]
logger = logging.getLogger("spacy_text2node")

MULTI_SEP = "|"


def _check_file(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise TaxonomyError(f"{p}: no such file. Check the path.")
    if p.is_dir():
        raise TaxonomyError(f"{p}: is a folder, expected a file.")
    return p


def _lines(path: Path) -> Iterator[Tuple[int, str]]:
    """Yield (line_number, line without newline), strictly UTF-8 (a BOM is allowed).

    Lines are decoded one by one, so a decoding error names the line it is on.
    """
    n = 0
    try:
        with open_binary(path) as f:
            for n, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise TaxonomyError(
                        f"{path}, line {n}: not valid UTF-8 ({e.reason} at byte {e.start} of the line). "
                        "Convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
                    ) from None
                if n == 1 and line.startswith("\ufeff"):
                    line = line[1:]
                yield n, line.rstrip("\r\n")
    except DamagedFileError as e:
        raise TaxonomyError(e.describe(f" after line {n}")) from None
    except OSError as e:
        raise TaxonomyError(f"{path}: cannot be read after line {n} ({e}). Check the file.") from None


def _split_multi(value: Optional[str], sep: str = MULTI_SEP) -> List[str]:
    if not value:
        return []
    return [v.strip() for v in value.split(sep) if v.strip()]


# ICD-10-CM ----------------------------------------------------------------------------
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


# OBO ----------------------------------------------------------------------------------
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
    p = _check_file(path)
    b = TaxonomyBuilder(str(p), on_error=on_error, name=name or p.name.split(".")[0])
    stanzas: List[Tuple[int, Dict[str, List[str]]]] = []
    current: Optional[Dict[str, List[str]]] = None
    start = 0
    seen_header = False
    for n, raw in _lines(p):
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
        current.setdefault("_lines", []).append(str(n))
    if not stanzas:
        raise TaxonomyError(f"{p}: no [Term] stanzas found. Is this an OBO file?")
    obsolete = set()
    for n, st in stanzas:
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


# SNOMED CT RF2 ------------------------------------------------------------------------
SNOMED_IS_A = "116680003"
SNOMED_FSN = "900000000000003001"
SNOMED_SYNONYM = "900000000000013009"
SNOMED_PREFERRED = "900000000000548007"

_RF2_COLUMNS = {
    "Concept": ["id", "effectiveTime", "active", "moduleId", "definitionStatusId"],
    "Description": [
        "id",
        "effectiveTime",
        "active",
        "moduleId",
        "conceptId",
        "languageCode",
        "typeId",
        "term",
        "caseSignificanceId",
    ],
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
    "TextDefinition": [
        "id",
        "effectiveTime",
        "active",
        "moduleId",
        "conceptId",
        "languageCode",
        "typeId",
        "term",
        "caseSignificanceId",
    ],
    "Language": ["id", "effectiveTime", "active", "moduleId", "refsetId", "referencedComponentId", "acceptabilityId"],
}


def _rf2_find(folder: Path, kind: str, required: bool = True) -> Optional[Path]:
    pats = {
        "Concept": "sct2_Concept_*.txt",
        "Description": "sct2_Description_*.txt",
        "Relationship": "sct2_Relationship_*.txt",
        "TextDefinition": "sct2_TextDefinition_*.txt",
        "Language": "der2_cRefset_Language*.txt",
    }
    found = sorted(x for x in folder.rglob(pats[kind]) if "StatedRelationship" not in x.name)
    if not found:
        if required:
            raise TaxonomyError(
                f"{folder}: no {pats[kind]} file found. Point to the RF2 'Snapshot' folder "
                "(it holds Terminology/sct2_Concept_Snapshot_*.txt and friends)."
            )
        return None
    return found[0]


def _rf2_rows(path: Path, kind: str) -> Iterator[Tuple[int, Dict[str, str]]]:
    """Rows of an RF2 file with their line numbers; only the latest version of each id."""
    cols = _RF2_COLUMNS[kind]
    latest: Dict[str, Tuple[int, Dict[str, str]]] = {}
    for n, line in _lines(path):
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
    concept_file = _rf2_find(root, "Concept")
    desc_file = _rf2_find(root, "Description")
    rel_file = _rf2_find(root, "Relationship")
    def_file = _rf2_find(root, "TextDefinition", required=False)
    lang_file = _rf2_find(root, "Language", required=False)
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
    for n, row in _rf2_rows(desc_file, "Description"):
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


# CTD MEDIC ----------------------------------------------------------------------------
CTD_COLUMNS = [
    "DiseaseName",
    "DiseaseID",
    "AltDiseaseIDs",
    "Definition",
    "ParentIDs",
    "TreeNumbers",
    "ParentTreeNumbers",
    "Synonyms",
    "SlimMappings",
]


def load_ctd_medic(path: PathLike, *, on_error: str = "raise", name: str = "ctd_medic") -> Taxonomy:
    """Load the CTD MEDIC disease vocabulary (`CTD_diseases.tsv`, gzipped or not).

    Names, synonyms, definitions and ParentIDs (several parents: MeSH is a DAG).
    AltDiseaseIDs (OMIM, DO ids) are kept as cross-references, so
    `taxonomy.resolve("OMIM:264300")` gives the MeSH concept.

    path (str / Path): the file.
    on_error (str): "raise" or "skip".
    name (str): the taxonomy's name.
    RETURNS (Taxonomy): 11,865 concepts for the 2017 release, root `MESH:C`.
    """
    p = _check_file(path)
    b = TaxonomyBuilder(str(p), on_error=on_error, name=name)
    saw_header = False
    for n, line in _lines(p):
        if line.startswith("#"):
            if line.lstrip("# ").startswith("DiseaseName"):
                saw_header = True
            continue
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != len(CTD_COLUMNS):
            if not saw_header and n < 50:
                raise TaxonomyError(
                    f"{p}, line {n}: does not look like CTD_diseases.tsv (expected {len(CTD_COLUMNS)} tab-separated columns, found {len(parts)})."
                )
            b.problem(n, f"expected {len(CTD_COLUMNS)} tab-separated columns, found {len(parts)}")
            continue
        row = dict(zip(CTD_COLUMNS, parts))
        b.add(
            row["DiseaseID"],
            row["DiseaseName"],
            synonyms=_split_multi(row["Synonyms"]),
            definition=row["Definition"] or None,
            parents=_split_multi(row["ParentIDs"]),
            xrefs=_split_multi(row["AltDiseaseIDs"]),
            line=n,
        )
    tax = b.build()
    # MEDIC ids are "MESH:D012345"; NCBI Disease and others cite bare "D012345"
    extra = {}
    for cid in tax.ids:
        if cid.startswith("MESH:"):
            extra[cid[5:]] = cid
    for x, c in list(tax._xrefs.items()):
        if x.startswith("DO:"):
            extra[x[3:]] = c
    for k, v in extra.items():
        if k not in tax._index:
            tax._xrefs.setdefault(k, v)
    return tax


# CSV / TSV ----------------------------------------------------------------------------
def _did_you_mean(name: str, candidates: Sequence[str]) -> Optional[str]:
    """The candidate closest to `name` (ignoring case), or None."""
    lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.6)
    return lower[close[0]] if close else None


def _check_csv_header(
    p: Path, header: List[str], delimiter: str, required: Sequence[str], optional: Sequence[str]
) -> None:
    """Raise a TaxonomyError naming the file, line 1 and the fix for a duplicate, missing or unknown column.

    Unknown columns are errors, not ignored: a header saying `parent` instead of `parents`
    would otherwise load as a flat list. Columns with an empty name are ignored.
    """
    expected = list(required) + list(optional)
    listing = (
        f"Expected columns {', '.join(expected)} (only {' and '.join(required)} are required; "
        "in Python the names can be changed with id_column=, label_column=, parents_column=...)"
    )
    named = [h for h in header if h]
    for h in named:
        if named.count(h) > 1:
            raise TaxonomyError(f"{p}, line 1: column {h!r} appears twice in the header {header}. Keep one of them.")
    unknown = [h for h in named if h not in expected]
    for col in required:
        if col not in header:
            close = _did_you_mean(col, unknown)
            hint = f" (did you mean {col!r} instead of {close!r}?)" if close else ""
            if len(header) == 1 and any(d in header[0] for d in ",;\t|" if d != delimiter):
                hint += f" (the header is one column read with delimiter {delimiter!r}: name a tab-separated file .tsv)"
            raise TaxonomyError(f"{p}, line 1: no {col!r} column in the header {header}{hint}. {listing}.")
    if unknown:
        free = [c for c in expected if c not in header]
        parts = []
        for h in unknown:
            close = _did_you_mean(h, free)
            parts.append(f"{h!r} (did you mean {close!r}?)" if close else repr(h))
        what = "column" if len(unknown) == 1 else "columns"
        raise TaxonomyError(
            f"{p}, line 1: unknown {what} {', '.join(parts)} in the header {header}. {listing}. "
            f"Rename the {what} or remove {'it' if len(unknown) == 1 else 'them'}."
        )


def load_csv(
    path: PathLike,
    *,
    delimiter: Optional[str] = None,
    id_column: str = "id",
    label_column: str = "label",
    parents_column: str = "parents",
    synonyms_column: str = "synonyms",
    definition_column: str = "definition",
    multi_sep: str = MULTI_SEP,
    on_error: str = "raise",
    name: Optional[str] = None,
) -> Taxonomy:
    """Load a CSV or TSV with a header row: id, label, parents, synonyms[, definition].

    Several parents or synonyms go in one cell separated by `multi_sep` ("|").
    The delimiter is a tab for `.tsv`/`.tab` files and a comma otherwise.

    path (str / Path): the file (gzipped or not).
    delimiter (str): override the delimiter.
    id_column, label_column, parents_column, synonyms_column, definition_column (str):
        column names; parents, synonyms and definition may be absent.
    multi_sep (str): separator of several values in one cell.
    on_error (str): "raise" or "skip".
    name (str): the taxonomy's name (default: the file stem).
    RETURNS (Taxonomy): the taxonomy.
    """
    p = _check_file(path)
    if delimiter is None:
        suffixes = [s.lower() for s in p.suffixes]
        delimiter = "\t" if (".tsv" in suffixes or ".tab" in suffixes) else ","
    b = TaxonomyBuilder(str(p), on_error=on_error, name=name or p.name.split(".")[0])
    lines = _lines(p)
    try:
        first = next(lines)
    except StopIteration:
        raise TaxonomyError(
            f"{p}: the file is empty. Expected a header row with columns {id_column}, {label_column}, {parents_column}, {synonyms_column}."
        ) from None
    header = next(csv.reader([first[1]], delimiter=delimiter), [])
    header = [h.strip() for h in header]
    _check_csv_header(
        p, header, delimiter, (id_column, label_column), (parents_column, synonyms_column, definition_column)
    )
    pos = {h: i for i, h in enumerate(header)}
    # csv.reader over numbered lines: a quoted field with a newline continues the record
    buf: List[str] = []
    buf_start = 0
    for n, line in lines:
        if not buf:
            buf_start = n
        buf.append(line)
        text = "\n".join(buf)
        if text.count('"') % 2 == 1:
            continue
        buf = []
        if not text.strip():
            continue
        try:
            cells = next(csv.reader([text], delimiter=delimiter, strict=True))
        except csv.Error as e:
            b.problem(buf_start, f"malformed row ({e})")
            continue
        if len(cells) != len(header):
            b.problem(buf_start, f"expected {len(header)} columns ({', '.join(header)}), found {len(cells)}")
            continue

        def get(col: str) -> str:
            return cells[pos[col]].strip() if col in pos else ""

        b.add(
            get(id_column),
            get(label_column),
            synonyms=_split_multi(get(synonyms_column), multi_sep),
            definition=get(definition_column) or None,
            parents=_split_multi(get(parents_column), multi_sep),
            line=buf_start,
        )
    if buf:
        b.problem(buf_start, "unterminated quoted field at the end of the file")
    return b.build()


# JSONL --------------------------------------------------------------------------------
JSONL_KEYS = ("id", "label", "parents", "parent", "synonyms", "definition", "xrefs")


def _str_list(value: object, key: str) -> Union[List[str], str]:
    """A JSONL value that holds one or several strings (or ids as numbers) as a list, or a problem."""
    if value is None:
        return []
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list) and all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in value):
        return [str(x) for x in value]
    return f"{key!r} must be a string or a list of strings, not {json.dumps(value)[:60]}"


_JsonlRow = Tuple[str, str, List[Synonym], Optional[str], List[str], List[str]]


def _jsonl_row(obj: Dict[str, object]) -> Union[str, _JsonlRow]:
    """The fields of one JSONL concept, or a problem naming the bad key."""
    cid, label, definition = obj.get("id"), obj.get("label"), obj.get("definition")
    if cid is not None and (isinstance(cid, bool) or not isinstance(cid, (str, int))):
        return f"'id' must be a string, not {json.dumps(cid)[:60]}"
    if label is not None and (isinstance(label, bool) or not isinstance(label, (str, int))):
        return f"'label' must be a string, not {json.dumps(label)[:60]}"
    if definition is not None and not isinstance(definition, str):
        return f"'definition' must be a string, not {json.dumps(definition)[:60]}"
    parents = _str_list(obj.get("parents", obj.get("parent")), "parents")
    xrefs = _str_list(obj.get("xrefs"), "xrefs")
    for value in (parents, xrefs):
        if isinstance(value, str):
            return value
    raw_syns = obj.get("synonyms") or []
    if isinstance(raw_syns, str):
        raw_syns = [raw_syns]
    if not isinstance(raw_syns, list):
        return f"'synonyms' must be a list, not {json.dumps(raw_syns)[:60]}"
    syns = []
    for s in raw_syns:
        if isinstance(s, str):
            syns.append(Synonym(s))
        elif isinstance(s, dict) and isinstance(s.get("text"), str):
            syns.append(Synonym(s["text"], str(s.get("type", "synonym"))))
        else:
            return f"synonym {json.dumps(s)[:60]} is neither a string nor an object with 'text'"
    cid, label = "" if cid is None else str(cid), "" if label is None else str(label)
    return cid, label, syns, definition or None, parents, xrefs


def load_jsonl(path: PathLike, *, on_error: str = "raise", name: Optional[str] = None) -> Taxonomy:
    """Load concepts from JSONL, one object per line.

    Keys: "id" and "label" (required), "parents" (list or string; "parent" is read too),
    "synonyms" (a list of strings or of {"text", "type"} objects), "definition", "xrefs"
    (list). A value of the wrong type is a bad row; unknown keys are logged as a warning.

    path (str / Path): the file (gzipped or not).
    on_error (str): "raise" or "skip".
    name (str): the taxonomy's name (default: the file stem).
    RETURNS (Taxonomy): the taxonomy.
    """
    p = _check_file(path)
    b = TaxonomyBuilder(str(p), on_error=on_error, name=name or p.name.split(".")[0])
    unknown: Dict[str, int] = {}
    for n, line in _lines(p):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            b.problem(n, f"not valid JSON ({e.msg} at column {e.colno})")
            continue
        except (ValueError, RecursionError) as e:  # a number too long, nesting too deep
            b.problem(n, f"not valid JSON ({e})")
            continue
        if not isinstance(obj, dict):
            b.problem(n, f"expected a JSON object, found {type(obj).__name__}")
            continue
        for key in obj:
            if key not in JSONL_KEYS:
                unknown.setdefault(key, n)
        row = _jsonl_row(obj)
        if isinstance(row, str):
            b.problem(n, row)
            continue
        cid, label, syns, definition, parents, xrefs = row
        b.add(cid, label, synonyms=syns, definition=definition, parents=parents, xrefs=xrefs, line=n)
    if unknown:
        hints = []
        for key, n in unknown.items():
            close = _did_you_mean(key, JSONL_KEYS)
            hints.append(f"{key!r} (line {n}" + (f"; did you mean {close!r}?)" if close else ")"))
        logger.warning(
            "%s: ignored unknown keys %s; the keys read are %s.", p, ", ".join(hints[:10]), ", ".join(JSONL_KEYS)
        )
    return b.build()


def load_taxonomy_dir(path: PathLike) -> Taxonomy:
    """Load a taxonomy saved with `Taxonomy.to_disk` / `text2node taxonomy build`."""
    return Taxonomy.from_disk(path)


FORMATS = {
    "icd10cm": lambda source, **kw: load_icd10cm(**kw),
    "obo": load_obo,
    "snomed-rf2": load_snomed_rf2,
    "ctd-medic": load_ctd_medic,
    "csv": load_csv,
    "jsonl": load_jsonl,
    "dir": lambda source, **kw: load_taxonomy_dir(source),
}


def load_taxonomy(source: Optional[PathLike], format: str, **kwargs) -> Taxonomy:
    """Load a taxonomy by format name (see `FORMATS`)."""
    if format not in FORMATS:
        raise ValueError(f"Unknown taxonomy format {format!r}. Choose one of: {', '.join(FORMATS)}.")
    if format not in ("icd10cm",) and source is None:
        raise ValueError(f"Format {format!r} needs a SOURCE path.")
    return FORMATS[format](source, **kwargs)


# registry -----------------------------------------------------------------------------
@registry.misc("spacy-text2node.ICD10CM.v1")
def make_icd10cm_loader(inclusion_terms: bool = True) -> Taxonomy:
    """Registered loader: ICD-10-CM from simple-icd-10-cm."""
    return load_icd10cm(inclusion_terms=inclusion_terms)


@registry.misc("spacy-text2node.OBO.v1")
def make_obo_loader(path: str, on_error: str = "raise") -> Taxonomy:
    """Registered loader: an OBO file."""
    return load_obo(path, on_error=on_error)


@registry.misc("spacy-text2node.SnomedRF2.v1")
def make_snomed_rf2_loader(path: str, on_error: str = "raise") -> Taxonomy:
    """Registered loader: a SNOMED CT RF2 snapshot folder."""
    return load_snomed_rf2(path, on_error=on_error)


@registry.misc("spacy-text2node.CTDMedic.v1")
def make_ctd_medic_loader(path: str, on_error: str = "raise") -> Taxonomy:
    """Registered loader: CTD MEDIC."""
    return load_ctd_medic(path, on_error=on_error)


@registry.misc("spacy-text2node.CSV.v1")
def make_csv_loader(path: str, delimiter: Optional[str] = None, on_error: str = "raise") -> Taxonomy:
    """Registered loader: a CSV/TSV taxonomy."""
    return load_csv(path, delimiter=delimiter, on_error=on_error)


@registry.misc("spacy-text2node.JSONL.v1")
def make_jsonl_loader(path: str, on_error: str = "raise") -> Taxonomy:
    """Registered loader: a JSONL taxonomy."""
    return load_jsonl(path, on_error=on_error)


@registry.misc("spacy-text2node.TaxonomyDir.v1")
def make_taxonomy_dir_loader(path: str) -> Taxonomy:
    """Registered loader: a directory written by `Taxonomy.to_disk`."""
    return load_taxonomy_dir(path)
