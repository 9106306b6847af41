"""displaCy helpers: render linked spans with their concept id, label and a link."""

from __future__ import annotations

from html import escape
from typing import Any, Dict, Iterable, List, Optional, Union
from urllib.parse import quote

from spacy import displacy
from spacy.tokens import Doc, Span

# URL templates per taxonomy name; `{id}` is the concept id (URL-quoted), `{code}` the id
# without a namespace prefix such as "MESH:".
URL_TEMPLATES: Dict[str, str] = {
    "icd10cm": "https://www.icd10data.com/search?s={id}",
    "ctd_medic": "https://ctdbase.org/detail.go?type=disease&acc={id}",
    "hpo": "https://hpo.jax.org/browse/term/{id}",
}


def concept_url(concept_id: str, template: Optional[str]) -> str:
    """The URL of a concept from a template with `{id}` and/or `{code}` ("#" without one).

    concept_id (str): the concept id.
    template (Optional[str]): e.g. "https://example.org/{id}".
    RETURNS (str): the URL.
    """
    if not template or not concept_id:
        return "#"
    code = concept_id.split(":", 1)[1] if ":" in concept_id else concept_id
    return template.format(id=quote(concept_id, safe=":"), code=quote(code, safe=""))


def _linked_spans(doc: Doc, spans: str) -> List[Span]:
    if spans == "ents":
        return list(doc.ents)
    if spans.startswith("spans:"):
        key = spans.split(":", 1)[1]
        return list(doc.spans[key]) if key in doc.spans else []
    raise ValueError(f"render_links: spans={spans!r} must be 'ents' or 'spans:<key>'.")


def links_to_displacy(
    doc: Doc, *, url_template: Optional[str] = None, taxonomy: Any = None, spans: str = "ents"
) -> Dict[str, Any]:
    """displaCy "manual" data for one doc: each linked span shows its label, concept id
    and concept label, linked to the concept's URL.

    doc (Doc): a doc annotated by text2node_linker.
    url_template (Optional[str]): URL template (`{id}` / `{code}`); None looks the
        taxonomy name up in URL_TEMPLATES.
    taxonomy (Optional[Taxonomy]): to print concept labels and pick a URL template; None
        uses the labels stored in `span._.text2node_candidates`.
    spans (str): "ents" or "spans:<key>".
    RETURNS (Dict[str, Any]): {"text", "ents", "title"} for `displacy.render(..., manual=True)`.
    """
    if url_template is None and taxonomy is not None:
        url_template = URL_TEMPLATES.get(getattr(taxonomy, "name", ""))
    ents = []
    for span in _linked_spans(doc, spans):
        cid = span.kb_id_
        label = ""
        cands = span._.get("text2node_candidates") if Span.has_extension("text2node_candidates") else None
        if cid and taxonomy is not None and cid in taxonomy:
            label = taxonomy.label(cid)
        elif cid and cands:
            label = next((c[1] for c in cands if c[0] == cid), "")
        kb_text = f"{cid} {label}".strip() if cid else "NIL"
        # displaCy writes labels, ids and URLs into its HTML as they are: they come from a
        # taxonomy or a model, so they are escaped here (the text is escaped by displaCy)
        ents.append(
            {
                "start": span.start_char,
                "end": span.end_char,
                "label": escape(span.label_ or "CONCEPT"),
                "kb_id": escape(kb_text),
                "kb_url": escape(concept_url(cid, url_template)),
            }
        )
    return {"text": doc.text, "ents": ents, "title": None}


def render_links(
    docs: Union[Doc, Iterable[Doc]],
    *,
    url_template: Optional[str] = None,
    taxonomy: Any = None,
    spans: str = "ents",
    page: bool = False,
    jupyter: Optional[bool] = None,
    options: Optional[Dict[str, Any]] = None,
) -> str:
    """Render linked spans with displaCy's entity visualizer.

    docs (Doc / Iterable[Doc]): annotated docs.
    url_template (Optional[str]): concept URL template (see `links_to_displacy`).
    taxonomy (Optional[Taxonomy]): for concept labels and the default URL template.
    spans (str): "ents" or "spans:<key>".
    page (bool): wrap in a full HTML page.
    jupyter (Optional[bool]): render in a notebook (None: detect).
    options (Optional[Dict[str, Any]]): extra displaCy options (e.g. colors).
    RETURNS (str): the HTML (empty string when displayed in a notebook).
    """
    if isinstance(docs, Doc):
        docs = [docs]
    data = [links_to_displacy(d, url_template=url_template, taxonomy=taxonomy, spans=spans) for d in docs]
    return displacy.render(data, style="ent", manual=True, page=page, jupyter=jupyter, options=options or {}) or ""
