"""Corpus readers for linking: phrase -> concept pairs (JSONL) and PubTator documents.

Both are registered in `spacy.registry.readers`, so a training config can use them:

    [corpora.train]
    @readers = "spacy-text2node.PhraseConcepts.v1"
    path = "corpus/gem/P3/train.jsonl"
    taxonomy_path = "corpus/gem/taxonomy"
"""

from __future__ import annotations

import json
import logging
from array import array
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple, Union

from spacy import registry
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example

from ..datasets.pubtator import read_pubtator, resolve_ids
from ..taxonomy import Taxonomy

logger = logging.getLogger("spacy_text2node")

GOLD_EXT = "text2node_gold"
PHRASE_LABEL = "CONCEPT"
DISEASE_LABEL = "DISEASE"

if not Span.has_extension(GOLD_EXT):
    Span.set_extension(GOLD_EXT, default=None)


def load_taxonomy_path(path: Union[str, Path]) -> Taxonomy:
    """A taxonomy from a path: a `Taxonomy.to_disk` folder, or a CTD MEDIC TSV(.gz).

    path (str / Path): the folder or file.
    RETURNS (Taxonomy): the taxonomy.
    """
    p = Path(path)
    if p.is_dir():
        return Taxonomy.from_disk(p)
    if p.exists() and "CTD_diseases" in p.name:
        return Taxonomy.from_ctd_medic(p)
    if p.exists() and p.suffix == ".jsonl":
        return Taxonomy.from_jsonl(p)
    if p.exists() and p.suffix in (".csv", ".tsv"):
        return Taxonomy.from_csv(p)
    raise ValueError(
        f"{p}: not a taxonomy folder (from `text2node taxonomy build`) "
        "nor a CTD_diseases.tsv(.gz), .csv, .tsv or .jsonl file."
    )


