"""The bulk readers and writers in one namespace, as before they were split into
`spacy_text2node.bulk.readers` (one module per input format) and
`spacy_text2node.bulk.writers` (one module per output format): every public name of both."""

from . import readers, writers
from .readers import *  # noqa: F403
from .writers import *  # noqa: F403

__all__ = [*readers.__all__, *writers.__all__]
