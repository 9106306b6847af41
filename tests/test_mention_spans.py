"""Linking documents never quietly becomes linking whole documents (issue 17, part 1),
and the small phrase-API traps: a string where a list is expected, punctuation-only
spans, `spacy evaluate` on a path it cannot read."""

import logging
import subprocess
import sys

import numpy as np
import pytest
import spacy
from conftest import FIXTURES, REPO, toy_vectors_nlp

import spacy_text2node.linker_api  # noqa: F401  (registers the factory)
from spacy_text2node.bulk import build_clinical_pipeline, link_documents, load_pipeline, read_output
from spacy_text2node.linker_api import build_linker_nlp, link_phrases

CSV = FIXTURES / "bulk_notes.csv"
NOTE = "She has bronchial asthma and influenza."


def _ents(doc):
    return [(e.text, e.kb_id_) for e in doc.ents]


def test_build_linker_nlp_needs_an_explicit_spans_setting(tiny_taxonomy):
    with pytest.raises(ValueError, match=r"spans=.doc.*spans=.ents"):
        build_linker_nlp(tiny_taxonomy, None, toy_vectors_nlp(), architecture="mean")
    with pytest.raises(ValueError, match="sentences"):
        build_linker_nlp(tiny_taxonomy, None, toy_vectors_nlp(), spans="sentences", architecture="mean")


def test_clinical_pipeline_links_the_mentions_of_a_phrase_linker(phrase_linker_dir, tiny_taxonomy):
    nlp = build_clinical_pipeline(phrase_linker_dir, mentions="ruler")
    assert nlp.get_pipe("text2node_linker").cfg["spans"] == "ents"
    doc = nlp(NOTE)
    # the ruler's mentions are kept and each is linked; no document-wide entity
    assert _ents(doc) == [("bronchial asthma", "ASTH"), ("influenza", "FLU")]


def test_mentions_option_links_the_mentions(phrase_linker_dir):
    nlp = load_pipeline(phrase_linker_dir, mentions="ruler")
    assert _ents(nlp(NOTE)) == [("bronchial asthma", "ASTH"), ("influenza", "FLU")]


