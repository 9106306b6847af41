"""JSONL taxonomies: one JSON object per concept and line."""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Tuple, Union

from ..builder import TaxonomyBuilder
from ..concepts import Synonym
from ..core import Taxonomy
from .common import PathLike, check_file, did_you_mean, logger, numbered_lines

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
    if isinstance(parents, str):
        return parents
    if isinstance(xrefs, str):
        return xrefs
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
    p = check_file(path)
    b = TaxonomyBuilder(str(p), on_error=on_error, name=name or p.name.split(".")[0])
    unknown: Dict[str, int] = {}
    for n, line in numbered_lines(p):
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
            close = did_you_mean(key, JSONL_KEYS)
            hints.append(f"{key!r} (line {n}" + (f"; did you mean {close!r}?)" if close else ")"))
        logger.warning(
            "%s: ignored unknown keys %s; the keys read are %s.", p, ", ".join(hints[:10]), ", ".join(JSONL_KEYS)
        )
    return b.build()
