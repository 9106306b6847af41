"""Document-level linking: queries per span (abbreviations, composite mentions), the
end-to-end scores, and a document pipeline assembled from a config."""

import json

import pytest
import spacy
from spacy.training import Example

from spacy_text2node.pipeline.scoring import document_scores, predicted_concepts
from spacy_text2node.pipeline.spans import CANDIDATES_EXT, CONCEPTS_EXT, GOLD_EXT


def _ents(doc, *pieces, label="Disease"):
    spans = []
    for piece in pieces:
        start = doc.text.index(piece)
        spans.append(doc.char_span(start, start + len(piece), label=label))
    doc.ents = spans
    return doc


@pytest.fixture()
def linker_nlp(phrase_linker_dir):
    from spacy_text2node.bulk.clinical import link_mentions

    nlp = spacy.load(phrase_linker_dir)
    link_mentions(nlp, "ents")
    return nlp


def _link(nlp, text, *mentions):
    doc = _ents(nlp.make_doc(text), *mentions)
    for _name, proc in nlp.pipeline:
        doc = proc(doc)
    return doc


def test_composite_mention_links_each_part(linker_nlp):
    linker = linker_nlp.get_pipe("text2node_linker")
    text = "Both viral and bacterial infection were seen."
    linker.cfg["composite"] = False
    whole = _link(linker_nlp, text, "viral and bacterial infection").ents[0]
    assert whole._.get(CONCEPTS_EXT) == ["BAC"]
    linker.cfg["composite"] = True
    ent = _link(linker_nlp, text, "viral and bacterial infection").ents[0]
    assert ent._.get(CONCEPTS_EXT) == ["VIR", "BAC"]
    assert ent.kb_id_ == "VIR"  # the first part's concept; candidates are the first part's
    assert ent._.get(CANDIDATES_EXT)[0][0] == "VIR"
    assert predicted_concepts(ent) == ["VIR", "BAC"]


def test_keep_whole_when_the_whole_is_as_probable_as_the_least_sure_part():
    from spacy_text2node.pipeline.composite import keep_whole

    hboc = [(7, 0.98), (1, 0.01)]  # "hereditary breast and ovarian cancer": a syndrome
    assert keep_whole(hboc, [[(1, 0.94)], [(2, 0.97)]])
    assert not keep_whole([(7, 0.66)], [[(1, 0.94)], [(2, 0.97)]])  # "breast and ovarian cancer"
    assert keep_whole([(7, 0.5)], [[(1, 0.9)], []])  # a part without candidates counts as 0
    assert keep_whole([(7, 0.9)], [[(1, 0.9)], [(2, 0.95)]])  # a tie keeps the whole
    assert not keep_whole([], [[], []])  # nothing for the whole: the parts (NIL as well)


def test_calibrated_linker_links_a_composite_whole_or_by_parts_as_keep_whole_says(phrase_linker_dir):
    """With a calibrated linker (probabilities), the span takes the whole's concept or the
    parts' concepts as `keep_whole` decides on the same queries linked alone; the NIL cut
    comes after the choice."""
    from test_linker import CALIBRATION_PAIRS, _examples

    from spacy_text2node.bulk.clinical import link_mentions
    from spacy_text2node.linker_api import calibrate_linker, link_phrases
    from spacy_text2node.pipeline.composite import keep_whole, split_composite

    nlp = spacy.load(phrase_linker_dir)
    calibrate_linker(nlp, _examples(nlp, CALIBRATION_PAIRS), l2_words=0.05)
    link_mentions(nlp, "ents")
    linker = nlp.get_pipe("text2node_linker")
    linker.cfg["composite"] = True
    choices = set()
    for mention in [
        "viral and bacterial infection",
        "type 1 and type 2 diabetes",
        "influenza and pneumonia",
        "asthma or obstructive pulmonary disease",
    ]:
        parts = split_composite(mention)
        assert len(parts) == 2
        whole, *split = link_phrases(nlp, [mention, *parts])
        whole_kept = keep_whole(whole, split)
        choices.add(whole_kept)
        for cut in (0.0, 0.9):  # the NIL cut comes after the choice, query by query
            linker.cfg["min_probability"] = cut
            chosen = [whole] if whole_kept else split
            want = [r[0][0] for r in chosen if r and r[0][1] >= cut]
            ent = _link(nlp, f"Seen: {mention}.", mention).ents[0]
            assert ent._.get(CONCEPTS_EXT) == want, (mention, cut)
        linker.cfg["min_probability"] = 0.0
    assert choices == {True, False}  # both branches ran


