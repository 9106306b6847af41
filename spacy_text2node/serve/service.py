"""The loaded pipeline of one service worker: linking texts, rendering them, looking concepts up."""

from __future__ import annotations

import logging
import os
import platform
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Any, Dict, List, Optional, Sequence, Tuple

from spacy import displacy
from spacy.language import Language
from spacy.tokens import Doc

from ..bulk.records import doc_to_record, iter_spans
from ..pipeline.context import pipeline_flags
from ..taxonomy import Taxonomy
from ..visualize import links_to_displacy
from .negation import add_negation, is_negated, negation_pipe
from .requests import RequestError
from .settings import ServeSettings

logger = logging.getLogger("spacy_text2node")

LINKER = "text2node_linker"
MAX_CHILDREN = 500
COLORS = {"MENTION": "#bfe0ff"}


def _version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


class LinkService:
    """A pipeline loaded once per worker process, run on one thread of its own.

    settings (ServeSettings): what to load and the limits.
    nlp (Language): the loaded pipeline (mention finder and negation already added).
    """

    def __init__(self, settings: ServeSettings, nlp: Language):
        self.settings = settings
        self.nlp = nlp
        self.taxonomy = getattr(nlp.get_pipe(LINKER), "taxonomy", None) if LINKER in nlp.pipe_names else None
        self.negation = negation_pipe(nlp)
        self.context = pipeline_flags(nlp)
        self._n_roots = len(self.taxonomy.roots) if self.taxonomy is not None else 0
        key = settings.span_keys[0]
        self.render_source = key
        self._render_spans = "ents" if key == "ents" else f"spans:{key}"
        # one thread: requests queue for it, and a timed-out request does not pile up threads
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="text2node-link")

    @classmethod
    def load(cls, settings: ServeSettings) -> "LinkService":
        """Load the pipeline the settings name (as `text2node link` does) and add negation if asked.

        settings (ServeSettings): the settings.
        RETURNS (LinkService): the service.
        """
        from ..bulk.runner import load_pipeline, one_thread_per_process

        settings.check()
        nlp = load_pipeline(
            settings.model, max_chars=settings.max_chars, overrides=settings.overrides, mentions=settings.mentions
        )
        if settings.negation:
            add_negation(nlp, settings.span_keys)
        if settings.single_thread:
            one_thread_per_process(nlp)
        logger.info("text2node serve: pid %d loaded %s (%s)", os.getpid(), settings.model, ", ".join(nlp.pipe_names))
        service = cls(settings, nlp)
        service.warm_up()
        return service

    def warm_up(self) -> None:
        """Link one short text, so that the first request does not pay for compiling and caches."""
        text = (
            f"No {self.taxonomy.label(self.taxonomy.ids[-1])}."
            if self.taxonomy is not None and len(self.taxonomy)
            else "Warm up."
        )
        self.link([(text, "warm-up")], render=True)

    def close(self) -> None:
        """Stop the pipeline thread (a running request is not waited for)."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    # linking --------------------------------------------------------------------
    def link(
        self, items: Sequence[Tuple[str, str]], top_k: Optional[int] = None, render: bool = False
    ) -> List[Dict[str, Any]]:
        """Link texts and return their records (the shape of `text2node link`: with --negation its
        spans carry `negated`, `historical` and `hypothetical`), plus `html` when asked.

        items (Sequence[Tuple[str, str]]): (text, id) pairs.
        top_k (Optional[int]): candidates per span (None: the server's --top-k).
        render (bool): add the displaCy HTML of each text.
        RETURNS (List[Dict[str, Any]]): one record per text, in order.
        """
        keys = self.settings.span_keys
        top_k = top_k if top_k is not None else self.settings.top_k
        out = []
        for doc, doc_id in self.nlp.pipe(items, as_tuples=True, batch_size=max(1, len(items))):
            rec = doc_to_record(doc, doc_id, span_keys=keys, top_k=top_k)
            if self.negation and "negated" not in self.context:  # negspacy's own negex, saved in the pipeline
                for span_rec, (_, span) in zip(rec["spans"], iter_spans(doc, keys)):
                    span_rec["negated"] = is_negated(span)
            if render:
                rec["html"] = self.render(doc)
            out.append(rec)
        return out

    def render(self, doc: Doc) -> str:
        """The displaCy entity HTML of a doc: each span with its label, concept id and label
        (without the context markers: the review page draws its own from the record).

        doc (Doc): a processed doc.
        RETURNS (str): the HTML (the text is escaped by displaCy, labels and links by
            `links_to_displacy`).
        """
        data = links_to_displacy(doc, taxonomy=self.taxonomy, spans=self._render_spans, context=False)
        return displacy.render(data, style="ent", manual=True, options={"colors": COLORS})

    # concepts -------------------------------------------------------------------
    def _taxonomy(self) -> Taxonomy:
        if self.taxonomy is None:
            raise LookupError("this pipeline has no text2node_linker, so it has no concepts to look up")
        return self.taxonomy

    def _ref(self, cid: str) -> Dict[str, str]:
        return {"id": cid, "label": self._taxonomy().label(cid)}

    def root_path(self, cid: str) -> List[str]:
        """A shortest path from a root down to `cid` (parents are chosen by depth, then id).

        cid (str): a canonical concept id.
        RETURNS (List[str]): the ids, root first.
        """
        tax = self._taxonomy()
        path = [cid]
        seen = {cid}
        while True:
            parents = [p for p in tax.parents(path[-1]) if p not in seen]
            if not parents:
                return path[::-1]
            nxt = min(parents, key=lambda p: (tax.depth(p), p))
            seen.add(nxt)
            path.append(nxt)

    def concept(self, requested: str) -> Dict[str, Any]:
        """A concept with its synonyms, parents, children, ancestors and path to a root.

        requested (str): a concept id or an alternative id.
        RETURNS (Dict[str, Any]): see `schemas.ConceptOut`.
        """
        tax = self.taxonomy
        if tax is None:
            raise RequestError(
                404,
                f"This pipeline ({', '.join(self.nlp.pipe_names)}) has no {LINKER}, so no "
                f"taxonomy to look concepts up in: serve a linker pipeline.",
            )
        if requested not in tax:
            example = next(iter(tax), "")
            raise RequestError(
                404,
                f"Unknown concept id {requested!r}: taxonomy {tax.name!r} ({len(tax):,} concepts) has no such id "
                f"or alternative id. Send a concept_id from a /link answer, e.g. /concepts/{example}.",
            )
        cid = tax.resolve(requested)
        concept = tax[cid]
        return {
            "id": cid,
            "requested": requested,
            "label": concept.label,
            "synonyms": [{"text": s.text, "type": s.type} for s in concept.synonyms],
            "definition": concept.definition,
            "parents": [self._ref(p) for p in concept.parents],
            "children": [self._ref(c) for c in concept.children[:MAX_CHILDREN]],
            "n_children": len(concept.children),
            "ancestors": [self._ref(a) for a in tax.ancestors(cid)],
            "path": [self._ref(p) for p in self.root_path(cid)],
            "depth": tax.depth(cid),
        }

    # info -------------------------------------------------------------------------
    def info(self) -> Dict[str, Any]:
        """What this worker serves: pipeline, taxonomy, limits and versions.

        RETURNS (Dict[str, Any]): see `schemas.Info`.
        """
        import spacy

        from ..about import __version__

        s = self.settings
        tax = self.taxonomy
        return {
            "model": s.model,
            "pipeline": list(self.nlp.pipe_names),
            "mentions": s.mentions,
            "negation": self.negation,
            "context": list(self.context),
            "span_keys": list(s.span_keys),
            "render_source": self.render_source,
            "taxonomy": None if tax is None else {"name": tax.name, "size": len(tax), "roots": self._n_roots},
            "limits": {
                "max_chars": s.max_chars,
                "max_batch": s.max_batch,
                "max_body_bytes": s.max_body_bytes,
                "timeout": s.timeout,
            },
            "top_k": s.top_k,
            "versions": {
                "spacy-text2node": __version__,
                "spacy": spacy.__version__,
                "python": platform.python_version(),
                "fastapi": _version("fastapi"),
                "uvicorn": _version("uvicorn"),
                "negspacy": _version("negspacy") if self.negation else None,
            },
            "worker_pid": os.getpid(),
        }
