"""spacy-text2node: map free-text medical phrases to taxonomy concepts in spaCy.

Importing the package registers every factory, architecture, loader, reader and
scorer with spaCy's registries (the same names are also declared as entry points,
so `spacy.load` and `spacy train` find them without an import).
"""
from .about import __version__
from .taxonomy import Synonym, Taxonomy, TaxonomyBuilder, TaxonomyError
from . import scoring  # noqa: F401
from . import nodes  # noqa: F401  (node2vec, node-vector loaders)
from .ml import textcat as _textcat  # noqa: F401  (textcat architectures)
from . import vectors  # noqa: F401  (text2node_vectors, vector loaders)
from . import readers  # noqa: F401  (@readers)
from . import linker_api  # noqa: F401  (text2node_linker, mapper architectures, scorer)
from . import visualize  # noqa: F401
from . import bulk  # noqa: F401  (text2node_noun_chunks, taxonomy patterns)

__all__ = ["__version__", "Synonym", "Taxonomy", "TaxonomyBuilder", "TaxonomyError"]