def test_abbreviation_links_as_its_long_form(linker_nlp):
    import spacy_text2node.pipeline.abbreviations  # noqa: F401  (registers the component)

    text = "Patients with bacterial pneumonia (BP) were treated. BP recurred in two."
    abbr = spacy.blank("en").add_pipe("text2node_abbreviations")
    doc = _ents(linker_nlp.make_doc(text), "BP recurred")
    doc.ents = [doc.char_span(text.rindex("BP"), text.rindex("BP") + 2, label="Disease")]
    doc = abbr(doc)
    linker = linker_nlp.get_pipe("text2node_linker")
    linked = linker(doc)
    assert linked.ents[0].kb_id_ == "BPNEU"
    linker.cfg["abbreviations"] = False
    bare = linker(abbr(_ents(linker_nlp.make_doc(text), "BP recurred")))
    assert bare.ents[0].kb_id_ != "BPNEU"


def test_a_short_form_inside_a_mention_is_written_out(linker_nlp):
    """ "acute BA" after "bronchial asthma (BA)" is searched as "acute bronchial asthma"."""
    import spacy_text2node.pipeline.abbreviations  # noqa: F401

    text = "Bronchial asthma (BA) was treated. Acute BA recurred in two."
    abbr = spacy.blank("en").add_pipe("text2node_abbreviations")
    linker = linker_nlp.get_pipe("text2node_linker")
    doc = abbr(_ents(linker_nlp.make_doc(text), "Acute BA"))
    assert linker.span_queries(0, doc.ents[0], [doc])[0][3] == "Acute Bronchial asthma"
    assert linker(doc).ents[0].kb_id_ == "ASTH"
    linker.cfg["abbreviations"] = False
    try:
        bare = linker(abbr(_ents(linker_nlp.make_doc(text), "Acute BA")))
        assert bare.ents[0].kb_id_ != "ASTH"
    finally:
        linker.cfg["abbreviations"] = True


def test_abbreviation_mentions_follow_their_long_form():
    import spacy_text2node.pipeline.abbreviations  # noqa: F401

    nlp = spacy.blank("en")
    nlp.add_pipe("text2node_abbreviations", config={"mentions": True})
    text = "Familial adenomatous polyposis (FAP) is rare. FAP and the VHL (von Hippel-Lindau) gene differ."
    doc = _ents(nlp.make_doc(text), "adenomatous polyposis", "VHL")
    doc = nlp.get_pipe("text2node_abbreviations")(doc)
    # "FAP" stands for "Familial adenomatous polyposis", which no entity covers (the entity
    # is shorter): no FAP mention is added; VHL's long form is no entity: the VHL entity goes
    assert [e.text for e in doc.ents] == ["adenomatous polyposis"]
    doc = _ents(nlp.make_doc(text), "Familial adenomatous polyposis")
    doc = nlp.get_pipe("text2node_abbreviations")(doc)
    assert [e.text for e in doc.ents] == ["Familial adenomatous polyposis", "FAP", "FAP"]


