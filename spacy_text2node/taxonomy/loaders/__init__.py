"""Loaders for real taxonomies: ICD-10-CM, OBO, SNOMED CT RF2, CTD MEDIC, CSV, JSONL.

One module per format. Each loader is a plain function, a `Taxonomy.from_*` classmethod
and a versioned `registry.misc` entry (registered here), so configs can name it under
`[initialize]`; `load_taxonomy` picks one by its name in `FORMATS`.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

from spacy.util import registry

from ..core import Taxonomy
from .common import MULTI_SEP, PathLike
from .ctd_medic import CTD_COLUMNS, load_ctd_medic
from .delimited import load_csv
from .icd10cm import load_icd10cm
from .jsonl import JSONL_KEYS, load_jsonl
from .obo import load_obo
from .snomed import SNOMED_FSN, SNOMED_IS_A, SNOMED_PREFERRED, SNOMED_SYNONYM, load_snomed_rf2

__all__ = [
    "CTD_COLUMNS",
    "FORMATS",
    "JSONL_KEYS",
    "MULTI_SEP",
    "PathLike",
    "SNOMED_FSN",
    "SNOMED_IS_A",
    "SNOMED_PREFERRED",
    "SNOMED_SYNONYM",
    "load_csv",
    "load_ctd_medic",
    "load_icd10cm",
    "load_jsonl",
    "load_obo",
    "load_snomed_rf2",
    "load_taxonomy",
    "load_taxonomy_dir",
    "make_csv_loader",
    "make_ctd_medic_loader",
    "make_icd10cm_loader",
    "make_jsonl_loader",
    "make_obo_loader",
    "make_snomed_rf2_loader",
    "make_taxonomy_dir_loader",
]


def load_taxonomy_dir(path: PathLike) -> Taxonomy:
    """Load a taxonomy saved with `Taxonomy.to_disk` / `text2node taxonomy build`."""
    return Taxonomy.from_disk(path)


FORMATS: Dict[str, Callable[..., Taxonomy]] = {
    "icd10cm": lambda source, **kw: load_icd10cm(**kw),
    "obo": load_obo,
    "snomed-rf2": load_snomed_rf2,
    "ctd-medic": load_ctd_medic,
    "csv": load_csv,
    "jsonl": load_jsonl,
    "dir": lambda source, **kw: load_taxonomy_dir(source),
}


def load_taxonomy(source: Optional[PathLike], format: str, **kwargs) -> Taxonomy:
    """Load a taxonomy by format name (see `FORMATS`)."""
    if format not in FORMATS:
        raise ValueError(f"Unknown taxonomy format {format!r}. Choose one of: {', '.join(FORMATS)}.")
    if format not in ("icd10cm",) and source is None:
        raise ValueError(f"Format {format!r} needs a SOURCE path.")
    return FORMATS[format](source, **kwargs)


@registry.misc("spacy-text2node.ICD10CM.v1")
def make_icd10cm_loader(inclusion_terms: bool = True, includes_notes: bool = True, variants: bool = True) -> Taxonomy:
    """Registered loader: ICD-10-CM from simple-icd-10-cm (options: `load_icd10cm`)."""
    return load_icd10cm(inclusion_terms=inclusion_terms, includes_notes=includes_notes, variants=variants)


@registry.misc("spacy-text2node.OBO.v1")
def make_obo_loader(path: str, on_error: str = "raise") -> Taxonomy:
    """Registered loader: an OBO file."""
    return load_obo(path, on_error=on_error)


@registry.misc("spacy-text2node.SnomedRF2.v1")
def make_snomed_rf2_loader(path: str, on_error: str = "raise") -> Taxonomy:
    """Registered loader: a SNOMED CT RF2 snapshot folder."""
    return load_snomed_rf2(path, on_error=on_error)


@registry.misc("spacy-text2node.CTDMedic.v1")
def make_ctd_medic_loader(path: str, on_error: str = "raise") -> Taxonomy:
    """Registered loader: CTD MEDIC."""
    return load_ctd_medic(path, on_error=on_error)


@registry.misc("spacy-text2node.CSV.v1")
def make_csv_loader(path: str, delimiter: Optional[str] = None, on_error: str = "raise") -> Taxonomy:
    """Registered loader: a CSV/TSV taxonomy."""
    return load_csv(path, delimiter=delimiter, on_error=on_error)


@registry.misc("spacy-text2node.JSONL.v1")
def make_jsonl_loader(path: str, on_error: str = "raise") -> Taxonomy:
    """Registered loader: a JSONL taxonomy."""
    return load_jsonl(path, on_error=on_error)


@registry.misc("spacy-text2node.TaxonomyDir.v1")
def make_taxonomy_dir_loader(path: str) -> Taxonomy:
    """Registered loader: a directory written by `Taxonomy.to_disk`."""
    return load_taxonomy_dir(path)
