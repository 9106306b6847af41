"""The spaCy project's document-pipeline steps: skipped without the NCBI data, and run
end to end (small settings) with it."""

import json
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, shared_file

PACKAGE = "text2node_docs_projecttest"
STEPS = ("ncbi-data", "ncbi-nodes", "train-ncbi-linker", "train-ner", "evaluate-docs", "package-docs")


def _project(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(REPO / "project.yml", proj / "project.yml")
    shutil.copytree(REPO / "configs", proj / "configs")
    shutil.copytree(REPO / "scripts", proj / "scripts")
    return proj


def _vectors(proj, max_words):
    """A small real vector table with case variants, standing in for the ICD-10-CM project's
    distilled one (`--vars.doc_vectors`)."""
    out = proj / "small_vectors"
    res = subprocess.run(
        ["text2node", "vectors", "load", "-", str(out), "--format", "glove-6b-50d", "--subwords", "none"]
        + ["--case-variants", "--max-words", str(max_words)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return ["--vars.doc_vectors", str(out)]


def _run(step, proj, *args):
    res = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", step, ".", *args], cwd=proj, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return res.stdout


def test_document_steps_skip_without_the_data(tmp_path):
    proj = _project(tmp_path)
    missing = ["--vars.ncbi_dir", str(tmp_path / "no_ncbi"), "--vars.medic", str(tmp_path / "no_medic.tsv.gz")]
    missing += _vectors(proj, 1000)
    for step in ("ncbi-data", "ncbi-nodes", "train-ner"):  # the others skip the same way
        out = _run(step, proj, *missing)
        assert "skipped:" in out and "--vars.ncbi_dir" in out, out
    assert not (proj / "training" / "ner" / "model-best").exists()
    status = json.loads((proj / "training" / "ner" / "status.json").read_text())
    assert status["step"] == "train-ner" and "--vars.ncbi_dir" in status["skipped"]
    again = _run("ncbi-nodes", proj, *missing)  # a rerun with the same settings skips the step
    assert "Skipping 'ncbi-nodes'" in again, again


@pytest.mark.slow
@pytest.mark.long
def test_document_steps_end_to_end(tmp_path):
    ncbi = shared_file("ncbi_disease")
    medic = shared_file("ctd_medic", "CTD_diseases.tsv.gz")
    proj = _project(tmp_path)
    small = ["--vars.ncbi_dir", str(ncbi), "--vars.medic", str(medic), "--vars.ncbi_limit", "400"]
    small += ["--vars.ncbi_epochs", "1", "--vars.ncbi_node_walks", "1", "--vars.ncbi_walk_length", "10"]
    small += ["--vars.ner_max_steps", "40", "--vars.docs_package_name", PACKAGE, *_vectors(proj, 20000)]
    try:
        for step in STEPS:
            out = _run(step, proj, *small)
            assert "skipped:" not in out, out
        scores = json.loads((proj / "metrics" / "documents.json").read_text())
        for key in ("ents_f", "text2node_mention_f", "text2node_link_f", "text2node_doc_concept_f"):
            assert 0.0 <= scores[key] <= 1.0, key
        assert scores["text2node_gold_mentions"] == 787  # every dev mention, also those MEDIC lacks
        gold = json.loads((proj / "metrics" / "documents_gold_mentions.json").read_text())
        assert gold["text2node_mention_f"] == 1.0
        assert gold["text2node_link_acc_found"] > 0.3  # far above chance on 11,865 concepts, even this small
        assert "loaded en_" + PACKAGE in out
        # the clinical step's script, with the MEDIC linker standing in for the ICD-10-CM one:
        # the same NER goes in front of it, on the same vectors
        res = subprocess.run(
            [sys.executable, "scripts/documents.py", "clinical", "--linker", "training/ncbi/model-calibrated"],
            cwd=proj,
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
        assert "clinical pipeline ['tok2vec', 'ner', 'text2node_abbreviations', 'text2node_linker'" in res.stdout
        assert json.loads((proj / "training" / "clinical" / "status.json").read_text())["skipped"] is None
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", f"en_{PACKAGE}"], capture_output=True)
