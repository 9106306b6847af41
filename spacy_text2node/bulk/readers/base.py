"""What every reader yields and shares: `InputRecord`, the input formats, and the checks of a
record's id and text (`check_id`, `check_text`), used alike by the local runner, Spark and the service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

INPUT_FORMATS = ("jsonl", "csv", "tsv", "parquet", "txt")

PathLike = Union[str, Path]


BOM = b"\xef\xbb\xbf"


@dataclass
class InputRecord:
    """One input record, before validation.

    index (int): 0-based position of the record in the input.
    id (Optional[str]): the record's id (the id field, the file name for .txt
        folders, the index as a string for `id_field=None`); None when the record
        could not be read or its id is missing or invalid (see `check_id`).
    text (Any): the raw text value (str, bytes, None or whatever the input held).
    line (Optional[int]): 1-based line in the input file (JSONL, CSV), else None.
    error (Optional[str]): why the record could not be read (bad JSON...), else None.
    """

    index: int
    id: Optional[str]
    text: Any
    line: Optional[int] = None
    error: Optional[str] = None


def _strip_gz(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def detect_input_format(path: PathLike) -> str:
    """Guess the input format from the path: a folder of .txt or .parquet files,
    or a file ending in .jsonl/.ndjson/.json, .csv, .tsv, .parquet (optionally .gz).

    path (PathLike): the input.
    RETURNS (str): one of INPUT_FORMATS.
    """
    path = Path(path)
    if path.is_dir():
        if any(path.glob("*.parquet")):
            return "parquet"
        return "txt"
    name = _strip_gz(path)
    for suffix, fmt in (
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "jsonl"),
        (".csv", "csv"),
        (".tsv", "tsv"),
        (".parquet", "parquet"),
        (".pq", "parquet"),
    ):
        if name.endswith(suffix):
            return fmt
    raise ValueError(
        f"Cannot tell the format of input {path} from its name: use a .jsonl, .csv, .tsv "
        f"or .parquet file (optionally .gz) or a folder of .txt files, or pass the format "
        f"explicitly (one of {', '.join(INPUT_FORMATS)})."
    )


ID_NONE = "none"


_MISSING_ID_HINT = "Pass the id field's name (--id-field NAME), or --id-field none for 0-based record-index ids."


def normalize_id_field(id_field: Optional[str]) -> Optional[str]:
    """The id field to read: None for record-index ids (given as None or "none").

    id_field (Optional[str]): the id field or column, None or "none".
    RETURNS (Optional[str]): the field, or None.
    """
    if id_field is None or id_field.strip().lower() == ID_NONE:
        return None
    return id_field


def check_id(value: Any) -> Tuple[Optional[str], Optional[str]]:
    """Validate a raw id value: non-empty strings are kept, integers (and integral floats, as
    JSON and pandas write them) become strings; anything else is a reason for the errors file.

    value (Any): the raw id.
    RETURNS (Tuple[Optional[str], Optional[str]]): (id, None) when valid, else (None, reason).
    """
    if value is None:
        return None, "id is null"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return None, f"id is not a string or an integer but {type(value).__name__} ({shown})"
    if isinstance(value, int):
        return str(value), None
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value)), None
        return None, f"id is a number that is not an integer ({value!r})"
    if not value.strip():
        return None, "empty id"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        return None, f"id is not valid UTF-8 (character {e.start})"
    return value, None


def _record(
    index: int, raw: Dict[str, Any], id_field: Optional[str], text_field: str, line: Optional[int]
) -> InputRecord:
    """An InputRecord from a mapping; a missing or bad id is the record's error."""
    if id_field is None:
        return InputRecord(index, str(index), raw.get(text_field), line)
    if id_field not in raw:
        return InputRecord(index, None, None, line, f"missing id field {id_field!r}")
    rid, reason = check_id(raw[id_field])
    if reason is not None:
        return InputRecord(index, None, None, line, reason)
    return InputRecord(index, rid, raw.get(text_field), line)


def check_text(value: Any, max_chars: int) -> Tuple[Optional[str], Optional[str]]:
    """Validate a raw text value.

    value (Any): the raw value from a reader.
    max_chars (int): the largest number of characters accepted.
    RETURNS (Tuple[Optional[str], Optional[str]]): (text, None) when valid, else (None, reason).
    """
    if value is None:
        return None, "missing text"
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            return None, f"text is not valid UTF-8 (byte {e.start})"
    if not isinstance(value, str):
        return None, f"text is not a string but {type(value).__name__}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        return None, f"text is not valid UTF-8 (character {e.start})"
    if not value.strip():
        return None, "empty text"
    if len(value) > max_chars:
        return None, f"text has {len(value):,} characters, over the limit of {max_chars:,} (--max-chars)"
    return value, None
