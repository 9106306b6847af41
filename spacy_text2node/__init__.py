"""spacy-text2node: map free-text medical phrases to taxonomy concepts in spaCy.

Importing the package registers every factory, architecture, loader, reader and
scorer with spaCy's registries (the same names are also declared as entry points,
so `spacy.load` and `spacy train` find them without an import).
"""
from .about import __version__
from .taxonomy import Synonym, Taxonomy, TaxonomyBuilder, TaxonomyError

__all__ = ["__version__", "Synonym", "Taxonomy", "TaxonomyBuilder", "TaxonomyError"]
