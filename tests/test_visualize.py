"""The displaCy helper escapes what comes from a taxonomy (labels, ids, URLs): a concept
label is data, and a review page must never run it as markup."""

import pytest
import spacy
from spacy.tokens import Span

import spacy_text2node.pipeline.linker  # noqa: F401  (registers the span extensions)
from spacy_text2node.visualize import links_to_displacy, render_links


def test_render_links_escapes_labels_ids_and_urls():
    nlp = spacy.blank("en")
    doc = nlp("fever and cough")
    cid = 'C1"><script>alert(1)</script>'
    span = Span(doc, 0, 1, label="MENTION<b>", kb_id=cid)
    doc.ents = [span]
    doc.ents[0]._.text2node_candidates = [(cid, "<img src=x onerror=alert(2)>", 0.9)]
    html = render_links(doc, url_template="https://example.org/{id}")
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x" in html and "MENTION&lt;b&gt;" in html
    assert 'href="https://example.org/C1%22%3E%3Cscript%3E' in html  # the id is URL-quoted in the link


def test_render_links_marks_negated_historical_and_hypothetical_spans():
    pytest.importorskip("negspacy", reason="the context flags need negspacy==1.1.0")
    from spacy_text2node.pipeline.context import add_context

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns(
        [{"label": "PROBLEM", "pattern": w} for w in ("pneumonia", "diabetes", "fever", "cough")]
    )
    add_context(nlp)
    doc = nlp("No evidence of pneumonia. History of diabetes. If fever develops, return. Dry cough.")
    assert [d["params"]["label"] if "params" in d else d["label"] for d in links_to_displacy(doc)["ents"]] == [
        "PROBLEM NEG",
        "PROBLEM HIST",
        "PROBLEM HYP",
        "PROBLEM",
    ]
    html = render_links(doc, options={"colors": {"PROBLEM": "#123456"}})
    assert html.count("PROBLEM NEG") == 1 and "PROBLEM HIST" in html and "PROBLEM HYP" in html
    assert html.count("background: #123456") == 4  # the marked labels keep their label's colour
    assert "NEG" not in render_links(doc, context=False)
    # a pipeline without the component marks nothing
    assert "NEG" not in render_links(nlp.get_pipe("entity_ruler")(nlp.make_doc("No evidence of pneumonia.")))
