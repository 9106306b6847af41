"""Command-line interface: `text2node --help`.

The commands are thin wrappers over the library; each module below adds its own.
"""

from . import assemble, data, evaluate, link, nodes, serve, taxonomy, vectors  # noqa: F401
from ._app import app


def main() -> None:
    """Entry point of the `text2node` console script."""
    app()


__all__ = ["app", "main"]
