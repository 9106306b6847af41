"""The spaCy project's document-pipeline steps (NCBI Disease against CTD MEDIC).

    python scripts/documents.py data       NCBI_DIR MEDIC      # corpus/ncbi
    python scripts/documents.py nodes      [--walks N ...]     # assets/ncbi_nodes
    python scripts/documents.py train-linker [--vectors DIR] [--epochs N]   # training/ncbi/model-calibrated
    python scripts/documents.py train-ner  NCBI_DIR [--vectors DIR] [--config CFG] [--max-steps N]   # training/ner
    python scripts/documents.py evaluate-docs NCBI_DIR         # training/documents, metrics/documents.json
    python scripts/documents.py package-docs NAME VERSION      # packages/en_NAME-VERSION, installed
    python scripts/documents.py clinical   [--linker DIR]      # training/clinical

The MEDIC linker and the NER read one vector table (a pipeline holds one): by default the
ICD-10-CM project's distilled vectors (`assets/vectors`, keyed by their words' case
variants for the NER), which the ICD-10-CM linkers start from too. So the same NER goes
in front of the MEDIC linker (the NCBI document pipeline) and of an ICD-10-CM linker
(`configs/clinical.cfg`).

The NCBI Disease corpus and CTD MEDIC are not registry packages (they live in
../shared/data on the machines this project is developed on): when NCBI_DIR or MEDIC
is absent, `data` says so and writes corpus/ncbi/SKIPPED, and every later step sees that
file and skips, so `spacy project run all` still runs the ICD-10-CM steps to the end.
Every step ends by writing its status file (STATUS below), skipped or done: the project
lists them as the steps' outputs and the next steps' dependencies, so a rerun with the
same settings skips every step either way.
Each step is a few of the library's commands (`text2node data ncbi`,
`text2node embed-nodes`, `spacy train`, `text2node calibrate-linker`,
`text2node assemble`, `text2node evaluate`, `spacy package`), printed before it runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import List

CORPUS = Path("corpus/ncbi")
SKIPPED = CORPUS / "SKIPPED"
VECTORS = Path("assets/vectors")
NODES = Path("assets/ncbi_nodes")
LINKER = Path("training/ncbi")
NER = Path("training/ner")
DOCUMENTS = Path("training/documents")
CLINICAL = Path("training/clinical")
TRAIN_FILE = "NCBItrainset_corpus.txt"
DEV_FILE = "NCBIdevelopset_corpus.txt"
STATUS = {
    "data": CORPUS / "status.json",
    "nodes": NODES / "status.json",
    "train-linker": LINKER / "status.json",
    "train-ner": NER / "status.json",
    "evaluate-docs": Path("metrics/documents_status.json"),
    "package-docs": Path("packages/documents_status.json"),
    "clinical": CLINICAL / "status.json",
}
# clinical sentences the `clinical` step links once the pipeline is assembled
CLINICAL_CHECK = (
    "History of type 2 diabetes mellitus and hypertension. No evidence of pneumonia. "
    "She was treated for acute myocardial infarction (AMI) in 2019; AMI recurred."
)


def run(cmd: List[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def skipped() -> bool:
    if SKIPPED.exists():
        print(f"skipped: {SKIPPED.read_text().strip()}")
        return True
    return False


def finish(step: str) -> None:
    """Write the step's status file (its project output)."""
    status = {"step": step, "skipped": SKIPPED.read_text().strip() if SKIPPED.exists() else None}
    STATUS[step].parent.mkdir(parents=True, exist_ok=True)
    STATUS[step].write_text(json.dumps(status) + "\n")
    print(json.dumps(status))


def text2node(*args: str) -> List[str]:
    return ["text2node", *args]


