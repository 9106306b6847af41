"""Streaming readers and writers for bulk linking.

Readers yield one `InputRecord` per input record and never hold the whole input:
JSONL line by line, CSV/TSV row by row (`csv_rows`: line-aware, so a stray quote
never merges rows), Parquet batch by batch
(`ParquetFile.iter_batches`), a folder of `.txt` files file by file in sorted order.
Writers append: JSONL with flush + fsync per batch, Parquet as part files in an
output folder (each part is written to a temporary name and renamed, so a killed
run never leaves half a part).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Union

from ..util import open_binary
from .csv_rows import csv_rows

logger = logging.getLogger("spacy_text2node")

INPUT_FORMATS = ("jsonl", "csv", "tsv", "parquet", "txt")
OUTPUT_FORMATS = ("jsonl", "parquet")
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


def detect_output_format(path: PathLike) -> str:
    """`parquet` for a path ending in .parquet (written as a folder of part files),
    `jsonl` for .jsonl/.ndjson/.json."""
    name = Path(path).name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise ValueError(
        f"Cannot tell the format of output {path} from its name: end it in .jsonl or .parquet, "
        f"or pass the output format explicitly (one of {', '.join(OUTPUT_FORMATS)})."
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


def _csv_lines(path: Path) -> Iterator[str]:
    with open_binary(path) as fb:
        yield from io.TextIOWrapper(fb, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _csv_delimiter(path: Path, delimiter: Optional[str]) -> str:
    if delimiter is not None:
        return delimiter
    return "\t" if _strip_gz(path).endswith(".tsv") else ","


def _csv_header(path: Path, delimiter: str, id_field: Optional[str], text_field: str) -> Optional[List[str]]:
    """The header of a CSV file, checked for the id and text columns; None for an empty file."""
    rows = csv_rows(_csv_lines(path), delimiter)
    try:
        first, _, header, reason = next(rows)
    except StopIteration:
        return None
    finally:
        rows.close()
    if reason is not None or header is None:
        raise ValueError(f"{path}, line {first}: cannot read the header row ({reason}).")
    if text_field not in header:
        raise ValueError(
            f"{path}, line {first}: no text column {text_field!r} in the header {header}. "
            f"Pass the text column's name (--text-field)."
        )
    if id_field is not None and id_field not in header:
        raise ValueError(f"{path}, line {first}: no id column {id_field!r} in the header {header}. " + _MISSING_ID_HINT)
    return header


def read_csv(
    path: PathLike, *, id_field: Optional[str] = "id", text_field: str = "text", delimiter: Optional[str] = None
) -> Iterator[InputRecord]:
    """Stream a CSV or TSV file with a header row, row by row (a UTF-8 BOM is dropped).

    Rows are delimited line-aware (see `csv_rows`): a quoted field may span lines, but a row that cannot
    be read (an unterminated quote, the wrong number of fields) is yielded with an error and its first
    line, and reading goes on at the next line, so a stray quote never merges rows.

    path (PathLike): the file (.gz is decompressed on the fly).
    id_field (Optional[str]): the id column (it must be in the header); None or "none": the 0-based record index.
    text_field (str): the text column; it must be in the header.
    delimiter (Optional[str]): the delimiter (default: tab for .tsv, else comma).
    YIELDS (InputRecord): the records; `line` is the line where the row ends.
    """
    path = Path(path)
    delimiter = _csv_delimiter(path, delimiter)
    id_field = normalize_id_field(id_field)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    header = _csv_header(path, delimiter, id_field, text_field)
    if header is None:
        return
    ti = header.index(text_field)
    ii = header.index(id_field) if id_field is not None else None
    rows = csv_rows(_csv_lines(path), delimiter)
    next(rows)  # the header
    for index, (first, last, row, reason) in enumerate(rows):
        if reason is not None:
            rid = check_id(row[ii])[0] if row is not None and ii is not None and ii < len(row) else None
            yield InputRecord(index, rid, None, first, reason)
            continue
        assert row is not None
        raw = {text_field: row[ti]}
        if ii is not None:
            raw[id_field] = row[ii]
        yield _record(index, raw, id_field, text_field, last)


def _parquet_files(path: Path) -> List[Path]:
    if path.is_dir():
        files = sorted(p for p in path.glob("*.parquet") if not p.name.startswith("."))
        if not files:
            raise ValueError(f"{path}: no .parquet files in this folder.")
        return files
    return [path]


def _check_parquet_columns(file: Path, names: List[str], id_field: Optional[str], text_field: str) -> None:
    if text_field not in names:
        raise ValueError(
            f"{file}: no text column {text_field!r} (columns: {names}). Pass the text column's name (--text-field)."
        )
    if id_field is not None and id_field not in names:
        raise ValueError(f"{file}: no id column {id_field!r} (columns: {names}). " + _MISSING_ID_HINT)


def check_parquet_columns(path: PathLike, *, id_field: Optional[str] = "id", text_field: str = "text") -> None:
    """Check that every Parquet file of an input has the id and text columns (reads only the schemas).

    path (PathLike): a .parquet file or a folder of them.
    id_field (Optional[str]): the id column (None: record-index ids, not checked).
    text_field (str): the text column.
    """
    import pyarrow.parquet as pq

    for file in _parquet_files(Path(path)):
        try:
            names = pq.read_schema(file).names
        except Exception as e:  # pyarrow raises ArrowInvalid (a ValueError) or OSError for a damaged file
            raise ValueError(f"{file}: cannot read this Parquet file ({e}).") from None
        _check_parquet_columns(file, names, normalize_id_field(id_field), text_field)


def read_parquet(
    path: PathLike, *, id_field: Optional[str] = "id", text_field: str = "text", batch_size: int = 1024
) -> Iterator[InputRecord]:
    """Stream a Parquet file, or a folder of Parquet part files in name order,
    in batches of `batch_size` rows, reading only the id and text columns.

    path (PathLike): a .parquet file or a folder of them.
    id_field (Optional[str]): the id column (it must exist; null ids go to the errors file);
        None or "none": the 0-based record index.
    text_field (str): the text column; it must exist.
    batch_size (int): rows per read batch.
    YIELDS (InputRecord): the records.
    """
    import pyarrow.parquet as pq

    id_field = normalize_id_field(id_field)
    index = 0
    for file in _parquet_files(Path(path)):
        pf = pq.ParquetFile(file)
        names = pf.schema_arrow.names
        _check_parquet_columns(file, names, id_field, text_field)
        cols = [text_field] + ([id_field] if id_field is not None else [])
        for batch in pf.iter_batches(batch_size=batch_size, columns=cols):
            texts = batch.column(text_field).to_pylist()
            ids = batch.column(id_field).to_pylist() if id_field is not None else None
            for j, text in enumerate(texts):
                raw = {text_field: text}
                if ids is not None:
                    raw[id_field] = ids[j]  # type: ignore[index]
                yield _record(index, raw, id_field, text_field, None)
                index += 1


def read_txt_dir(path: PathLike) -> Iterator[InputRecord]:
    """Stream a folder of .txt files (searched recursively) in sorted order; the id
    of each record is its path relative to the folder, the text its raw bytes
    (decoded as UTF-8 at validation).

    path (PathLike): the folder.
    YIELDS (InputRecord): the records.
    """
    root = Path(path)
    files = sorted(root.rglob("*.txt"), key=lambda p: p.relative_to(root).as_posix())
    for index, file in enumerate(files):
        rid = file.relative_to(root).as_posix()
        try:
            data = file.read_bytes()
        except OSError as e:
            yield InputRecord(index, rid, None, None, f"cannot read file: {e}")
            continue
        yield InputRecord(index, rid, data, None)


def read_records(
    path: PathLike,
    *,
    input_format: Optional[str] = None,
    id_field: Optional[str] = "id",
    text_field: str = "text",
) -> Iterator[InputRecord]:
    """Stream the records of an input in any supported format.

    The input, its format and its id and text fields/columns are checked when this is called
    (before any record is read): a missing input, an unknown format, or an id or text field that the
    header (CSV, Parquet) or the first record (JSONL) lacks is a ValueError.

    path (PathLike): a JSONL, CSV, TSV or Parquet file, or a folder of .txt or .parquet files.
    input_format (Optional[str]): one of INPUT_FORMATS; None guesses from the path.
    id_field (Optional[str]): the id field or column; None or "none": the 0-based record index
        (a folder of .txt files always uses the file names).
    text_field (str): the text field or column.
    RETURNS (Iterator[InputRecord]): the records in input order.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"Input {path} does not exist.")
    fmt = input_format or detect_input_format(path)
    id_field = normalize_id_field(id_field)
    try:
        if fmt == "jsonl":
            _not_a_folder(path, fmt)
            check_jsonl_fields(path, id_field=id_field, text_field=text_field)
            return _reading(path, read_jsonl(path, id_field=id_field, text_field=text_field))
        if fmt in ("csv", "tsv"):
            _not_a_folder(path, fmt)
            delimiter = "\t" if fmt == "tsv" else _csv_delimiter(path, None)
            _csv_header(path, delimiter, id_field, text_field)
            return _reading(path, read_csv(path, id_field=id_field, text_field=text_field, delimiter=delimiter))
    except _READ_ERRORS as e:
        raise ValueError(f"{path}: cannot read the input ({type(e).__name__}: {e}).") from None
    if fmt == "parquet":
        check_parquet_columns(path, id_field=id_field, text_field=text_field)
        return _reading(path, read_parquet(path, id_field=id_field, text_field=text_field))
    if fmt == "txt":
        if not path.is_dir():
            raise ValueError(f"Input format 'txt' needs a folder of .txt files; {path} is a file.")
        return read_txt_dir(path)
    raise ValueError(f"Unknown input format {fmt!r} (--input-format): use one of {', '.join(INPUT_FORMATS)}.")


