"""The CTD MEDIC disease vocabulary (MeSH and OMIM), `CTD_diseases.tsv`."""

from __future__ import annotations

from ..builder import TaxonomyBuilder
from ..concepts import TaxonomyError
from ..core import Taxonomy
from .common import PathLike, check_file, numbered_lines, split_multi

CTD_COLUMNS = [
    "DiseaseName",
    "DiseaseID",
    "AltDiseaseIDs",
    "Definition",
    "ParentIDs",
    "TreeNumbers",
    "ParentTreeNumbers",
    "Synonyms",
    "SlimMappings",
]


def load_ctd_medic(path: PathLike, *, on_error: str = "raise", name: str = "ctd_medic") -> Taxonomy:
    """Load the CTD MEDIC disease vocabulary (`CTD_diseases.tsv`, gzipped or not).

    Names, synonyms, definitions and ParentIDs (several parents: MeSH is a DAG).
    AltDiseaseIDs (OMIM, DO ids) are kept as cross-references, so
    `taxonomy.resolve("OMIM:264300")` gives the MeSH concept.

    path (str / Path): the file.
    on_error (str): "raise" or "skip".
    name (str): the taxonomy's name.
    RETURNS (Taxonomy): 11,865 concepts for the 2017 release, root `MESH:C`.
    """
    p = check_file(path)
    b = TaxonomyBuilder(str(p), on_error=on_error, name=name)
    saw_header = False
    for n, line in numbered_lines(p):
        if line.startswith("#"):
            if line.lstrip("# ").startswith("DiseaseName"):
                saw_header = True
            continue
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != len(CTD_COLUMNS):
            if not saw_header and n < 50:
                raise TaxonomyError(
                    f"{p}, line {n}: does not look like CTD_diseases.tsv "
                    f"(expected {len(CTD_COLUMNS)} tab-separated columns, found {len(parts)})."
                )
            b.problem(n, f"expected {len(CTD_COLUMNS)} tab-separated columns, found {len(parts)}")
            continue
        row = dict(zip(CTD_COLUMNS, parts))
        b.add(
            row["DiseaseID"],
            row["DiseaseName"],
            synonyms=split_multi(row["Synonyms"]),
            definition=row["Definition"] or None,
            parents=split_multi(row["ParentIDs"]),
            xrefs=split_multi(row["AltDiseaseIDs"]),
            line=n,
        )
    tax = b.build()
    # MEDIC ids are "MESH:D012345"; NCBI Disease and others cite bare "D012345"
    extra = {}
    for cid in tax.ids:
        if cid.startswith("MESH:"):
            extra[cid[5:]] = cid
    for x, c in list(tax._xrefs.items()):
        if x.startswith("DO:"):
            extra[x[3:]] = c
    for k, v in extra.items():
        if k not in tax._index:
            tax._xrefs.setdefault(k, v)
    return tax
