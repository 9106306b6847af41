"""The JSONL reader: one JSON object per line, streamed line by line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

from ...util import open_binary
from .base import _MISSING_ID_HINT, BOM, InputRecord, PathLike, _record, normalize_id_field


def _jsonl_lines(path: Path) -> Iterator[Tuple[int, bytes]]:
    with open_binary(path) as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            if raw.strip():
                yield lineno, raw


def _json_object(raw: bytes) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    try:
        obj = json.loads(raw.decode("utf-8", errors="surrogateescape"))
    except json.JSONDecodeError as e:
        return None, f"bad JSON: {e.msg} (column {e.colno})"
    except RecursionError:
        return None, "bad JSON: nested too deeply"
    if not isinstance(obj, dict):
        return None, f"bad JSON: a line must hold an object, not {type(obj).__name__}"
    return obj, None


def check_jsonl_fields(path: PathLike, *, id_field: Optional[str] = "id", text_field: str = "text") -> None:
    """Check the id and text fields on the first JSON object of a JSONL file: a field the first
    record lacks is taken for a misspelled field name (later records lacking the id go to the errors file).

    path (PathLike): the JSONL file.
    id_field (Optional[str]): the id field (None: record-index ids, not checked).
    text_field (str): the text field.
    """
    for lineno, raw in _jsonl_lines(Path(path)):
        obj, _ = _json_object(raw)
        if obj is None:
            continue
        _check_first_object(Path(path), lineno, obj, normalize_id_field(id_field), text_field)
        return


def _check_first_object(path: Path, lineno: int, obj: Dict[str, Any], id_field: Optional[str], text_field: str) -> None:
    if text_field not in obj:
        raise ValueError(
            f"{path}, line {lineno}: the first record has no text field {text_field!r} (its fields: {list(obj)}). "
            f"Pass the text field's name (--text-field)."
        )
    if id_field is not None and id_field not in obj:
        raise ValueError(
            f"{path}, line {lineno}: the first record has no id field {id_field!r} (its fields: {list(obj)}). "
            + _MISSING_ID_HINT
        )


def read_jsonl(path: PathLike, *, id_field: Optional[str] = "id", text_field: str = "text") -> Iterator[InputRecord]:
    """Stream a JSONL file (one JSON object per line; blank lines are skipped; a UTF-8 BOM is dropped).

    The first JSON object must have the id and text fields (else ValueError: a misspelled field);
    a later record without the id, or with a null, empty or non-string id, is yielded with an error.

    path (PathLike): the file (.gz is decompressed on the fly).
    id_field (Optional[str]): the field holding the record id; None or "none": the 0-based record index.
    text_field (str): the field holding the text.
    YIELDS (InputRecord): the records, with `error` set for lines that are not JSON objects or lack a valid id.
    """
    path = Path(path)
    id_field = normalize_id_field(id_field)
    checked = False
    for index, (lineno, raw) in enumerate(_jsonl_lines(path)):
        obj, reason = _json_object(raw)
        if obj is None:
            yield InputRecord(index, None, None, lineno, reason)
            continue
        if not checked:
            _check_first_object(path, lineno, obj, id_field, text_field)
            checked = True
        yield _record(index, obj, id_field, text_field, lineno)