# a damaged or truncated compressed file, an unreadable file
_READ_ERRORS = (EOFError, OSError, zlib.error)


def _reading(path: Path, records: Iterator[InputRecord]) -> Iterator[InputRecord]:
    """Re-raise a read failure in the middle of an input as a ValueError that names the file."""
    last: Optional[InputRecord] = None
    try:
        for last in records:
            yield last
    except _READ_ERRORS as e:
        where = f" after record {last.index} (line {last.line})" if last is not None and last.line else ""
        raise ValueError(
            f"{path}: cannot read the input{where} ({type(e).__name__}: {e}). Fix or replace the file, "
            f"then continue the run with --resume."
        ) from None


def _not_a_folder(path: Path, fmt: str) -> None:
    if path.is_dir():
        raise ValueError(f"Input {path} is a folder; {fmt} input is a file (--input-format {fmt}).")


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


# ---------------------------------------------------------------------------
# Writers and resume


def _read_jsonl_tolerant(path: Path, repair: bool) -> Iterator[Dict[str, Any]]:
    """Yield the objects of a JSONL file written by the runner. A truncated or
    unreadable last line (a kill while writing) is dropped, and with `repair` the
    file is cut back to its last complete line; a bad line elsewhere is an error."""
    if not path.exists():
        return
    good_end = 0
    bad: Optional[Tuple[int, str]] = None
    with open(path, "rb") as f:
        lineno = 0
        for raw in f:
            lineno += 1
            if bad is not None:
                raise ValueError(
                    f"{path}, line {bad[0]}: cannot read this line ({bad[1]}) and it is not the last one. "
                    f"The file is damaged: fix or remove that line, then resume."
                )
            if not raw.endswith(b"\n"):
                bad = (lineno, "no end of line: truncated")
                continue
            try:
                obj = json.loads(raw)
            except ValueError as e:
                bad = (lineno, f"bad JSON: {e}")
                continue
            good_end += len(raw)
            yield obj
    if bad is not None:
        logger.warning("%s, line %d: dropping a truncated last line (%s)", path, bad[0], bad[1])
        if repair:
            os.truncate(path, good_end)


