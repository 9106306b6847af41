"""Taxonomies: the concept graph and its loaders."""

from .core import Concept, Problem, Synonym, Taxonomy, TaxonomyBuilder, TaxonomyError
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