def data(ncbi_dir: Path, medic: Path, limit: int) -> None:
    missing = [str(p) for p in (ncbi_dir / TRAIN_FILE, ncbi_dir / DEV_FILE, medic) if not p.exists()]
    CORPUS.mkdir(parents=True, exist_ok=True)
    if missing:
        SKIPPED.write_text(
            f"the document pipeline needs the NCBI Disease corpus and CTD MEDIC ({', '.join(missing)} absent); "
            "set --vars.ncbi_dir and --vars.medic to run it\n"
        )
        skipped()
        return
    SKIPPED.unlink(missing_ok=True)
    run(text2node("data", "ncbi", str(CORPUS), "--ncbi-dir", str(ncbi_dir), "--medic", str(medic)))
    if limit:  # a quick run: the first LIMIT training pairs of each kind
        for name in ("linker_train.jsonl", "calibration.jsonl"):
            lines = (CORPUS / name).read_text(encoding="utf8").splitlines(keepends=True)
            (CORPUS / name).write_text("".join(lines[:: max(1, len(lines) // limit)]), encoding="utf8")


def train_ner(a: argparse.Namespace, output: Path, vectors: Path) -> None:
    """`spacy train` the disease NER on NCBI Disease train (model-best chosen on dev). A
    config with a `paths.transformer` (configs/ner_disease_trf.cfg) gets the local
    all-MiniLM-L6-v2 folder there, and keeps its own max_steps when --max-steps is 0."""
    from spacy.util import load_config

    paths = load_config(a.config, interpolate=False)["paths"]
    extra = ["--training.max_steps", str(a.max_steps)] if a.max_steps else []
    if "transformer" in paths:
        from spacy_text2node.vectors.distill import default_model_path

        extra += ["--paths.transformer", str(default_model_path())]
    run(
        [sys.executable, "-m", "spacy", "train", a.config, "--output", str(output)]
        + ["--paths.train", str(a.ncbi_dir / TRAIN_FILE), "--paths.dev", str(a.ncbi_dir / DEV_FILE)]
        + ["--paths.vectors", str(vectors), "--system.seed", str(a.seed)]
        + extra
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="step", required=True)
    p = sub.add_parser("data")
    p.add_argument("ncbi_dir", type=Path)
    p.add_argument("medic", type=Path)
    p.add_argument("--limit", type=int, default=0, help="keep about this many linker training pairs (0: all)")
    p = sub.add_parser("nodes")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--walks", type=int, default=10)
    p.add_argument("--walk-length", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)
    vectors = argparse.ArgumentParser(add_help=False)
    vectors.add_argument("--vectors", type=Path, default=VECTORS, help="the word vectors (a spaCy pipeline folder)")
    p = sub.add_parser("train-linker", parents=[vectors])
    p.add_argument("--config", default="configs/linker.cfg")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    ner = argparse.ArgumentParser(add_help=False, parents=[vectors])  # what train-ner trains the NER with
    ner.add_argument("ncbi_dir", type=Path)
    ner.add_argument("--config", default="configs/ner_disease.cfg")
    ner.add_argument("--max-steps", type=int, default=3000, help="0: the config's own")
    ner.add_argument("--seed", type=int, default=0)
    sub.add_parser("train-ner", parents=[ner])
    p = sub.add_parser("clinical")
    p.add_argument("--linker", type=Path, default=Path("training/P1/model-calibrated"))
    p = sub.add_parser("evaluate-docs")
    p.add_argument("ncbi_dir", type=Path)
    p = sub.add_parser("package-docs")
    p.add_argument("name")
    p.add_argument("version")
    a = ap.parse_args()
    if a.step == "data":
        data(a.ncbi_dir, a.medic, a.limit)
    elif skipped():
        pass
    elif a.step == "nodes":
        run(
            text2node("embed-nodes", str(CORPUS / "taxonomy"), str(NODES), "--dim", str(a.dim))
            + ["--num-walks", str(a.walks), "--walk-length", str(a.walk_length), "--workers", "2"]
            + ["--seed", str(a.seed)]
        )
    elif a.step == "train-linker":
        run(
            [sys.executable, "-m", "spacy", "train", a.config, "--output", str(LINKER)]
            + ["--paths.train", str(CORPUS / "linker_train.jsonl"), "--paths.dev", str(CORPUS / "calibration.jsonl")]
            + ["--paths.taxonomy", str(CORPUS / "taxonomy"), "--paths.node_vectors", str(NODES)]
            + ["--paths.init_vectors", str(a.vectors), "--components.text2node_linker.index.candidates", "all"]
            + ["--training.max_epochs", str(a.epochs), "--system.seed", str(a.seed)]
            # the synonym-marginalised term is off here: on NCBI dev it did not help (docs/linker.md)
            + ["--components.text2node_linker.training.synonym_weight", "0"]
        )
        run(
            text2node("calibrate-linker", str(LINKER / "model-best"), str(CORPUS / "calibration.jsonl"))
            + ["--output", str(LINKER / "model-calibrated")]
            # the phrase dictionary: every NCBI train mention, the calibration ones too, set after
            # training and calibration (which hold those out)
            + ["--dictionary", str(CORPUS / "train.jsonl")]
        )
    elif a.step == "train-ner":
        train_ner(a, NER, a.vectors)
    elif a.step == "clinical":
        # the NER assembled in front of the ICD-10-CM linker, which refuses an NER trained on
        # other vectors than its own
        run(
            text2node("assemble", "configs/clinical.cfg", str(CLINICAL))
            + ["--paths.ner", str(NER / "model-best"), "--paths.linker", str(a.linker)]
        )
        code = (
            f"import spacy; nlp = spacy.load({str(CLINICAL)!r}); doc = nlp({CLINICAL_CHECK!r}); "
            "print('clinical pipeline', nlp.pipe_names, len(doc.ents), 'mentions'); "
            "[print(f'  {e.text!r} -> {e.kb_id_} negated={e._.negex}') for e in doc.ents]"
        )
        run([sys.executable, "-c", code])
    elif a.step == "evaluate-docs":
        from spacy_text2node.bulk.clinical import documents_config_name

        run(
            text2node("assemble", "configs/" + documents_config_name(NER / "model-best"), str(DOCUMENTS))
            + ["--paths.ner", str(NER / "model-best"), "--paths.linker", str(LINKER / "model-calibrated")]
        )
        Path("metrics").mkdir(exist_ok=True)
        dev = str(a.ncbi_dir / DEV_FILE)
        tax = str(CORPUS / "taxonomy")
        run(
            text2node("evaluate", str(DOCUMENTS), dev, "--taxonomy", tax, "--predicted-mentions")
            + ["--output", "metrics/documents.json"]
        )
        run(
            text2node("evaluate", str(DOCUMENTS), dev, "--taxonomy", tax, "--gold-mentions")
            + ["--output", "metrics/documents_gold_mentions.json"]
        )
    elif a.step == "package-docs":
        out = Path("packages")
        run(
            [sys.executable, "-m", "spacy", "package", str(DOCUMENTS), str(out), "--name", a.name]
            + ["--version", a.version, "--force"]
        )
        sdist = out / f"en_{a.name}-{a.version}" / "dist" / f"en_{a.name}-{a.version}.tar.gz"
        run([sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall", "-q", str(sdist)])
        code = (
            f"import spacy; nlp = spacy.load('en_{a.name}'); "
            "doc = nlp('No evidence of adenomatous polyposis coli (APC). APC was absent.'); "
            f"print('loaded en_{a.name}', nlp.pipe_names, [(e.text, e.kb_id_, e._.negex) for e in doc.ents])"
        )
        run([sys.executable, "-c", code])
    finish(a.step)


if __name__ == "__main__":
    main()
