"""Pydantic models of the service's requests and responses, for the OpenAPI docs at /docs.

The /link body is checked by `parse_link_request` (so that every mistake gets a message saying
what to send instead); these models describe the same shapes for clients and the docs.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Union

from pydantic import BaseModel, Field


class RecordIn(BaseModel):
    """One text of a batch, with its id."""

    id: Optional[Union[str, int]] = Field(None, description="The text's id, returned with its record.")
    text: str = Field(..., description="The text to link.")


class LinkRequest(BaseModel):
    """One text (`text`, optional `id`) or a batch (`texts` or `records`): exactly one of the three."""

    text: Optional[str] = Field(None, description="One text; the answer is one record.", examples=["She has asthma."])
    id: Optional[Union[str, int]] = Field(None, description='The id of `text` (default "0").')
    texts: Optional[List[str]] = Field(
        None, description='A batch of texts (ids "0", "1", ...); the answer is {records}.'
    )
    records: Optional[List[RecordIn]] = Field(None, description="A batch of {id, text}; the answer is {records}.")
    top_k: Optional[int] = Field(None, ge=1, description="Candidates kept per span (default: the server's --top-k).")
    render: bool = Field(False, description="Also return each record's displaCy HTML in `html` (the review page).")


class Candidate(BaseModel):
    concept_id: Optional[str]
    concept_label: Optional[str]
    score: Optional[float]


class SpanOut(BaseModel):
    start: int = Field(..., description="Character offset where the span starts.")
    end: int = Field(..., description="Character offset where the span ends.")
    text: str
    label: str
    source: str = Field(..., description='"ents" or the span group key the span came from.')
    concept_id: Optional[str] = Field(None, description="The linked concept (null: NIL).")
    concept_label: Optional[str] = None
    score: Optional[float] = None
    candidates: List[Candidate] = []
    negated: Optional[bool] = Field(
        None, description="Negated (NegEx, en_clinical terms); null when the pipeline does not check it."
    )
    historical: Optional[bool] = Field(
        None, description='In the history ("history of", "status post"); null when not checked.'
    )
    hypothetical: Optional[bool] = Field(
        None, description='A condition that may come ("if", "return if", "rule out"); null when not checked.'
    )
    concepts: List[str] = Field(
        [], description="Every concept the span was linked to (several for a composite mention; [] for NIL)."
    )


class LinkRecord(BaseModel):
    """The record of one text: the shape of `text2node link`'s output lines."""

    id: str
    n_tokens: int
    spans: List[SpanOut]
    html: Optional[str] = Field(None, description="displaCy HTML, when the request asked for `render`.")


class LinkBatch(BaseModel):
    records: List[LinkRecord]


class ConceptRef(BaseModel):
    id: str
    label: str


class SynonymOut(BaseModel):
    text: str
    type: str


class ConceptOut(BaseModel):
    """A concept with its neighbourhood in the taxonomy."""

    id: str = Field(..., description="The canonical id (an alternative id in the URL resolves to it).")
    requested: str = Field(..., description="The id as given in the URL.")
    label: str
    synonyms: List[SynonymOut]
    definition: Optional[str]
    parents: List[ConceptRef]
    children: List[ConceptRef] = Field(..., description="At most 500; n_children says how many there are.")
    n_children: int
    ancestors: List[ConceptRef] = Field(..., description="Every ancestor, nearest first.")
    path: List[ConceptRef] = Field(..., description="A shortest path from a root down to the concept.")
    depth: int


class Health(BaseModel):
    status: str


class Info(BaseModel):
    model: str
    pipeline: List[str]
    mentions: Optional[str]
    negation: bool
    context: List[str] = Field(
        [], description='The context flags the pipeline computes: "negated", "historical", "hypothetical".'
    )
    span_keys: List[str]
    render_source: str
    taxonomy: Optional[Dict[str, Union[str, int]]]
    limits: Dict[str, Union[int, float]]
    top_k: Optional[int]
    versions: Dict[str, Optional[str]]
    worker_pid: int


class ErrorOut(BaseModel):
    detail: str = Field(..., description="What was wrong and what to send instead.")