def read_pairs(path: Union[str, Path], *, taxonomy: Optional[Taxonomy] = None, limit: int = 0) -> List[Dict[str, Any]]:
    """Read and check a JSONL file of phrase -> concept pairs.

    Each line is {"text": str, "concept": str, "gold": [str, ...] (optional; defaults
    to [concept]), ...}. Other keys are kept. With a taxonomy every concept and gold id
    must be in it (alternative ids are resolved to the canonical id).

    path (str / Path): the JSONL file.
    taxonomy (Taxonomy): check and resolve ids against it; None skips the check.
    limit (int): read at most this many pairs (0: all).
    RETURNS (List[Dict[str, Any]]): the pairs, with "gold" always a list whose first
        element is "concept".
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: pairs file not found. Write the GEM pairs with `text2node data gem OUT_DIR`.")
    out: List[Dict[str, Any]] = []
    with p.open(encoding="utf8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{p}, line {n}: not valid JSON ({e.msg} at column {e.colno}). Each line must be one JSON object."
                ) from None
            if not isinstance(obj, dict):
                raise ValueError(
                    f"{p}, line {n}: expected a JSON object with 'text' and 'concept', found {type(obj).__name__}."
                )
            for key in ("text", "concept"):
                if not isinstance(obj.get(key), str) or not obj[key].strip():
                    raise ValueError(
                        f"{p}, line {n}: missing or empty field {key!r} (each line needs 'text' and 'concept' strings)."
                    )
            gold = obj.get("gold")
            if gold is None:
                gold = [obj["concept"]]
            if not isinstance(gold, list) or not gold or not all(isinstance(g, str) for g in gold):
                raise ValueError(f"{p}, line {n}: 'gold' must be a non-empty list of concept ids, found {gold!r}.")
            concept = obj["concept"]
            if taxonomy is not None:
                for cid in [concept] + gold:
                    if cid not in taxonomy:
                        raise ValueError(
                            f"{p}, line {n}: concept {cid!r} is not in taxonomy {taxonomy.name!r} "
                            f"({len(taxonomy)} concepts). Is this the taxonomy the pairs were written for?"
                        )
                concept = taxonomy.resolve(concept)
                gold = [taxonomy.resolve(g) for g in gold]
            gold = [concept] + [g for g in dict.fromkeys(gold) if g != concept]
            obj["concept"] = concept
            obj["gold"] = gold
            out.append(obj)
            if limit and len(out) >= limit:
                break
    return out


def phrase_example(
    nlp: Language,
    text: str,
    concept: str,
    gold: List[str],
    label: str = PHRASE_LABEL,
    *,
    make_doc: Optional[Callable[[], Doc]] = None,
) -> Example:
    """An Example whose reference doc has one entity over the whole text.

    nlp (Language): makes the docs (`nlp.make_doc`).
    text (str): the phrase.
    concept (str): the entity's kb_id_.
    gold (List[str]): every right id, set as `span._.text2node_gold`.
    label (str): the entity label.
    make_doc (Optional[Callable[[], Doc]]): builds the text's doc (from kept tokens)
        instead of `nlp.make_doc(text)`.
    RETURNS (Example): predicted = nlp.make_doc(text), reference with the entity.
    """
    pred = make_doc() if make_doc else nlp.make_doc(text)
    ref = make_doc() if make_doc else nlp.make_doc(text)
    span = Span(ref, 0, len(ref), label=label, kb_id=concept)
    ref.ents = [span]
    ref.ents[0]._.set(GOLD_EXT, list(gold))
    return Example(pred, ref)


class _KeptTokens:
    """The tokens of many texts, in flat arrays: each token's start and length in its text
    and whether a space follows it, and the (token, norm) pairs where the tokenizer set a
    norm of its own (a tokenizer exception such as "n't" -> "not")."""

    def __init__(self) -> None:
        self.bounds = array("I", [0])
        self.starts = array("I")
        self.lengths = array("I")
        self.spaces = array("b")
        self.norms: Dict[int, List[Tuple[int, str]]] = {}

    def add(self, doc: Doc) -> None:
        for t in doc:
            self.starts.append(t.idx)
            self.lengths.append(len(t))
            self.spaces.append(bool(t.whitespace_))
            if t.norm != t.lex.norm:
                self.norms.setdefault(len(self.bounds) - 1, []).append((t.i, t.norm_))
        self.bounds.append(len(self.starts))

    def doc(self, nlp: Language, n: int, text: str) -> Doc:
        a, b = self.bounds[n], self.bounds[n + 1]
        words = [text[s : s + k] for s, k in zip(self.starts[a:b], self.lengths[a:b])]
        doc = Doc(nlp.vocab, words=words, spaces=[bool(x) for x in self.spaces[a:b]])
        for i, norm in self.norms.get(n, ()):
            doc[i].norm_ = norm
        return doc


class PhraseConceptsCorpus:
    """Iterate over phrase -> concept pairs as Examples (see `read_pairs`).

    `spacy train` reads a corpus more than once (the linker's initialisation twice, then
    the training loop; the dev corpus at every evaluation): the first complete pass
    keeps each phrase's tokens (offsets in flat arrays, a few bytes per token), and later
    passes with the same tokenizer build their docs from them instead of tokenizing again.
    """

    def __init__(self, path: Union[str, Path], *, limit: int = 0, taxonomy_path: Optional[Union[str, Path]] = None):
        self.path = Path(path)
        self.limit = limit
        self.taxonomy = load_taxonomy_path(taxonomy_path) if taxonomy_path else None
        # read (and check) now, so a bad line fails at config resolution, not mid-training
        self.pairs = read_pairs(self.path, taxonomy=self.taxonomy, limit=limit)
        self._tokens: Optional[Tuple[Any, _KeptTokens]] = None

    def __len__(self) -> int:
        return len(self.pairs)

    def __call__(self, nlp: Language) -> Iterator[Example]:
        if self._tokens is not None and self._tokens[0] is nlp.tokenizer:
            tokens = self._tokens[1]
            for n, obj in enumerate(self.pairs):
                text = obj["text"]
                yield phrase_example(nlp, text, obj["concept"], obj["gold"], make_doc=partial(tokens.doc, nlp, n, text))
            return
        kept = _KeptTokens()
        for obj in self.pairs:
            eg = phrase_example(nlp, obj["text"], obj["concept"], obj["gold"])
            kept.add(eg.predicted)
            yield eg
        self._tokens = (nlp.tokenizer, kept)


@registry.readers("spacy-text2node.PhraseConcepts.v1")
def create_phrase_concepts_reader(
    path: str, limit: int = 0, taxonomy_path: Optional[str] = None
) -> Callable[[Language], Iterable[Example]]:
    """Reader of JSONL phrase -> concept pairs (`text2node data gem` writes them).

    path (str): the JSONL file; lines {"text", "concept", "gold"?, ...}.
    limit (int): read at most this many pairs (0: all).
    taxonomy_path (Optional[str]): a taxonomy folder (or CTD MEDIC file) to check every
        concept id against, when the reader is created.
    RETURNS (Callable[[Language], Iterable[Example]]): yields Examples whose reference
        doc has one entity spanning the doc, kb_id_ = concept, `_.text2node_gold` = gold.
    """
    return PhraseConceptsCorpus(path, limit=limit, taxonomy_path=taxonomy_path)


def pubtator_docs(
    path: Union[str, Path],
    nlp: Language,
    *,
    taxonomy: Optional[Taxonomy] = None,
    unresolved: str = "keep",
    stats: Optional[Dict[str, int]] = None,
    limit: int = 0,
) -> Iterator[Doc]:
    """Docs of a PubTator file with gold DISEASE entities.

    Character offsets become token spans with `alignment_mode="expand"`; a mention
    whose expanded span differs from its offsets is counted as "misaligned" (and kept),
    one that overlaps an earlier entity is counted as "overlapping" and left out.

    path (str / Path): the PubTator file.
    nlp (Language): tokenizes (`nlp.make_doc`).
    taxonomy (Taxonomy): resolve ids (bare MeSH, OMIM) to taxonomy ids; None keeps them.
    unresolved (str): with a taxonomy, what to do with a mention whose ids do not all
        resolve: "keep" (entity with empty kb_id_ and the resolvable ids as gold) or
        "drop" (no entity).
    stats (Dict[str, int]): filled with counts: docs, mentions, entities, misaligned,
        overlapping, unresolved.
    limit (int): at most this many documents (0: all).
    YIELDS (Doc): one doc per abstract.
    """
    if unresolved not in ("keep", "drop"):
        raise ValueError(f"unresolved must be 'keep' or 'drop', not {unresolved!r}.")
    st = stats if stats is not None else {}
    for k in ("docs", "mentions", "entities", "misaligned", "overlapping", "unresolved"):
        st.setdefault(k, 0)
    for pdoc in read_pubtator(path):
        if limit and st["docs"] >= limit:
            break
        st["docs"] += 1
        doc = nlp.make_doc(pdoc.text)
        doc.user_data["pmid"] = pdoc.pmid
        spans: List[Span] = []
        golds: List[List[str]] = []
        taken: Set[int] = set()
        for m in sorted(pdoc.mentions, key=lambda m: (m.start, -m.end)):
            st["mentions"] += 1
            ids = list(m.ids)
            if taxonomy is not None:
                ids, bad = resolve_ids(m.ids, taxonomy)
                if bad or not ids:
                    st["unresolved"] += 1
                    if unresolved == "drop":
                        continue
                    kb = ""
                else:
                    kb = ids[0]
            else:
                kb = ids[0] if ids else ""
            span = doc.char_span(m.start, m.end, label=DISEASE_LABEL, kb_id=kb, alignment_mode="expand")
            if span is None:
                st["misaligned"] += 1
                continue
            if span.start_char != m.start or span.end_char != m.end:
                st["misaligned"] += 1
            toks = set(range(span.start, span.end))
            if toks & taken:
                st["overlapping"] += 1
                continue
            taken |= toks
            spans.append(span)
            golds.append(ids)
        doc.ents = sorted(spans, key=lambda s: s.start)
        order = sorted(range(len(spans)), key=lambda i: spans[i].start)
        for ent, i in zip(doc.ents, order):
            ent._.set(GOLD_EXT, golds[i])
        st["entities"] += len(spans)
        yield doc


class PubTatorCorpus:
    """Iterate over a PubTator file as document-level Examples (see `pubtator_docs`)."""

    def __init__(
        self,
        path: Union[str, Path],
        *,
        taxonomy_path: Optional[Union[str, Path]] = None,
        unresolved: str = "keep",
        limit: int = 0,
    ):
        self.path = Path(path)
        if not self.path.exists():
            raise ValueError(f"{self.path}: PubTator file not found.")
        self.taxonomy = load_taxonomy_path(taxonomy_path) if taxonomy_path else None
        self.unresolved = unresolved
        self.limit = limit
        self.stats: Dict[str, int] = {}

    def __call__(self, nlp: Language) -> Iterator[Example]:
        self.stats = {}
        for ref in pubtator_docs(
            self.path, nlp, taxonomy=self.taxonomy, unresolved=self.unresolved, stats=self.stats, limit=self.limit
        ):
            yield Example(nlp.make_doc(ref.text), ref)
        if self.stats.get("misaligned") or self.stats.get("overlapping"):
            logger.warning(
                "%s: %d gold mention(s) overlap an earlier one and were left out, %d do not align with "
                "token boundaries and were widened to them (%s)",
                self.path,
                self.stats.get("overlapping", 0),
                self.stats.get("misaligned", 0),
                self.stats,
            )


@registry.readers("spacy-text2node.PubTator.v1")
def create_pubtator_reader(
    path: str, taxonomy_path: Optional[str] = None, unresolved: str = "keep", limit: int = 0
) -> Callable[[Language], Iterable[Example]]:
    """Reader of PubTator abstracts (NCBI Disease) as document-level Examples.

    path (str): the PubTator file.
    taxonomy_path (Optional[str]): CTD MEDIC TSV(.gz) or a taxonomy folder to resolve
        ids with (bare MeSH "D012345" and "OMIM:..." become MEDIC ids); None keeps the
        ids as written.
    unresolved (str): "keep" or "drop" mentions whose ids do not resolve.
    limit (int): at most this many documents (0: all).
    RETURNS (Callable[[Language], Iterable[Example]]): reference docs carry DISEASE
        entities with kb_id_ and `_.text2node_gold`.
    """
    return PubTatorCorpus(path, taxonomy_path=taxonomy_path, unresolved=unresolved, limit=limit)
