"""Text2NodeKB: our taxonomy and index as a spaCy KnowledgeBase, used by spaCy's own
`entity_linker` component (candidates, entity vectors, training, saving)."""

import numpy as np
import pytest
import spacy
from conftest import toy_vectors_nlp
from spacy.kb import Candidate, KnowledgeBase
from spacy.tokens import Span
from spacy.training import Example
from spacy.util import fix_random_seed, registry

from spacy_text2node.errors import LinkerNotReadyError
from spacy_text2node.pipeline.kb import Text2NodeKB

# (text, [(start, end, concept)]): "diabetes" is ambiguous, its context says which
TRAIN = [
    ("juvenile insulin dependent diabetes since childhood", [(3, 4, "T1DM")]),
    ("adult obesity and diabetes treated with diet", [(3, 4, "T2DM")]),
    ("patient has influenza and gout", [(2, 3, "FLU"), (4, 5, "GOUT")]),
    ("history of bronchial asthma", [(2, 4, "ASTH")]),
]


def _doc(nlp, text, ents, with_ids=True):
    doc = nlp.make_doc(text)
    doc.ents = [Span(doc, s, e, label="DISEASE", kb_id=k if with_ids else "") for s, e, k in ents]
    return doc


def _kb_loader(tiny_taxonomy):
    return registry.misc.get("spacy-text2node.taxonomy_kb.v1")(taxonomy=tiny_taxonomy)


def test_kb_is_a_knowledge_base_with_our_candidates(tiny_taxonomy, tmp_path):
    nlp = toy_vectors_nlp()
    kb = _kb_loader(tiny_taxonomy)(nlp.vocab)
    assert isinstance(kb, KnowledgeBase) and len(kb) == len(tiny_taxonomy)
    assert kb.entity_vector_length == kb.index.dim == 16  # text-only node space of the 16-d word vectors
    doc = nlp.make_doc("diabetes and zqxv")
    cands = kb.get_candidates_batch([doc[0:1], doc[2:3]])
    assert all(isinstance(c, Candidate) for c in cands[0])
    assert [c.entity_ for c in cands[0]][:1] == ["DM"] and {"T1DM", "T2DM"} <= {c.entity_ for c in cands[0]}
    assert cands[1] == []  # nothing like it: NIL
    scores = [c.prior_prob for c in cands[0]]
    assert scores == sorted(scores, reverse=True)
    assert np.allclose(cands[0][0].entity_vector, kb.get_vector("DM"))
    assert np.allclose(kb.get_vector("DM"), kb.index.space[tiny_taxonomy.index("DM")])
    # saved and loaded into an empty KB (what spaCy does), it gives the same candidates
    kb.to_disk(tmp_path / "kb")
    again = Text2NodeKB(nlp.vocab, kb.entity_vector_length).from_disk(tmp_path / "kb")
    assert [(c.entity_, c.prior_prob) for c in again.get_candidates(doc[0:1])] == [
        (c.entity_, c.prior_prob) for c in cands[0]
    ]
    from_bytes = Text2NodeKB(nlp.vocab, kb.entity_vector_length).from_bytes(kb.to_bytes())
    assert [c.entity_ for c in from_bytes.get_candidates(doc[0:1])] == [c.entity_ for c in cands[0]]
    with pytest.raises(ValueError, match="entity_vector_length to 16"):
        Text2NodeKB(nlp.vocab, 64).from_disk(tmp_path / "kb")
    with pytest.raises(LinkerNotReadyError):
        Text2NodeKB(nlp.vocab, 16).get_candidates(doc[0:1])


def test_spacy_entity_linker_links_with_our_candidates(tiny_taxonomy, tmp_path):
    fix_random_seed(0)
    nlp = toy_vectors_nlp()
    nlp.add_pipe("sentencizer")
    loader = _kb_loader(tiny_taxonomy)
    el = nlp.add_pipe(
        "entity_linker",
        config={
            "generate_empty_kb": {"@misc": "spacy-text2node.empty_kb.v1"},
            "get_candidates_batch": {"@misc": "spacy.CandidateBatchGenerator.v1"},
            "candidates_batch_size": 8,
            "entity_vector_length": 16,
        },
    )
    el.set_kb(loader)
    assert isinstance(el.kb, Text2NodeKB)
    examples = [Example(nlp.make_doc(text), _doc(nlp, text, ents)) for text, ents in TRAIN]
    nlp.initialize(lambda: examples)
    optimizer = nlp.create_optimizer()
    history = []
    for _ in range(30):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
        history.append(losses["entity_linker"])
    assert history[-1] < history[0] / 2  # it learns the context of our entity vectors

    def linked(pipeline):
        out = []
        for text, ents in TRAIN:
            doc = pipeline(_doc(pipeline, text, ents, with_ids=False))
            out.append([e.kb_id_ for e in doc.ents])
        return out

    predicted = linked(nlp)
    assert predicted == [[k for _, _, k in ents] for _, ents in TRAIN]
    # every prediction is one of our candidates for its mention; the context, not our
    # ranking, chose T1DM and T2DM (our first candidate for "diabetes" is DM)
    for (text, ents), ids in zip(TRAIN, predicted):
        doc = _doc(nlp, text, ents, with_ids=False)
        for span, kb_id in zip(doc.ents, ids):
            assert kb_id in [c.entity_ for c in el.kb.get_candidates(span)]
    assert el.kb.get_candidates(nlp.make_doc("diabetes")[:])[0].entity_ == "DM"
    # a mention without candidates is NIL
    doc = nlp(_doc(nlp, "a case of zqxv", [(3, 4, "")], with_ids=False))
    assert doc.ents[0].kb_id_ == "NIL"
    # the KB travels with the pipeline
    nlp.to_disk(tmp_path / "el")
    nlp2 = spacy.load(tmp_path / "el")
    assert isinstance(nlp2.get_pipe("entity_linker").kb, Text2NodeKB)
    assert linked(nlp2) == predicted


def test_a_trained_linker_is_a_kb_for_the_entity_linker(phrase_linker_dir):
    nlp = spacy.load(phrase_linker_dir)
    linker = nlp.get_pipe("text2node_linker")
    kb = linker.kb
    assert kb.entity_vector_length == linker.index.dim
    doc = nlp.make_doc("juvenile diabetes")
    # the KB ranks with the linker's mapper and settings: the same candidates as the linker
    linked = linker(nlp.make_doc("juvenile diabetes")).ents[0]._.text2node_candidates
    assert [(c.entity_, pytest.approx(c.prior_prob)) for c in kb.get_candidates(doc[:])] == [
        (cid, score) for cid, _, score in linked
    ]