def test_an_undefined_initialism_of_a_mention_becomes_a_mention():
    """ "IDDM" written without a definition after "insulin-dependent diabetes mellitus" was
    found: the token spelling a multi-word mention's initials is its short form (a mention,
    read as the long form by the linker), with `initialisms` only; a token inside a mention,
    a longer token ("IDDM2", a locus) and a word in lower case are not."""
    from spacy_text2node.pipeline.abbreviations import long_form

    text = "Insulin-dependent diabetes mellitus is common. IDDM risk and IDDM2 differ; am IDDM-prone? In IDDM we saw."
    for initialisms in (False, True):
        nlp = spacy.blank("en")
        nlp.add_pipe("text2node_abbreviations", config={"mentions": True, "initialisms": initialisms})
        doc = nlp.get_pipe("text2node_abbreviations")(
            _ents(nlp.make_doc(text), "Insulin-dependent diabetes mellitus", "IDDM-prone")
        )
        found = [(e.text, e.start_char) for e in doc.ents]
        if not initialisms:
            assert found == [("Insulin-dependent diabetes mellitus", 0), ("IDDM-prone", text.index("IDDM-prone"))]
            continue
        assert found == [
            ("Insulin-dependent diabetes mellitus", 0),
            ("IDDM", text.index("IDDM")),
            ("IDDM-prone", text.index("IDDM-prone")),
            ("IDDM", text.rindex("IDDM")),
        ]
        assert {long_form(e).text for e in doc.ents if e.text == "IDDM"} == {"Insulin-dependent diabetes mellitus"}
    # a defined abbreviation keeps its own long form; a single-word mention has no initials
    doc = nlp.get_pipe("text2node_abbreviations")(
        _ents(nlp.make_doc("Dravet syndrome and dystonic seizures (DS) recur. DS and D were seen."), "Dravet syndrome")
    )
    pairs = [(s.text, lf.text) for s, lf in doc._.text2node_abbreviations]
    assert pairs == [("DS", "dystonic seizures"), ("DS", "dystonic seizures")]


@pytest.mark.parametrize(
    "text,mention,added",
    [
        # the mention is more than the long form, which names the enzyme: G6PD is the gene
        (
            "Glucose-6-phosphate dehydrogenase (G6PD) deficiency is common. G6PD was cloned.",
            "Glucose-6-phosphate dehydrogenase (G6PD) deficiency",
            False,
        ),
        (
            "We studied deficiency of aspartoacylase (ASPA) here. ASPA was cloned.",
            "deficiency of aspartoacylase",
            False,
        ),
        # the long form is the mention's head, with modifiers before it: ALD is the disease
        ("X-linked adrenoleukodystrophy (ALD) is rare. ALD recurred.", "X-linked adrenoleukodystrophy", True),
    ],
)
def test_a_short_form_becomes_a_mention_only_where_its_long_form_heads_one(text, mention, added):
    """A mention covering a long form stands for what the short form names only when the
    long form ends it: in "X (SF) deficiency" or "deficiency of X (SF)" the short form names
    X (an enzyme, a gene), not the disease."""
    import spacy_text2node.pipeline.abbreviations  # noqa: F401

    nlp = spacy.blank("en")
    nlp.add_pipe("text2node_abbreviations", config={"mentions": True})
    doc = _ents(nlp.make_doc(text), mention)
    before = [e.text for e in doc.ents]
    doc = nlp.get_pipe("text2node_abbreviations")(doc)
    short = text[text.index("(") + 1 : text.index(")")]
    assert [e.text for e in doc.ents] == (before + [short, short] if added else before)


def _example(nlp, text, gold, pred):
    ref = nlp.make_doc(text)
    ents = []
    for piece, ids in gold:
        start = text.index(piece)
        span = ref.char_span(start, start + len(piece), label="Disease", kb_id=ids[0] if ids else "")
        ents.append((span, ids))
    ref.ents = [s for s, _ in ents]
    for ent, (_, ids) in zip(ref.ents, ents):
        ent._.set(GOLD_EXT, ids)
    doc = nlp.make_doc(text)
    spans = []
    for piece, concepts in pred:
        start = text.index(piece)
        spans.append((doc.char_span(start, start + len(piece), label="Disease"), concepts))
    doc.ents = [s for s, _ in spans]
    for ent, (_, concepts) in zip(doc.ents, spans):
        ent._.set(CANDIDATES_EXT, [(c, c, 1.0) for c in concepts])
        ent._.set(CONCEPTS_EXT, concepts)
    return Example(doc, ref)


