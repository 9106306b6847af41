"""Small helpers shared by the loaders and readers."""

import functools
import gzip
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Union, cast

# what gzip raises on a file that ends early (EOFError) or holds damaged data (zlib.error, BadGzipFile)
GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


class DamagedFileError(ValueError):
    """A compressed file that ends early or holds damaged data, naming the file and what to do.

    path (str): the file.
    detail (str): what gzip said.
    """

    def __init__(self, path: Union[str, Path], detail: str):
        self.path = str(path)
        self.detail = detail
        super().__init__(self.describe())

    def describe(self, where: str = "") -> str:
        """The message; `where` (e.g. " after line 12") goes after the gzip detail."""
        return (
            f"{self.path}: the file is truncated or damaged (gzip: {self.detail}){where}. "
            f"Copy or download it again (`gzip -t {self.path}` checks a copy)."
        )


def _checked(method: Callable) -> Callable:
    """Wrap a GzipFile read method so that gzip's errors become DamagedFileErrors naming the file."""

    @functools.wraps(method)
    def read(self: gzip.GzipFile, *args: Any) -> Any:
        try:
            return method(self, *args)
        except GZIP_ERRORS as e:
            raise DamagedFileError(self.name, str(e) or type(e).__name__) from None

    return read


class _CheckedGzipFile(gzip.GzipFile):
    """A GzipFile whose read errors are DamagedFileErrors naming the file."""

    read = _checked(gzip.GzipFile.read)
    read1 = _checked(gzip.GzipFile.read1)
    peek = _checked(gzip.GzipFile.peek)
    readline = _checked(gzip.GzipFile.readline)
    seek = _checked(gzip.GzipFile.seek)


def open_binary(path: Union[str, Path]) -> BinaryIO:
    """Open a file for binary reading, through gzip when it starts with gzip's magic bytes.

    A gzip file that ends early or holds damaged data raises a `DamagedFileError` (a
    ValueError) naming the file when it is read, not EOFError or zlib.error.

    path (str / Path): the file.
    RETURNS (BinaryIO): a binary file object (the caller closes it).
    """
    path = Path(path)
    with path.open("rb") as f:
        magic = f.read(2)
    return cast(BinaryIO, _CheckedGzipFile(str(path), "rb") if magic == b"\x1f\x8b" else path.open("rb"))
