"""The JSONL writer (each write flushed and fsynced) and the tolerant reading of a JSONL file it wrote,
whose last line a killed run may have left truncated."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

from ..readers.base import PathLike

logger = logging.getLogger("spacy_text2node")

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
