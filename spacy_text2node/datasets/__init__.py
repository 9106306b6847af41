"""Linking datasets: the ICD-9-CM -> ICD-10-CM GEM benchmark and NCBI Disease vs MEDIC."""

from .gem import (
    GemBenchmark,
    GemQuery,
    code_map,
    default_child_pairs,
    load_gem,
    make_gem_splits,
    taxonomy_pairs,
    write_gem_splits,
)
from .ncbi import ncbi_files, write_ncbi
from .pubtator import Mention, PubTatorDoc, mention_pairs, read_pubtator, resolve_ids

__all__ = [
    "GemBenchmark",
    "GemQuery",
    "code_map",
    "default_child_pairs",
    "load_gem",
    "make_gem_splits",
    "taxonomy_pairs",
    "write_gem_splits",
    "ncbi_files",
    "write_ncbi",
    "Mention",
    "PubTatorDoc",
    "mention_pairs",
    "read_pubtator",
    "resolve_ids",
]
