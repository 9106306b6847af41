"""The checks of a bulk run done before anything is loaded, opened or replaced."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

from .readers import PathLike, normalize_id_field, read_records
from .writers import OUTPUT_FORMATS, detect_output_format


def _same_path(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        try:
            return os.path.samefile(a, b)
        except OSError:
            pass
    return a.resolve() == b.resolve()


def check_output_paths(input_path: PathLike, output: PathLike, errors_path: PathLike, output_format: str) -> None:
    """Refuse outputs that would destroy the input or cannot be written, before anything is opened:
    OUTPUT or the errors file being the input (also through links or `..`), the input inside a Parquet
    output folder, the errors file being OUTPUT, a folder where a JSONL file goes, a file where a
    Parquet folder goes.

    input_path (PathLike): the input.
    output (PathLike): the output file or folder.
    errors_path (PathLike): the errors file.
    output_format (str): "jsonl" or "parquet".
    """
    inp, out, err = Path(input_path), Path(output), Path(errors_path)
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(
            f"Unknown output format {output_format!r} (--output-format): use one of {', '.join(OUTPUT_FORMATS)}."
        )
    if inp.exists():
        if _same_path(out, inp):
            raise ValueError(f"The output {out} is the same file as the input {inp}: choose another OUTPUT.")
        if _same_path(err, inp):
            raise ValueError(
                f"The errors file {err} is the same file as the input {inp}: choose another --errors path."
            )
        if output_format == "parquet" and out.resolve() in inp.resolve().parents:
            raise ValueError(f"The input {inp} is inside the output folder {out}: choose another OUTPUT.")
    if _same_path(err, out):
        raise ValueError(f"The errors file {err} is the output {out}: choose another --errors path.")
    if output_format == "jsonl" and out.is_dir():
        raise ValueError(
            f"The output {out} is a folder; JSONL output is a file (a .parquet OUTPUT is a folder of part files). "
            f"Choose another OUTPUT."
        )
    if output_format == "parquet" and out.exists() and not out.is_dir():
        raise ValueError(
            f"The output {out} is a file; Parquet output is a folder of part files. Remove it or choose another OUTPUT."
        )
    if err.is_dir():
        raise ValueError(f"The errors file {err} is a folder: choose another --errors path.")


def check_bulk_run(
    input_path: PathLike,
    output: PathLike,
    *,
    input_format: Optional[str] = None,
    output_format: Optional[str] = None,
    id_field: Optional[str] = "id",
    text_field: str = "text",
    errors_path: Optional[PathLike] = None,
    resume: bool = False,
    overwrite: bool = False,
) -> Tuple[str, Path, bool]:
    """Check a bulk run before anything is loaded, opened or replaced: the output paths
    (`check_output_paths`), the input with its id and text fields (`read_records`), and that an
    existing output comes with --resume or --overwrite. Reads the input's header or first record only.

    input_path (PathLike): the input.
    output (PathLike): the output file or folder.
    input_format, output_format, id_field, text_field, errors_path, resume, overwrite: as in `run_bulk`.
    RETURNS (Tuple[str, Path, bool]): the output format, the errors file, and whether an output exists.
    """
    output = Path(output)
    fmt = output_format or detect_output_format(output)
    errors = Path(errors_path) if errors_path else output.with_name(output.name + ".errors.jsonl")
    check_output_paths(input_path, output, errors, fmt)
    records = read_records(
        input_path, input_format=input_format, id_field=normalize_id_field(id_field), text_field=text_field
    )
    close = getattr(records, "close", None)
    if close is not None:
        close()
    out_exists = output.exists() and (fmt == "jsonl" or any(output.glob("part-*.parquet")))
    if (out_exists or errors.exists()) and not (resume or overwrite):
        raise ValueError(
            f"Output {output if out_exists else errors} already exists. Pass --resume to continue "
            f"that run, or --overwrite to start again."
        )
    return fmt, errors, out_exists or errors.exists()
