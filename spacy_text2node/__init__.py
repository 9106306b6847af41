"""spacy-text2node: map free-text medical phrases to taxonomy concepts in spaCy.

Importing the package registers every factory, architecture, loader, reader and
scorer with spaCy's registries (the same names are also declared as entry points,
so `spacy.load` and `spacy train` find them without an import).
"""

from ._runtime import apply_torch_policy as _apply_torch_policy

_apply_torch_policy()  # before spaCy is imported: `text2node link` leaves torch out when nothing needs it

from . import (  # noqa: E402
    bulk,  # noqa: F401  (text2node_noun_chunks, taxonomy patterns)
    linker_api,  # noqa: F401  (text2node_linker, mapper architectures, scorer)
    nodes,  # noqa: F401  (node2vec, node-vector loaders)
    readers,  # noqa: F401  (@readers)
    scoring,  # noqa: F401
    vectors,  # noqa: F401  (text2node_vectors, vector loaders)
    visualize,  # noqa: F401
)
from .about import __version__  # noqa: E402
from .ml import textcat as _textcat  # noqa: F401, E402  (textcat architectures)
from .taxonomy import Synonym, Taxonomy, TaxonomyBuilder, TaxonomyError  # noqa: E402

__all__ = ["__version__", "Synonym", "Taxonomy", "TaxonomyBuilder", "TaxonomyError"]