def test_bulk_run_with_mentions_keeps_the_mentions(phrase_linker_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    stats = link_documents(
        phrase_linker_dir, CSV, out, id_field="note_id", text_field="note", mentions="ruler", progress=False
    )
    assert stats.balanced
    spans = [s for r in read_output(out) for s in r["spans"]]
    assert spans and all(s["label"] == "MENTION" for s in spans)
    assert {s["text"].lower() for s in spans if s["concept_id"]} >= {"influenza", "high cholesterol"}


def test_phrase_linker_on_documents_warns(phrase_linker_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="spacy_text2node"):
        load_pipeline(phrase_linker_dir)
    assert any("spans='doc'" in r.getMessage() and "--mentions" in r.getMessage() for r in caplog.records)


def _ruler_cfg(tmp_path, spans_line):
    """A config like configs/clinical.cfg with a taxonomy entity ruler as the mention finder."""
    cfg = f"""
[paths]
linker = null

[nlp]
lang = "en"
pipeline = ["entity_ruler","text2node_linker"]

[components]

[components.entity_ruler]
factory = "entity_ruler"
phrase_matcher_attr = "LOWER"

[components.text2node_linker]
source = ${{paths.linker}}{spans_line}

[initialize]
vectors = ${{paths.linker}}

[initialize.components]

[initialize.components.entity_ruler]

[initialize.components.entity_ruler.patterns]
@misc = "spacy-text2node.TaxonomyPatterns.v1"

[initialize.components.entity_ruler.patterns.taxonomy]
@misc = "spacy-text2node.CSV.v1"
path = "{FIXTURES / "tiny_taxonomy.csv"}"
"""
    path = tmp_path / "mentions.cfg"
    path.write_text(cfg)
    return path


def test_config_sets_the_sourced_linker_spans(phrase_linker_dir, tmp_path):
    path = _ruler_cfg(tmp_path, '\nspans = "ents"')
    nlp = load_pipeline(path, overrides={"paths.linker": str(phrase_linker_dir)})
    assert _ents(nlp(NOTE)) == [("bronchial asthma", "ASTH"), ("influenza", "FLU")]


def test_config_sets_the_sourced_linker_spans_with_a_span_getter(phrase_linker_dir, tmp_path):
    path = _ruler_cfg(tmp_path, '\n\n[components.text2node_linker.spans]\n@misc = "spacy-text2node.ents_getter.v1"')
    nlp = load_pipeline(path, overrides={"paths.linker": str(phrase_linker_dir)})
    assert nlp.get_pipe("text2node_linker").cfg["spans"] == "ents"
    assert _ents(nlp(NOTE)) == [("bronchial asthma", "ASTH"), ("influenza", "FLU")]


def test_config_with_mentions_and_a_whole_doc_linker_is_refused(phrase_linker_dir, tmp_path):
    path = _ruler_cfg(tmp_path, "")
    with pytest.raises(ValueError, match=r'spans = "ents"') as err:
        load_pipeline(path, overrides={"paths.linker": str(phrase_linker_dir)})
    assert "entity_ruler" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("name", ["clinical.cfg", "clinical_noun_chunks.cfg", "documents.cfg"])
def test_clinical_cfg_says_what_the_linker_links(name):
    import re

    from spacy.util import load_config

    path = REPO / "configs" / name
    assert load_config(path, interpolate=False)["components"]["text2node_linker"]["spans"] == "ents"
    for ref in set(re.findall(r"(?:docs|configs)/[\w./-]+\.(?:md|cfg)", path.read_text())):
        assert (REPO / ref).exists(), f"configs/{name} points to {ref}, which does not exist"


def test_link_phrases_refuses_a_string(phrase_linker_dir):
    nlp = spacy.load(phrase_linker_dir)
    with pytest.raises(TypeError, match=r"\['flu'\]"):
        link_phrases(nlp, "flu")
    assert len(link_phrases(nlp, ["flu"])) == 1


def test_punctuation_only_spans_are_nil_even_with_vectors(tiny_taxonomy):
    # subword models (and GloVe) give punctuation a vector; make it the vector of a
    # concept word, so only the rule "no letter or digit: NIL" keeps it unlinked
    from spacy_text2node.vectors import build_vectors_pipeline

    src = toy_vectors_nlp()
    flu = src.vocab.get_vector("influenza")
    for punct in ("...", "!", "?", "-"):
        src.vocab.set_vector(punct, flu)
    words = [src.vocab.strings[k] for k in src.vocab.vectors.keys()]
    wv = build_vectors_pipeline(
        words, np.stack([src.vocab.get_vector(w) for w in words]), subwords="ngram", show_progress=False
    )
    nlp = build_linker_nlp(tiny_taxonomy, None, wv, spans="doc", architecture="mean", threshold=0.0)
    ranked = link_phrases(nlp, ["...", "!!! ??", "-", "influenza"], k=3)
    assert ranked[:3] == [[], [], []]
    assert ranked[3] and ranked[3][0][0] == "FLU"
    assert [e.kb_id_ for e in nlp("?!").ents] == [""]


def test_spacy_evaluate_on_a_jsonl_path_fails_loudly(phrase_linker_dir):
    p = subprocess.run(
        [sys.executable, "-m", "spacy", "evaluate", str(phrase_linker_dir), str(FIXTURES / "pairs_tiny.jsonl")],
        capture_output=True,
        text=True,
    )
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "text2node evaluate" in out or ".spacy" in out


def test_text2node_evaluate_reads_pairs_and_pubtator(phrase_linker_dir, tmp_path):
    from typer.testing import CliRunner

    from spacy_text2node.cli import app

    runner = CliRunner()
    out = tmp_path / "scores.json"
    res = runner.invoke(app, ["evaluate", str(phrase_linker_dir), str(FIXTURES / "pairs_tiny.jsonl"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    import json

    scores = json.loads(out.read_text())
    assert 0.0 <= scores["text2node_acc@1"] <= 1.0 and scores["text2node_acc@5"] >= scores["text2node_acc@1"]
    res = runner.invoke(app, ["evaluate", str(phrase_linker_dir), str(FIXTURES / "pubtator_tiny.txt"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    scores = json.loads(out.read_text())
    assert 0.0 <= scores["text2node_acc@1"] <= scores["text2node_acc@5"] <= 1.0
    # the saved linker keeps its own setting
    assert spacy.load(phrase_linker_dir).get_pipe("text2node_linker").cfg["spans"] == "doc"
