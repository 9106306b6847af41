"""The Parquet writer: part files in an output folder, each written under a temporary name and renamed,
so a killed run never leaves half a part."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Sequence

from ..readers.base import PathLike


class ParquetPartsWriter:
    """Write records as Parquet part files `part-00000.parquet`, ... in a folder
    (readable as one table by pandas, pyarrow and Spark). Records are buffered
    until `rows_per_part`; each part is written under a temporary name and renamed.

    path (PathLike): the output folder.
    rows_per_part (int): records per part file.
    """

    def __init__(self, path: PathLike, rows_per_part: int = 10_000):
        from ..records import arrow_schema

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(
                f"Parquet output {self.path} is a file; Parquet output is a folder of part files. "
                f"Remove it or choose another path."
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