def done_output_ids(path: PathLike, output_format: str, repair: bool = True) -> Tuple[Set[str], int]:
    """The ids already in an output (for --resume), repairing a truncated JSONL tail
    and removing unfinished Parquet parts.

    path (PathLike): the output file (JSONL) or folder (Parquet).
    output_format (str): "jsonl" or "parquet".
    repair (bool): cut a truncated last line / remove temporary part files.
    RETURNS (Tuple[Set[str], int]): the ids and the number of records.
    """
    path = Path(path)
    ids: Set[str] = set()
    n = 0
    if output_format == "jsonl":
        for obj in _read_jsonl_tolerant(path, repair):
            ids.add(obj["id"])
            n += 1
    else:
        if not path.exists():
            return ids, 0
        import pyarrow.parquet as pq

        for tmp in path.glob(".*.tmp"):
            if repair:
                tmp.unlink()
        for file in sorted(path.glob("part-*.parquet")):
            col = pq.read_table(file, columns=["id"]).column("id").to_pylist()
            ids.update(col)
            n += len(col)
    return ids, n


def done_error_indices(path: PathLike, repair: bool = True) -> Tuple[Set[int], int]:
    """The input indices already in an errors file (for --resume).

    path (PathLike): the errors JSONL file.
    repair (bool): cut a truncated last line.
    RETURNS (Tuple[Set[int], int]): the indices and the number of entries.
    """
    idx: Set[int] = set()
    n = 0
    for obj in _read_jsonl_tolerant(Path(path), repair):
        idx.add(int(obj["index"]))
        n += 1
    return idx, n


