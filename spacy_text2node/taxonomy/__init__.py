"""Taxonomies: the concept graph and its loaders.

`core` holds the Taxonomy, `builder` the checked construction from rows, `graph` the
hierarchy queries, `serialization` the on-disk form and `loaders` one module per format.
"""

from .builder import TaxonomyBuilder
from .concepts import Concept, Problem, Synonym, TaxonomyError
from .core import Taxonomy
from .loaders import (
    FORMATS,
    load_csv,
    load_ctd_medic,
    load_icd10cm,
    load_jsonl,
    load_obo,
    load_snomed_rf2,
    load_taxonomy,
    load_taxonomy_dir,
)

__all__ = [
    "Concept",
    "Problem",
    "Synonym",
    "Taxonomy",
    "TaxonomyBuilder",
    "TaxonomyError",
    "FORMATS",
    "load_csv",
    "load_ctd_medic",
    "load_icd10cm",
    "load_jsonl",
    "load_obo",
    "load_snomed_rf2",
    "load_taxonomy",
    "load_taxonomy_dir",
]
