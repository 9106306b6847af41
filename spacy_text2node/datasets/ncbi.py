"""NCBI Disease corpus against CTD MEDIC: mention pairs and spaCy docs per split."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Union

import srsly

from ..taxonomy import Taxonomy
from .pubtator import mention_pairs

logger = logging.getLogger("spacy_text2node")

NCBI_FILES = {"train": "NCBItrainset_corpus.txt", "dev": "NCBIdevelopset_corpus.txt", "test": "NCBItestset_corpus.txt"}


def ncbi_files(ncbi_dir: Union[str, Path]) -> Dict[str, Path]:
    """The NCBI Disease split files present in a folder.

    ncbi_dir (str / Path): the folder with `NCBItrainset_corpus.txt` etc.
    RETURNS (Dict[str, Path]): split name -> file, for the splits present.
    """
    d = Path(ncbi_dir)
    found = {k: d / v for k, v in NCBI_FILES.items() if (d / v).exists()}
    if not found:
        raise ValueError(f"{d}: no NCBI Disease files here (expected {', '.join(NCBI_FILES.values())}).")
    return found


def write_ncbi(
    out_dir: Union[str, Path],
    ncbi_dir: Union[str, Path],
    medic: Union[str, Path, Taxonomy],
    *,
    docs: bool = True,
    abbreviations: bool = True,
) -> Dict[str, object]:
    """Write NCBI Disease mention pairs (and spaCy docs) for every split present.

    Writes `OUT/{split}.jsonl` (mention pairs {"text", "concept", "gold", "source",
    "pmid", "type"[, "mention"]}); for a linker, `OUT/fit.jsonl` (80% of the distinct train mentions),
    `OUT/calibration.jsonl` (the other 20%, seeded: they calibrate the reranker) and
    `OUT/linker_train.jsonl` (MEDIC names and synonyms, then fit.jsonl); with `docs`
    also `OUT/{split}.spacy` (a DocBin of the abstracts
    with DISEASE entities whose `kb_id_` is the resolved MEDIC id and whose
    `_.text2node_gold` holds every id; the DocBin keeps user data), `OUT/taxonomy/`
    (MEDIC, for `spacy-text2node.TaxonomyDir.v1`) and `OUT/stats.json`.

    out_dir (str / Path): folder to write to.
    ncbi_dir (str / Path): folder of the NCBI Disease PubTator files.
    medic (str / Path / Taxonomy): `CTD_diseases.tsv(.gz)` or a loaded taxonomy.
    docs (bool): also write the document-level DocBins.
    abbreviations (bool): in the evaluated splits (not train), write out in a pair's text
        the short forms its abstract defines ("cerebral ALD" -> "cerebral
        adrenoleukodystrophy"; the surface stays as "mention"), as the document pipeline's
        linker and BioSyn's and SapBERT's NCBI Disease evaluations (with Ab3P) do.
    RETURNS (Dict[str, object]): per-split counts (also in stats.json).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tax = medic if isinstance(medic, Taxonomy) else Taxonomy.from_ctd_medic(medic)
    tax.to_disk(out / "taxonomy")
    stats: Dict[str, object] = {"concepts": len(tax)}
    for split, path in ncbi_files(ncbi_dir).items():
        # the training pairs keep their surfaces: the mapper learns the common short forms
        # from them, which documents that do not define them still use
        pairs, st = mention_pairs(path, tax, abbreviations=abbreviations and split != "train")
        srsly.write_jsonl(out / f"{split}.jsonl", pairs)
        if docs:
            import spacy
            from spacy.tokens import DocBin

            from ..readers.linking import pubtator_docs

            nlp = spacy.blank("en")
            db = DocBin(store_user_data=True)
            dstats: Dict[str, int] = {}
            for doc in pubtator_docs(path, nlp, taxonomy=tax, stats=dstats):
                db.add(doc)
            db.to_disk(out / f"{split}.spacy")
            st["doc_entities"] = dstats.get("entities", 0)
            st["doc_misaligned"] = dstats.get("misaligned", 0)
            st["doc_overlapping"] = dstats.get("overlapping", 0)
        stats[split] = st
    if (out / "train.jsonl").exists():
        stats["linker"] = write_linker_splits(out, tax)
    srsly.write_json(out / "stats.json", stats)
    return stats


def write_linker_splits(out_dir: Union[str, Path], taxonomy: Taxonomy, seed: int = 0) -> Dict[str, int]:
    """Split `OUT/train.jsonl` for a linker: hold 20% of the distinct train mentions
    (seeded) out as `calibration.jsonl`, the rest is `fit.jsonl`; `linker_train.jsonl` is
    the taxonomy's names and synonyms followed by fit.jsonl.

    out_dir (str / Path): the folder `write_ncbi` writes.
    taxonomy (Taxonomy): CTD MEDIC.
    seed (int): seed of the held-out sample.
    RETURNS (Dict[str, int]): pairs per file.
    """
    from ..readers.linking import read_pairs
    from .gem import split_dev, taxonomy_pairs

    out = Path(out_dir)
    train = read_pairs(out / "train.jsonl")
    n = len({(p["text"], p["concept"]) for p in train}) // 5
    fit, calib = split_dev(train, n, seed=seed)
    names = taxonomy_pairs(taxonomy, source="medic")
    srsly.write_jsonl(out / "fit.jsonl", fit)
    srsly.write_jsonl(out / "calibration.jsonl", calib)
    srsly.write_jsonl(out / "linker_train.jsonl", names + fit)
    return {"fit": len(fit), "calibration": len(calib), "linker_train": len(names) + len(fit)}
