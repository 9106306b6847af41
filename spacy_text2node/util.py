"""Small helpers shared by the loaders and readers."""
import gzip
from pathlib import Path
from typing import BinaryIO, Union


def open_binary(path: Union[str, Path]) -> BinaryIO:
    """Open a file for binary reading, through gzip when it starts with gzip's magic bytes.

    path (str / Path): the file.
    RETURNS (BinaryIO): a binary file object (the caller closes it).
    """
    path = Path(path)
    with path.open("rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else path.open("rb")