def test_document_scores_count_spans_and_pairs():
    nlp = spacy.blank("en")
    text = "Breast and ovarian cancer and gout, but not asthma or flu here."
    eg = _example(
        nlp,
        text,
        gold=[("Breast and ovarian cancer", ["BC", "OC"]), ("gout", ["GOUT"]), ("asthma", ["ASTH"]), ("flu", [])],
        pred=[("Breast and ovarian cancer", ["BC"]), ("gout", ["OBES"]), ("asthma", ["ASTH"]), ("here", [])],
    )
    s = document_scores([eg])
    # mentions: 3 of 4 predicted are gold, 3 of 4 gold are found
    assert s["text2node_mention_p"] == pytest.approx(3 / 4)
    assert s["text2node_mention_r"] == pytest.approx(3 / 4)
    # pairs: predicted BC, OBES, ASTH (3); gold BC, OC, GOUT, ASTH (4); right BC, ASTH
    assert s["text2node_link_p"] == pytest.approx(2 / 3)
    assert s["text2node_link_r"] == pytest.approx(2 / 4)
    assert s["text2node_link_f"] == pytest.approx(2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))
    # found spans with gold ids: composite (BC right), gout (wrong), asthma (right)
    assert s["text2node_link_acc_found"] == pytest.approx(2 / 3)
    # per document: {BC, OBES, ASTH} against {BC, OC, GOUT, ASTH}
    assert s["text2node_doc_concept_p"] == pytest.approx(2 / 3)
    assert s["text2node_doc_concept_r"] == pytest.approx(2 / 4)
    assert s["text2node_gold_mentions"] == 4 and s["text2node_pred_mentions"] == 4


def test_document_scores_without_predictions_are_undefined_not_zero():
    nlp = spacy.blank("en")
    eg = _example(nlp, "No mentions at all.", gold=[], pred=[])
    s = document_scores([eg])
    assert s["text2node_mention_p"] is None and s["text2node_mention_f"] is None
    assert s["text2node_link_acc_found"] is None


