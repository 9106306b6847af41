"""The displaCy helper escapes what comes from a taxonomy (labels, ids, URLs): a concept
label is data, and a review page must never run it as markup."""

import spacy
from spacy.tokens import Span

import spacy_text2node.pipeline.linker  # noqa: F401  (registers the span extensions)
from spacy_text2node.visualize import render_links


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
