"""The Parquet reader: a file or a folder of part files, streamed batch by batch
(`ParquetFile.iter_batches`), reading only the id and text columns."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Optional

from .base import _MISSING_ID_HINT, InputRecord, PathLike, _record, normalize_id_field


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