def test_assemble_applies_settings_beside_the_sourced_linker(phrase_linker_dir, tmp_path):
    cfg = tmp_path / "docs.cfg"
    cfg.write_text(
        '[paths]\nlinker = null\n\n[nlp]\nlang = "en"\n'
        'pipeline = ["entity_ruler","text2node_abbreviations","text2node_linker","sentencizer","text2node_context"]\n\n'
        '[components]\n\n[components.entity_ruler]\nfactory = "entity_ruler"\n\n'
        '[components.text2node_abbreviations]\nfactory = "text2node_abbreviations"\n\n'
        '[components.text2node_linker]\nsource = ${paths.linker}\nspans = "ents"\ncomposite = true\n\n'
        '[components.sentencizer]\nfactory = "sentencizer"\n\n'
        '[components.text2node_context]\nfactory = "text2node_context"\n\n'
        "[initialize]\nvectors = ${paths.linker}\n",
        encoding="utf8",
    )
    from typer.testing import CliRunner

    from spacy_text2node.cli import app

    out = tmp_path / "pipeline"
    args = ["assemble", str(cfg), str(out), "--paths.linker", str(phrase_linker_dir)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    nlp = spacy.load(out)
    ruler = nlp.get_pipe("entity_ruler")
    ruler.add_patterns([{"label": "Disease", "pattern": "gout and obesity"}])
    doc = nlp("No gout and obesity were found.")
    ent = doc.ents[0]
    assert ent._.get(CONCEPTS_EXT) == ["GOUT", "OBES"]
    assert ent._.negex is True
    cfg_saved = json.loads((out / "text2node_linker" / "cfg").read_text())
    assert cfg_saved["composite"] is True and cfg_saved["spans"] == "ents"
    # the saved config.cfg says what the pipeline does, not what the source was saved with
    block = spacy.util.load_config(out / "config.cfg")["components"]["text2node_linker"]
    assert block["search"]["composite"] is True
    assert block["spans"] == {"@misc": "spacy-text2node.ents_getter.v1"}
    assert nlp.config["components"]["text2node_linker"]["search"]["composite"] is True
    bad = cfg.read_text().replace("composite = true", "composite = true\nbogus = 1")
    cfg.write_text(bad)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and "bogus" in res.output


def test_assemble_warns_only_when_a_component_was_trained_on_other_vectors(phrase_linker_dir, tmp_path):
    """spaCy's W113 fires for every sourced component with vectors before [initialize]
    loads the pipeline's table; text2node assemble compares the tables afterwards."""
    import warnings

    import numpy as np

    from spacy_text2node.bulk.pipeline_loading import load_pipeline

    other = spacy.blank("en")
    other.vocab.set_vector("gout", np.ones(16, dtype="float32"))
    other.to_disk(tmp_path / "other_vectors")
    cfg = tmp_path / "linker.cfg"
    cfg.write_text(
        '[paths]\nlinker = null\nvectors = null\n\n[nlp]\nlang = "en"\npipeline = ["text2node_linker"]\n\n'
        "[components]\n\n[components.text2node_linker]\nsource = ${paths.linker}\n\n"
        "[initialize]\nvectors = ${paths.vectors}\n",
        encoding="utf8",
    )
    for vectors, expect in ((phrase_linker_dir, False), (tmp_path / "other_vectors", True)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_pipeline(str(cfg), overrides={"paths.linker": str(phrase_linker_dir), "paths.vectors": str(vectors)})
        texts = [str(w.message) for w in caught]
        assert not any("[W113]" in t for t in texts), texts
        assert any("differ from the pipeline's" in t for t in texts) == expect, texts


def test_pubtator_reader_counts_and_reports_overlapping_gold_spans(tmp_path, caplog):
    from spacy_text2node.readers.linking import PubTatorCorpus

    text_t, text_a = "Breast cancer.", "No disease here at all."
    path = tmp_path / "nested.txt"
    path.write_text(
        f"1|t|{text_t}\n1|a|{text_a}\n"
        "1\t0\t13\tBreast cancer\tSpecificDisease\tD1\n"  # at the very start, and the span of a nested one
        "1\t7\t13\tcancer\tSpecificDisease\tD2\n"  # nested in the first
        "\n2|t|Gout\n2|a|\n2\t0\t4\tGout\tSpecificDisease\tD3\n"  # a whole document, ends at the end
        "\n3|t|Nothing to see.\n3|a|Really nothing.\n",  # no mentions
        encoding="utf8",
    )
    corpus = PubTatorCorpus(path)
    with caplog.at_level("WARNING", logger="spacy_text2node"):
        examples = list(corpus(spacy.blank("en")))
    assert [len(eg.reference.ents) for eg in examples] == [1, 1, 0]
    assert corpus.stats["overlapping"] == 1 and corpus.stats["mentions"] == 3 and corpus.stats["docs"] == 3
    assert "overlap an earlier one" in caplog.text and str(path) in caplog.text
    assert examples[1].reference.ents[0].text == "Gout"


def test_document_pipeline_on_awkward_text(phrase_linker_dir, tmp_path):
    """Control characters, a mention at the very start and end, no mentions, an empty doc."""
    from spacy_text2node.bulk.clinical import build_clinical_pipeline

    nlp = build_clinical_pipeline(
        spacy.load(phrase_linker_dir), mentions="ruler", abbreviations=True, context=True, composite=True
    )
    texts = [
        "Gout and\x00 \x1b[31m obesity \x07 (GO) \u2028 were absent; GO",
        "gout",
        "Nothing here.",
        "",
        "(",
        "Tuberculosis, then gout",
    ]
    docs = list(nlp.pipe(texts))
    assert [e.text for e in docs[1].ents] == ["gout"] and docs[1].ents[0].kb_id_ == "GOUT"
    assert docs[2].ents == () and docs[3].ents == ()
    assert docs[0].ents[0].start_char == 0
    assert docs[5].ents[-1].end_char == len(texts[5])
    from spacy_text2node.bulk.records import doc_to_record

    for i, doc in enumerate(docs):
        rec = doc_to_record(doc, str(i))
        for span in rec["spans"]:
            assert span["negated"] in (True, False) and isinstance(span["concepts"], list)
