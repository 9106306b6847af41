"""Command-line interface: `text2node --help`.

The commands are thin wrappers over the library; each module below adds its own.
"""
from ._app import app
from . import taxonomy, nodes, vectors, data, link, evaluate, serve  # noqa: F401


def main() -> None:
    """Entry point of the `text2node` console script."""
    app()


__all__ = ["app", "main"]
