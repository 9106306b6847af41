"""Line-aware CSV/TSV rows: a quoted field may span lines, an unterminated quote never swallows the rows after it.

Python's `csv` module reads a stray quote to the end of the file, merging every row after it into one field.
Here each row is first delimited by scanning physical lines for the quote state (the `csv` module's default
dialect: `"` quotes, `""` escapes, no escape character), then parsed by the `csv` module:

* a row on one physical line is read as the `csv` module reads it;
* a row whose quoted field spans lines must be well formed (`strict` parsing: a closing quote is followed by
  the delimiter or the end of the line), must close before the end of the file and within `max_lines` lines,
  and must have the header's number of fields. Otherwise its first line is reported as a bad row and reading
  starts again at the next line, so the rows a stray quote would have swallowed are read as rows.

Known limit: a stray quote whose swallowed text happens to end at a quote followed by the end of a line (an
unquoted field ending in `"`), with the header's number of fields, cannot be told from a real multi-line field.
"""

from __future__ import annotations

import csv
from collections import deque
from typing import Deque, Generator, Iterable, List, Optional, Tuple

MAX_RECORD_LINES = 10_000
_QUOTE = '"'
_EOL = "\r\n"

# (first line, last line, fields or None, reason or None)
CsvRow = Tuple[int, int, Optional[List[str]], Optional[str]]


def ends_in_quotes(line: str, in_quotes: bool, delimiter: str) -> bool:
    """Whether a physical line ends inside a quoted field.

    line (str): the line, with its line ending.
    in_quotes (bool): whether the line starts inside a quoted field.
    delimiter (str): the field delimiter.
    RETURNS (bool): True when the quoted field goes on to the next line.
    """
    i, n = 0, len(line)
    quoted = in_quotes
    while True:
        if quoted:
            j = line.find(_QUOTE, i)
            if j < 0:
                return True
            i = j + 1
            if i < n and line[i] == _QUOTE:  # "" inside quotes
                i += 1
                continue
            quoted = False  # the closing quote; what follows is read as an unquoted field part
            if i < n and line[i] == delimiter:
                i += 1
            elif i >= n or line[i] in _EOL:
                return False
            else:
                j = line.find(delimiter, i)
                if j < 0:
                    return False
                i = j + 1
            continue
        # at the start of a field
        if i >= n or line[i] in _EOL:
            return False
        if line[i] == _QUOTE:
            quoted = True
            i += 1
            continue
        j = line.find(delimiter, i)
        if j < 0:
            return False
        i = j + 1


def _parse(lines: List[str], delimiter: str) -> Tuple[Optional[List[str]], Optional[str]]:
    strict = len(lines) > 1
    try:
        rows = list(csv.reader(lines, delimiter=delimiter, strict=strict))
    except csv.Error as e:
        return None, f"bad CSV row: {e}"
    if len(rows) != 1:
        return None, f"bad CSV row: read as {len(rows)} rows"
    return rows[0], None


def csv_rows(
    lines: Iterable[str], delimiter: str = ",", n_fields: Optional[int] = None, max_lines: int = MAX_RECORD_LINES
) -> Generator[CsvRow, None, None]:
    """Split physical lines into CSV rows; blank lines (outside quoted fields) are skipped.

    lines (Iterable[str]): the physical lines, with their line endings (a text file opened with newline="").
    delimiter (str): the field delimiter.
    n_fields (Optional[int]): the header's number of fields; None reads the first row as the header and
        yields it too (then checks the rows after it against it).
    max_lines (int): the most physical lines one row may span.
    YIELDS (CsvRow): (first line, last line, fields, None) for a row, (line, line, fields or None, reason)
        for a bad row.
    """
    src = enumerate(lines, 1)
    pending: Deque[Tuple[int, str]] = deque()

    def next_line() -> Optional[Tuple[int, str]]:
        if pending:
            return pending.popleft()
        return next(src, None)

    while True:
        item = next_line()
        if item is None:
            return
        first, line = item
        if not line.strip(_EOL):
            continue
        buf = [item]
        reason: Optional[str] = None
        in_quotes = ends_in_quotes(line, False, delimiter)
        while in_quotes:
            if len(buf) >= max_lines:
                reason = (
                    f"bad CSV row: a quoted field opened on this line spans more than {max_lines:,} lines "
                    f"(an unterminated quote?); the next line is read as a new row"
                )
                break
            item = next_line()
            if item is None:
                reason = (
                    "bad CSV row: a quoted field opened on this line is never closed (an unterminated quote?); "
                    "the next line is read as a new row"
                )
                break
            buf.append(item)
            in_quotes = ends_in_quotes(item[1], True, delimiter)
        fields: Optional[List[str]] = None
        if reason is None:
            fields, reason = _parse([line for _, line in buf], delimiter)
        if reason is None and n_fields is not None and len(fields) != n_fields:  # type: ignore[arg-type]
            reason = f"bad CSV row: {len(fields)} fields, the header has {n_fields}"  # type: ignore[arg-type]
            if len(buf) > 1:
                reason += "; the next line is read as a new row"
        if reason is not None and len(buf) > 1:
            pending.extendleft(reversed(buf[1:]))  # read again from the next line
            yield first, first, None, reason
            continue
        if n_fields is None and fields is not None:
            n_fields = len(fields)
        yield first, buf[-1][0], fields, reason
