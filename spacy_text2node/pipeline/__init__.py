"""spaCy pipeline components: the text2node linker, abbreviations, coordinations and
context flags (their factories register on import)."""

from . import (  # noqa: F401  (text2node_abbreviations, text2node_coordinations, text2node_context)
    abbreviations,
    composite,
    context,
    factories,  # noqa: F401  (text2node_entity_linker, text2node_linker)
)
from .kb import Text2NodeKB
from .linker import Text2NodeLinker

__all__ = ["Text2NodeKB", "Text2NodeLinker"]
