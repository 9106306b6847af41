"""The `text2node` command-line app; each cli module adds its commands to it.

Also the helpers every command uses to turn a user's mistake into one clear line and a
non-zero exit: `user_errors`, `check_out_dir` and `check_choice`.
"""

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import typer
from wasabi import msg

app = typer.Typer(
    name="text2node",
    help="spacy-text2node: taxonomies, node and word vectors, linking and bulk processing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# what the library raises for bad user input (TaxonomyError, VectorsError and DamagedFileError are ValueErrors)
USER_ERRORS = (ValueError, TypeError, OSError)


def describe_error(e: BaseException) -> str:
    """One line for an expected error: the message, or `file: reason.` for an OSError.

    e (BaseException): the error.
    RETURNS (str): the text to show.
    """
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}." if e.filename is not None else f"{e.strerror}."
    return str(e) or type(e).__name__


@contextmanager
def user_errors(what: str) -> Iterator[None]:
    """Turn the errors a user's input causes into one `msg.fail` line and exit code 1.

    ValueError (with TaxonomyError, VectorsError), TypeError and OSError are caught; any other
    exception is a bug and keeps its traceback. `msg.fail(..., exits=...)` inside the block
    exits as usual.

    what (str): what failed, e.g. "Could not build the taxonomy".
    """
    try:
        yield
    except USER_ERRORS as e:
        msg.fail(f"{what}: {describe_error(e)}", exits=1)


def check_out_dir(path: Path, flag: str = "OUT_DIR") -> None:
    """Fail with one line when an output folder path is an existing file.

    path (Path): the output folder (created later if missing).
    flag (str): how the command names it, e.g. "OUT_DIR".
    """
    if path.exists() and not path.is_dir():
        msg.fail(
            f"{flag} {path} is a file, not a folder. Give a folder path (it is created if missing) "
            "or move the file away.",
            exits=1,
        )


def check_choice(value: str, flag: str, choices: Sequence[str]) -> None:
    """Fail with one line (exit 2, a usage error) when an option's value is not one of `choices`.

    value (str): the value given.
    flag (str): the option, e.g. "--on-error".
    choices (Sequence[str]): the allowed values.
    """
    if value not in choices:
        msg.fail(f"Unknown {flag} {value!r}: choose one of {', '.join(choices)}.", exits=2)  # type: ignore[call-overload]