# Characters JSON leaves unescaped that str.splitlines() (and some JSONL readers) take for line breaks.
_LINE_SEPARATORS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _json_line(record: Dict[str, Any]) -> bytes:
    """One JSONL line: UTF-8 JSON on one line for any reader (NEL, U+2028 and U+2029 escaped)."""
    text = json.dumps(record, ensure_ascii=False)
    if "\x85" in text or "\u2028" in text or "\u2029" in text:
        text = text.translate(_LINE_SEPARATORS)
    return text.encode("utf-8") + b"\n"


def _fsync(f) -> None:
    f.flush()
    os.fsync(f.fileno())


class JsonlWriter:
    """Append records to a JSONL file; each `write` is flushed and fsynced.

    path (PathLike): the file.
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "ab")

    def write(self, records: Sequence[Dict[str, Any]]) -> None:
        if not records:
            return
        data = b"".join(_json_line(r) for r in records)
        self._f.write(data)
        _fsync(self._f)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ParquetPartsWriter:
    """Write records as Parquet part files `part-00000.parquet`, ... in a folder
    (readable as one table by pandas, pyarrow and Spark). Records are buffered
    until `rows_per_part`; each part is written under a temporary name and renamed.

    path (PathLike): the output folder.
    rows_per_part (int): records per part file.
    """

    def __init__(self, path: PathLike, rows_per_part: int = 10_000):
        from .records import arrow_schema

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(
                f"Parquet output {self.path} is a file; Parquet output is a folder of part files. Remove it or choose another path."
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.rows_per_part = rows_per_part
        self.schema = arrow_schema()
        self._buf: List[Dict[str, Any]] = []
        self._part = len(list(self.path.glob("part-*.parquet")))

    def _flush_part(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._buf:
            return
        table = pa.Table.from_pylist(self._buf, schema=self.schema)
        name = f"part-{self._part:05d}.parquet"
        tmp = self.path / f".{name}.tmp"
        pq.write_table(table, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.path / name)
        self._part += 1
        self._buf = []

    def write(self, records: Sequence[Dict[str, Any]]) -> None:
        self._buf.extend(records)
        while len(self._buf) >= self.rows_per_part:
            rest = self._buf[self.rows_per_part :]
            self._buf = self._buf[: self.rows_per_part]
            self._flush_part()
            self._buf = rest

    def close(self) -> None:
        self._flush_part()

    def __enter__(self) -> "ParquetPartsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_output(path: PathLike, output_format: Optional[str] = None) -> List[Dict[str, Any]]:
    """Read a whole bulk output back as a list of records (for tests and small outputs).

    path (PathLike): the JSONL file or Parquet folder.
    output_format (Optional[str]): "jsonl" or "parquet"; None guesses from the path.
    RETURNS (List[Dict[str, Any]]): the records in written order.
    """
    path = Path(path)
    fmt = output_format or ("parquet" if path.is_dir() else detect_output_format(path))
    if fmt == "jsonl":
        with open(path, "rb") as f:
            return [json.loads(line) for line in f if line.strip()]
    import pyarrow.parquet as pq

    out: List[Dict[str, Any]] = []
    for file in sorted(path.glob("part-*.parquet")):
        out.extend(pq.read_table(file).to_pylist())
    return out
