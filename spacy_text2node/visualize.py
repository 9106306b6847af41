"""displaCy helpers: render linked spans with their concept id, label and a link."""

from __future__ import annotations

from html import escape
from typing import Any, Dict, Iterable, List, Optional, Union
from urllib.parse import quote

from spacy import displacy
from spacy.tokens import Doc, Span

from .pipeline.context import context_flags

# URL templates per taxonomy name; `{id}` is the concept id (URL-quoted), `{code}` the id
# without a namespace prefix such as "MESH:".
URL_TEMPLATES: Dict[str, str] = {
    "icd10cm": "https://www.icd10data.com/search?s={id}",
    "ctd_medic": "https://ctdbase.org/detail.go?type=disease&acc={id}",
    "hpo": "https://hpo.jax.org/browse/term/{id}",
}
# the marker a span's label gets for each context flag that is true (see pipeline.context)
CONTEXT_MARKERS: Dict[str, str] = {"negated": "NEG", "historical": "HIST", "hypothetical": "HYP"}


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


def _source(spans: str) -> str:
    if spans == "ents":
        return "ents"
    if spans.startswith("spans:"):
        return spans.split(":", 1)[1]
    raise ValueError(f"render_links: spans={spans!r} must be 'ents' or 'spans:<key>'.")


def _linked_spans(doc: Doc, spans: str) -> List[Span]:
    key = _source(spans)
    if key == "ents":
        return list(doc.ents)
    return list(doc.spans[key]) if key in doc.spans else []


def context_markers(span: Span, source: Optional[str] = None) -> List[str]:
    """The markers of a span's true context flags ("NEG", "HIST", "HYP"), in that order.

    span (Span): a span of a doc a `text2node_context` component processed.
    source (Optional[str]): "ents" or the span group key the span came from.
    RETURNS (List[str]): the markers (none where no flag is set or none was computed).
    """
    flags = context_flags(span, source)
    return [marker for flag, marker in CONTEXT_MARKERS.items() if flags.get(flag)]


def links_to_displacy(
    doc: Doc,
    *,
    url_template: Optional[str] = None,
    taxonomy: Any = None,
    spans: str = "ents",
    context: bool = True,
) -> Dict[str, Any]:
    """displaCy "manual" data for one doc: each linked span shows its label, concept id
    and concept label, linked to the concept's URL. A span that a `text2node_context`
    component flagged shows "NEG", "HIST" and/or "HYP" after its label (the label's colour
    and displaCy's `ents` filter still go by the plain label).

    doc (Doc): a doc annotated by text2node_linker.
    url_template (Optional[str]): URL template (`{id}` / `{code}`); None looks the
        taxonomy name up in URL_TEMPLATES.
    taxonomy (Optional[Taxonomy]): to print concept labels and pick a URL template; None
        uses the labels stored in `span._.text2node_candidates`.
    spans (str): "ents" or "spans:<key>".
    context (bool): show the context markers.
    RETURNS (Dict[str, Any]): {"text", "ents", "title"} for `displacy.render(..., manual=True)`.
    """
    if url_template is None and taxonomy is not None:
        url_template = URL_TEMPLATES.get(getattr(taxonomy, "name", ""))
    source = _source(spans)
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
        label = span.label_ or "CONCEPT"
        ent: Dict[str, Any] = {
            "start": span.start_char,
            "end": span.end_char,
            "label": escape(label),
            "kb_id": escape(kb_text),
            "kb_url": escape(concept_url(cid, url_template)),
        }
        markers = context_markers(span, source) if context else []
        if markers:
            # displaCy looks the colour up by "label", then fills its template with "params":
            # the marked label is shown, the plain one keeps its colour
            ent["params"] = {"label": escape(" ".join([label, *markers]))}
        ents.append(ent)
    return {"text": doc.text, "ents": ents, "title": None}


def render_links(
    docs: Union[Doc, Iterable[Doc]],
    *,
    url_template: Optional[str] = None,
    taxonomy: Any = None,
    spans: str = "ents",
    context: bool = True,
    page: bool = False,
    jupyter: Optional[bool] = None,
    options: Optional[Dict[str, Any]] = None,
) -> str:
    """Render linked spans with displaCy's entity visualizer.

    docs (Doc / Iterable[Doc]): annotated docs.
    url_template (Optional[str]): concept URL template (see `links_to_displacy`).
    taxonomy (Optional[Taxonomy]): for concept labels and the default URL template.
    spans (str): "ents" or "spans:<key>".
    context (bool): show the context markers ("NEG", "HIST", "HYP") after flagged spans' labels.
    page (bool): wrap in a full HTML page.
    jupyter (Optional[bool]): render in a notebook (None: detect).
    options (Optional[Dict[str, Any]]): extra displaCy options (e.g. colors).
    RETURNS (str): the HTML (empty string when displayed in a notebook).
    """
    if isinstance(docs, Doc):
        docs = [docs]
    data = [
        links_to_displacy(d, url_template=url_template, taxonomy=taxonomy, spans=spans, context=context) for d in docs
    ]
    return displacy.render(data, style="ent", manual=True, page=page, jupyter=jupyter, options=options or {}) or ""
