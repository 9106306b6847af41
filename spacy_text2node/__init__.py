"""spacy-text2node: map free-text medical phrases to taxonomy concepts in spaCy.

Importing the package registers every factory, architecture, loader, reader and
scorer with spaCy's registries (the same names are also declared as entry points,
so `spacy.load` and `spacy train` find them without an import).
"""

from . import (
    bulk,  # noqa: F401  (text2node_noun_chunks, taxonomy patterns)
    linker_api,  # noqa: F401  (text2node_linker, mapper architectures, scorer)
    nodes,  # noqa: F401  (node2vec, node-vector loaders)
    readers,  # noqa: F401  (@readers)
    scoring,  # noqa: F401
    vectors,  # noqa: F401  (text2node_vectors, vector loaders)
    visualize,  # noqa: F401
)
from .about import __version__
from .ml import textcat as _textcat  # noqa: F401  (textcat architectures)
from .taxonomy import Synonym, Taxonomy, TaxonomyBuilder, TaxonomyError

__all__ = ["__version__", "Synonym", "Taxonomy", "TaxonomyBuilder", "TaxonomyError"]
