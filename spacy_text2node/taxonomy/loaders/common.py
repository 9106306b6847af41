"""What every taxonomy loader shares: path checks, strict UTF-8 lines with numbers, multi-value cells."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

from ...util import DamagedFileError, open_binary
from ..concepts import TaxonomyError

PathLike = Union[str, Path]
logger = logging.getLogger("spacy_text2node")


MULTI_SEP = "|"


def check_file(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise TaxonomyError(f"{p}: no such file. Check the path.")
    if p.is_dir():
        raise TaxonomyError(f"{p}: is a folder, expected a file.")
    return p


def numbered_lines(path: Path) -> Iterator[Tuple[int, str]]:
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


def split_multi(value: Optional[str], sep: str = MULTI_SEP) -> List[str]:
    if not value:
        return []
    return [v.strip() for v in value.split(sep) if v.strip()]


def did_you_mean(name: str, candidates: Sequence[str]) -> Optional[str]:
    """The candidate closest to `name` (ignoring case), or None."""
    lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.6)
    return lower[close[0]] if close else None
