"""Small helpers shared by the loaders and readers."""
import gzip
import zlib
from pathlib import Path
from typing import BinaryIO, Union

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


class _CheckedGzipFile(gzip.GzipFile):
    """A GzipFile whose read errors are DamagedFileErrors naming the file."""

    def _damaged(self, e: BaseException) -> DamagedFileError:
        return DamagedFileError(self.name, str(e) or type(e).__name__)

    def read(self, size: int = -1) -> bytes:
        try:
            return super().read(size)
        except GZIP_ERRORS as e:
            raise self._damaged(e) from None

    def read1(self, size: int = -1) -> bytes:
        try:
            return super().read1(size)
        except GZIP_ERRORS as e:
            raise self._damaged(e) from None

    def peek(self, n: int) -> bytes:
        try:
            return super().peek(n)
        except GZIP_ERRORS as e:
            raise self._damaged(e) from None

    def readline(self, size: int = -1) -> bytes:
        try:
            return super().readline(size)
        except GZIP_ERRORS as e:
            raise self._damaged(e) from None

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return super().seek(offset, whence)
        except GZIP_ERRORS as e:
            raise self._damaged(e) from None


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
    return _CheckedGzipFile(str(path), "rb") if magic == b"\x1f\x8b" else path.open("rb")
