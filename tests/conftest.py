"""Shared pytest setup: the --slow flag, paths to ../shared/data, common fixtures."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = Path(os.environ.get("TEXT2NODE_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_configure(config):
    # the full run (--slow, what .ci/run runs) tries a few hundred examples per property
    # in the Hypothesis suites; a quick run keeps their default
    if config.getoption("--slow"):
        os.environ.setdefault("TEXT2NODE_PROPERTY_EXAMPLES", "200")


def pytest_collection_modifyitems(config, items):
    # the runs of minutes first: with parallel workers (scripts/test.sh runs pytest-xdist's
    # `-n 2`), one that starts last would otherwise run alone at the end
    items.sort(key=lambda item: "long" not in item.keywords)
    if config.getoption("--slow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data; skip the test when it is absent (a user's clone)."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent: this test reads the shared real data (present in CI)")
    return p


@pytest.fixture(scope="session")
def tiny_taxonomy():
    """A 20-concept taxonomy (a DAG: one concept has two parents) from tests/fixtures."""
    from spacy_text2node import Taxonomy

    return Taxonomy.from_csv(FIXTURES / "tiny_taxonomy.csv")


@pytest.fixture(scope="session")
def icd10cm():
    """The full ICD-10-CM taxonomy (about 6 s to load; shared by the session)."""
    pytest.importorskip("simple_icd_10_cm", reason="needs the icd extra")
    from spacy_text2node import Taxonomy

    return Taxonomy.from_icd10cm()


def toy_vectors_nlp():
    """A blank English pipeline with the 16-d toy word vectors of tests/fixtures/linker_vectors.txt."""
    import numpy as np
    import spacy

    nlp = spacy.blank("en")
    for line in (FIXTURES / "linker_vectors.txt").read_text(encoding="utf8").splitlines():
        parts = line.split(" ")
        nlp.vocab.set_vector(parts[0], np.asarray(parts[1:], dtype="float32"))
    return nlp


@pytest.fixture(scope="session")
def phrase_linker_dir(tiny_taxonomy, tmp_path_factory):
    """A real linker over the tiny taxonomy made for phrases (spans="doc", as configs/linker.cfg
    trains it; untrained mean mapper, so links come mostly from the lexical channel), saved.
    Tests load it and never change the folder."""
    from spacy_text2node.linker_api import build_linker_nlp

    nlp = build_linker_nlp(tiny_taxonomy, None, toy_vectors_nlp(), spans="doc", architecture="mean")
    path = tmp_path_factory.mktemp("phrase_linker") / "linker"
    nlp.to_disk(path)
    return path
