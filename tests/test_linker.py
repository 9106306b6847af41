"""Tests of the Text2Node linker: mappers, node space and index, the component, the API,
configs/linker.cfg and the displaCy helper."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import spacy
from conftest import toy_vectors_nlp
from spacy.ml.models.tok2vec import MultiHashEmbed
from spacy.tokens import Doc, Span
from spacy.training import Example
from thinc.api import Adam, Model, chain, fix_random_seed

import spacy_text2node.linker_api  # noqa: F401  (registers factory, architectures, scorer)
import spacy_text2node.nodes.io  # noqa: F401  (spacy-text2node.NodeVectors.v1)
import spacy_text2node.readers.linking  # noqa: F401  (spacy-text2node.PhraseConcepts.v1)
import spacy_text2node.taxonomy.loaders  # noqa: F401
import spacy_text2node.vectors.pipeline  # noqa: F401  (spacy-text2node.GloVeVectors.v1)
from spacy_text2node.errors import SettingsError
from spacy_text2node.index import (
    LexicalIndex,
    NodeIndex,
    Reranker,
    build_node_space,
    char_ngrams,
    l2_normalize,
    npy_bytes,
    principal_components,
)
from spacy_text2node.linker_api import (
    build_linker_nlp,
    calibrate_linker,
    evaluate_phrases,
    link_phrases,
    map_phrases,
    train_linker,
)
from spacy_text2node.ml.mapper import PhraseMapperBiLSTM, PhraseMapperCNN, PhraseMapperMean, _find, set_mapper_dims
from spacy_text2node.pipeline.calibrate import calibration_table
from spacy_text2node.pipeline.search import MAP_CHUNK
from spacy_text2node.pipeline.settings import DEFAULT_LINKER_MODEL, SearchSettings
from spacy_text2node.vectors.pipeline import add_case_variants
from spacy_text2node.visualize import concept_url, render_links

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
VECTORS_TXT = FIXTURES / "linker_vectors.txt"
PAIRS = FIXTURES / "linker_pairs.jsonl"


def _node_vectors(tax, dim=8, seed=0):
    return np.random.default_rng(seed).normal(size=(len(tax), dim)).astype("float32")


def _examples(nlp, pairs, label="CONCEPT"):
    out = []
    for text, gold in pairs:
        gold = [gold] if isinstance(gold, str) else list(gold)
        ref = nlp.make_doc(text)
        ref.ents = [Span(ref, 0, len(ref), label=label, kb_id=gold[0])]
        ref.ents[0]._.text2node_gold = gold
        out.append(Example(nlp.make_doc(text), ref))
    return out


def _leaf_linker(tax, word_vectors, **cfg):
    """A node2vec-space linker of the leaves of `tax`, 16 wide, linking whole docs."""
    return build_linker_nlp(
        tax, _node_vectors(tax), word_vectors, spans="doc", node_space="node2vec", width=16, candidates="leaves", **cfg
    )


def _tax_pairs(tax):
    return [(t, cid) for cid, t in tax.iter_texts()]


def _train_on_taxonomy(nlp, tax, epochs):
    """Train the linker on the taxonomy's own strings, without calibrating."""
    train = _examples(nlp, _tax_pairs(tax))
    train_linker(nlp, train, epochs=epochs, batch_size=16, learn_rate=0.01, show_progress=False, calibrate=False)


# --------------------------------------------------------------------------- index
def test_char_ngrams_char_wb():
    assert char_ngrams("Flu") == [" fl", "flu", "lu "]
    assert char_ngrams("a B") == [" a ", " b "]
    assert char_ngrams("...") == []


def test_node_space_weights():
    rng = np.random.default_rng(0)
    n2v, txt = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    s = build_node_space(n2v, txt, text_weight=0.25)
    assert s.shape == (6, 7)
    assert np.allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-5)
    # cosine in node space = 0.75 cos_node2vec + 0.25 cos_text
    a, b = l2_normalize(n2v), l2_normalize(txt)
    expect = 0.75 * a[0] @ a[1] + 0.25 * b[0] @ b[1]
    assert s[0] @ s[1] == pytest.approx(expect, abs=1e-5)
    with pytest.raises(ValueError):
        build_node_space(None, None)


def _lexical(tax):
    texts, sn = [], []
    for i, cid in enumerate(tax.ids):
        for t in tax.texts(cid):
            texts.append(t)
            sn.append(i)
    return LexicalIndex.build(texts, sn, len(tax), max_df=0.5)


def test_lexical_channel_finds_exact_and_near_exact(tiny_taxonomy):
    lex = _lexical(tiny_taxonomy)
    q = lex.transform(["Tuberculosis", "tuberculossis", "bronchial asthma"])
    cands = lex.retrieve(q, 3)
    assert tiny_taxonomy.id_at(cands[0][0]) == "TB"
    assert tiny_taxonomy.id_at(cands[1][0]) == "TB"
    assert tiny_taxonomy.id_at(cands[2][0]) == "ASTH"
    # exact cosine of a string with itself is 1, max over the node's strings
    s = lex.pair_scores(q, np.array([0, 2]), np.array([tiny_taxonomy.index("TB"), tiny_taxonomy.index("ASTH")]))
    assert s[0] == pytest.approx(1.0, abs=1e-5) and s[1] == pytest.approx(1.0, abs=1e-5)


def test_node_index_search_and_serialization(tiny_taxonomy, tmp_path):
    space = build_node_space(_node_vectors(tiny_taxonomy, 6), None)
    idx = NodeIndex(space, _lexical(tiny_taxonomy), n_trees=5)
    Y = space[[tiny_taxonomy.index("GOUT"), tiny_taxonomy.index("FLU")]]
    res = idx.search(Y, ["gout", "zzz"], k=3, fusion_weight=0.5)
    assert res[0][0][0] == tiny_taxonomy.index("GOUT")
    assert res[0][0][1] == pytest.approx(1.0, abs=1e-4)  # both channels agree fully
    assert res[1][0][0] == tiny_taxonomy.index("FLU")  # node channel alone
    assert all(a[1] >= b[1] for a, b in zip(res[0], res[0][1:]))
    # a zero vector uses only the lexical channel
    only_lex = idx.search(np.zeros((1, space.shape[1]), "float32"), ["podagra"], k=2)
    assert only_lex[0][0][0] == tiny_taxonomy.index("GOUT")
    assert only_lex[0][0][1] == pytest.approx(0.5, abs=1e-4)
    for restored in (NodeIndex.from_bytes(idx.to_bytes()), _disk_roundtrip(idx, tmp_path)):
        assert restored.search(Y, ["gout", "zzz"], k=3) == res
    with pytest.raises(ValueError, match="missing"):
        NodeIndex.from_disk(tmp_path / "nothing")


def _disk_roundtrip(idx, tmp_path):
    idx.to_disk(tmp_path / "idx")
    return NodeIndex.from_disk(tmp_path / "idx")


# --------------------------------------------------------------------------- mappers
@pytest.mark.parametrize("make", [PhraseMapperCNN, PhraseMapperBiLSTM, PhraseMapperMean])
def test_mapper_shapes_and_bytes(make):
    nlp = toy_vectors_nlp()
    docs = [nlp.make_doc("type 2 diabetes mellitus"), nlp.make_doc("flu"), nlp.make_doc("")]
    X = (docs, [(0, 0, 4), (0, 1, 3), (1, 0, 1), (2, 0, 0)])
    m = make(width=16, nO=7)
    m.initialize(X=X)
    Y, bp = m.begin_update(X)
    assert Y.shape == (4, 7) and np.isfinite(Y).all()
    bp(np.ones_like(Y))
    m2 = make(width=16)
    set_mapper_dims(m2, nI=17, nO=7)  # 16-d vectors + the no-vector column
    m2.from_bytes(m.to_bytes())
    assert np.allclose(m2.predict(X), m.predict(X))


@pytest.mark.parametrize("make", [PhraseMapperCNN, PhraseMapperBiLSTM, PhraseMapperMean])
def test_mapper_output_does_not_depend_on_the_batch(make):
    # a short span alone, and batched with a long one (padding must not leak into it)
    nlp = toy_vectors_nlp()
    short, long_ = nlp.make_doc("flu"), nlp.make_doc("type 2 diabetes mellitus with gout and flu")
    m = make(width=16, nO=7)
    m.initialize(X=([short, long_], [(0, 0, 1), (1, 0, len(long_))]))
    alone = m.predict(([short], [(0, 0, 1)]))
    batched = m.predict(([short, long_], [(0, 0, 1), (1, 0, len(long_))]))
    assert np.allclose(alone[0], batched[0], atol=1e-5)
    # and gradients still flow through every layer
    Y, bp = m.begin_update(([short, long_], [(0, 0, 1), (1, 0, len(long_))]))
    bp(np.ones_like(Y))


def test_training_steps_run_batched_products_and_prediction_rows(trained, monkeypatch):
    """A training step computes its products in one BLAS call per layer (`batched_products`),
    prediction a row at a time (batch-invariant scores); other threads are not switched."""
    import threading

    from spacy_text2node.ml.mapper import RowBlockOps, batched_products

    rng = np.random.default_rng(0)
    x, w = rng.random((37, 50), dtype=np.float32), rng.random((50, 20), dtype=np.float32)
    ops = RowBlockOps()
    rows = ops.gemm(x, w)
    np.testing.assert_array_equal(rows, np.stack([ops.gemm(r[None], w)[0] for r in x]))
    with batched_products():
        np.testing.assert_array_equal(ops.gemm(x, w), x @ w)
        other: list = []
        t = threading.Thread(target=lambda: other.append(getattr(RowBlockOps._state, "batched", False)))
        t.start()
        t.join()
        assert other == [False]
    assert not getattr(RowBlockOps._state, "batched", False)

    seen: list = []
    gemm = RowBlockOps.gemm

    def recording(self, x, y, **kw):
        if not kw.get("trans1"):
            seen.append(getattr(RowBlockOps._state, "batched", False))
        return gemm(self, x, y, **kw)

    monkeypatch.setattr(RowBlockOps, "gemm", recording)
    nlp, examples = trained
    nlp.update(examples[:4], sgd=Adam(0.001))
    assert seen and all(seen)
    seen.clear()
    nlp.get_pipe("text2node_linker").cfg["cache_size"] = 0
    link_phrases(nlp, [eg.reference.text for eg in examples[:4]])
    assert seen and not any(seen)


def test_bilstm_without_torch_names_the_fix(monkeypatch):
    # torch is an optional dependency: a pipeline with the CNN or mean mapper never imports it
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match="pip install torch"):
        PhraseMapperBiLSTM(width=16)
    nlp = toy_vectors_nlp()
    X = ([nlp.make_doc("type 2 diabetes")], [(0, 0, 3)])
    for make in (PhraseMapperMean, PhraseMapperCNN):  # the other mappers build and run without torch
        m = make(width=16, nO=5)
        m.initialize(X=X)
        assert m.predict(X).shape == (1, 5)


def test_mapper_truncates_long_spans():
    nlp = toy_vectors_nlp()
    doc = nlp.make_doc(" ".join(["flu"] * 500 + ["gout"]))
    m = PhraseMapperCNN(width=16, nO=5, max_tokens=8)
    m.initialize(X=([doc], [(0, 0, len(doc))]))
    a = m.predict(([doc], [(0, 0, len(doc))]))
    b = m.predict(([doc], [(0, 0, 8)]))
    assert np.allclose(a, b)


# --------------------------------------------------------------------------- component
TRAINED_CONFIG = {
    "spans": {"@misc": "spacy-text2node.ents_getter.v1"},
    "search": {"threshold": 0.2},
    "model": {"@architectures": "spacy-text2node.PhraseMapperCNN.v1", "width": 32, "depth": 1},
}


@pytest.fixture(scope="module")
def trained_pipeline(tiny_taxonomy):
    """A linker trained with nlp.update until it fits the tiny taxonomy's strings, as
    (config, bytes): tests get their own copy (`trained`)."""
    fix_random_seed(0)
    nlp = toy_vectors_nlp()
    nlp.add_pipe("text2node_entity_linker", name="text2node_linker", config=TRAINED_CONFIG)
    examples = _examples(nlp, _tax_pairs(tiny_taxonomy))
    linker = nlp.get_pipe("text2node_linker")
    linker.initialize(lambda: examples, nlp=nlp, taxonomy=tiny_taxonomy, node_vectors=_node_vectors(tiny_taxonomy))
    optimizer = Adam(0.01)
    for _ in range(60):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    assert losses["text2node_linker"] < 5.0
    return nlp.config, nlp.to_bytes()


@pytest.fixture
def trained(trained_pipeline, tiny_taxonomy):
    """A fresh copy of the trained linker and its examples for each test (tests change
    its settings and train it further)."""
    config, data = trained_pipeline
    nlp = spacy.util.load_model_from_config(config, auto_fill=False, validate=False)
    nlp.from_bytes(data)
    return nlp, _examples(nlp, _tax_pairs(tiny_taxonomy))


def _linked(nlp, texts):
    out = []
    for doc in nlp.pipe(texts):
        out.append([(e.kb_id_, e._.text2node_candidates) for e in doc.ents])
    return out


def _gold_doc(nlp, text, start, end, label="DISEASE"):
    doc = nlp.make_doc(text)
    doc.ents = [Span(doc, start, end, label=label)]
    return doc


def test_overfitting_IO(trained, tiny_taxonomy, tmp_path):
    nlp, examples = trained
    linker = nlp.get_pipe("text2node_linker")
    # the mapper alone (no lexical channel) has learned every training string
    linker.cfg["fusion_weight"] = 1.0
    scores = evaluate_phrases(nlp, examples)
    assert scores["acc@1"] == 1.0
    linker.cfg["fusion_weight"] = 0.5
    docs = [_gold_doc(nlp, "Patient with juvenile diabetes and gout", 2, 4), _gold_doc(nlp, "history of COPD", 2, 3)]
    docs = [linker(d) for d in docs]
    assert docs[0].ents[0].kb_id_ == "T1DM"
    assert docs[0].ents[0]._.text2node_candidates[0][:2] == ("T1DM", "Type 1 diabetes mellitus")
    assert docs[1].ents[0].kb_id_ == "COPD"
    cands = [d.ents[0]._.text2node_candidates for d in docs]
    nlp.to_disk(tmp_path / "linker")
    nlp2 = spacy.load(tmp_path / "linker")
    l2 = nlp2.get_pipe("text2node_linker")
    docs2 = [
        l2(_gold_doc(nlp2, "Patient with juvenile diabetes and gout", 2, 4)),
        l2(_gold_doc(nlp2, "history of COPD", 2, 3)),
    ]
    assert [d.ents[0]._.text2node_candidates for d in docs2] == cands
    # bytes round trip too
    nlp3 = spacy.blank("en")
    nlp3.add_pipe(
        "text2node_linker",
        config={"model": {"@architectures": "spacy-text2node.PhraseMapperCNN.v1", "width": 32, "depth": 1}},
    )
    nlp3.from_bytes(nlp.to_bytes())
    d3 = nlp3.get_pipe("text2node_linker")(_gold_doc(nlp3, "history of COPD", 2, 3))
    assert d3.ents[0]._.text2node_candidates == cands[1]
    # nlp.evaluate reports the linker's scores on gold entities (predicted docs get them too)
    eval_examples = []
    for eg in examples[:10]:
        pred = eg.predicted.copy()
        pred.ents = [Span(pred, 0, len(pred), label="CONCEPT")]
        eval_examples.append(Example(pred, eg.reference))
    scores = nlp.evaluate(eval_examples)
    for key in ("text2node_acc@1", "text2node_acc@5", "text2node_mrr", "text2node_tree_distance", "text2node_nil_rate"):
        assert key in scores
    assert scores["text2node_acc@1"] == 1.0
    assert scores["text2node_tree_distance"] == 0.0
    # nlp.pipe agrees with nlp(...)
    texts = ["Influenza", "grippe", "adult-onset diabetes"]
    piped = [linker(d) for d in [_gold_doc(nlp, t, 0, len(nlp.make_doc(t))) for t in texts]]
    single = [linker(_gold_doc(nlp, t, 0, len(nlp.make_doc(t)))) for t in texts]
    assert [d.ents[0]._.text2node_candidates for d in piped] == [d.ents[0]._.text2node_candidates for d in single]
    batch = list(linker.pipe([_gold_doc(nlp, t, 0, len(nlp.make_doc(t))) for t in texts]))
    assert [d.ents[0]._.text2node_candidates for d in batch] == [d.ents[0]._.text2node_candidates for d in single]


def test_nil_on_punctuation_unknown_and_empty(trained):
    nlp, _ = trained
    linker = nlp.get_pipe("text2node_linker")
    for text in ["...", "!!! ??", "zqxv blorptang", "qqqqqqqq"]:
        doc = linker(_gold_doc(nlp, text, 0, len(nlp.make_doc(text))))
        assert doc.ents[0].kb_id_ == ""
        assert doc.ents[0]._.text2node_candidates == []
    assert len(linker(nlp.make_doc("")).ents) == 0  # no spans: nothing to do
    long_text = " ".join(["influenza"] * 2000)
    doc = linker(_gold_doc(nlp, long_text, 0, 2000))
    assert doc.ents[0].kb_id_ == "FLU"


def test_gold_not_in_taxonomy_raises(trained):
    nlp, _ = trained
    bad = _examples(nlp, [("influenza", "NOT_A_CONCEPT")])
    with pytest.raises(ValueError, match="NOT_A_CONCEPT"):
        nlp.update(bad, sgd=Adam(0.001))


def test_requires_taxonomy(tiny_taxonomy):
    nlp = toy_vectors_nlp()
    linker = nlp.add_pipe("text2node_linker")
    with pytest.raises(ValueError, match="taxonomy"):
        linker(nlp.make_doc("flu"))
    with pytest.raises(ValueError, match="taxonomy"):
        linker.initialize(lambda: _examples(nlp, [("flu", "FLU")]), nlp=nlp)
    with pytest.raises(ValueError, match="node_vectors has shape"):
        linker.initialize(
            lambda: _examples(nlp, [("flu", "FLU")]),
            nlp=nlp,
            taxonomy=tiny_taxonomy,
            node_vectors=np.zeros((3, 4), "float32"),
        )


def test_span_group_and_doc_modes(trained, tmp_path):
    nlp, _ = trained
    linker = nlp.get_pipe("text2node_linker")
    old = linker.cfg["spans"]
    try:
        linker.cfg["spans"] = "spans:sc"
        doc = nlp.make_doc("gout and flu")
        doc.spans["sc"] = [Span(doc, 0, 1, label="X"), Span(doc, 2, 3, label="X")]
        doc = linker(doc)
        assert [s.kb_id_ for s in doc.spans["sc"]] == ["GOUT", "FLU"]
        assert doc.spans["sc"][1]._.text2node_candidates[0][0] == "FLU"
        linker.cfg["spans"] = "doc"
        doc = linker(nlp.make_doc("bronchial asthma"))
        assert [(e.label_, e.kb_id_) for e in doc.ents] == [("CONCEPT", "ASTH")]
    finally:
        linker.cfg["spans"] = old


def test_link_phrases_matches_component(trained):
    nlp, _ = trained
    linker = nlp.get_pipe("text2node_linker")
    phrases = ["juvenile diabetes", "lung infection", "...", "high cholesterol level", "coronavirus"]
    fast = link_phrases(nlp, phrases, k=5, batch_size=2)
    slow = []
    for p in phrases:
        doc = linker(_gold_doc(nlp, p, 0, len(nlp.make_doc(p))))
        slow.append([(c[0], c[2]) for c in doc.ents[0]._.text2node_candidates])
    assert fast == slow
    assert fast[0][0][0] == "T1DM" and fast[2] == []


def test_map_phrases_is_the_mapper_on_each_whole_phrase(trained):
    nlp, _ = trained
    linker = nlp.get_pipe("text2node_linker")
    phrases = ["juvenile diabetes", "lung infection", "...", "high cholesterol level"]
    Y = map_phrases(nlp, phrases, batch_size=3)
    docs = [nlp.make_doc(p) for p in phrases]
    one_by_one = np.concatenate([linker.map_spans([d], [(0, 0, len(d))]) for d in docs])
    assert Y.shape == (4, one_by_one.shape[1]) and Y.dtype == np.float32
    assert np.array_equal(Y, one_by_one)  # rows do not depend on the batch they are mapped in
    assert not Y[2].any() and Y[0].any()  # "..." has no known word: a zero row
    assert map_phrases(nlp, []).shape == (0, Y.shape[1])
    with pytest.raises(TypeError, match=r"\['flu'\]"):
        map_phrases(nlp, "flu")


def test_search_in_chunks_gives_the_same_ranking(trained, monkeypatch):
    import spacy_text2node.pipeline.search as linker_mod

    nlp, _ = trained
    linker = nlp.get_pipe("text2node_linker")
    phrases = ["flu", "type 2 diabetes", "lung infection", "...", "asthma attack", "gout", "high cholesterol"]
    monkeypatch.setitem(linker.cfg, "cache_size", 0)
    whole = link_phrases(nlp, phrases, k=3)
    monkeypatch.setattr(linker_mod, "SEARCH_CHUNK", 2)
    assert link_phrases(nlp, phrases, k=3) == whole


def test_full_result_cache_is_emptied_without_losing_a_batch_result(trained, monkeypatch):
    """A batch that fills the cache empties it: the batch's texts found in the cache before
    must still come back (a long bulk run crashed with a KeyError on such a text)."""
    nlp, _ = trained
    linker = nlp.get_pipe("text2node_linker")
    monkeypatch.setitem(linker.cfg, "cache_size", 0)
    fresh = link_phrases(nlp, ["flu", "gout", "asthma attack", "lung infection"], k=3)
    monkeypatch.setitem(linker.cfg, "cache_size", 3)
    linker.results_changed()
    assert link_phrases(nlp, ["flu", "gout"], k=3) == fresh[:2]  # both cached
    # one cached text and two new ones: 2 + 2 > 3 empties the cache
    got = link_phrases(nlp, ["flu", "asthma attack", "lung infection", "gout"], k=3)
    assert got == [fresh[0], fresh[2], fresh[3], fresh[1]]


def test_threads_give_the_same_ranking(trained, monkeypatch):
    import spacy_text2node.pipeline.search as linker_mod

    nlp, _ = trained
    linker = nlp.get_pipe("text2node_linker")
    phrases = ["flu", "type 2 diabetes", "lung infection", "...", "asthma attack", "gout", "high cholesterol"] * 3
    monkeypatch.setitem(linker.cfg, "cache_size", 0)
    monkeypatch.setattr(linker_mod, "SEARCH_CHUNK", 2)
    monkeypatch.setitem(linker.cfg, "n_threads", 1)
    one = link_phrases(nlp, phrases, k=3)
    used = []
    real_pool = linker_mod.ThreadPoolExecutor

    def pool(n, **kwargs):
        used.append(n)
        return real_pool(n, **kwargs)

    monkeypatch.setattr(linker_mod, "ThreadPoolExecutor", pool)
    monkeypatch.setitem(linker.cfg, "n_threads", 3)
    assert link_phrases(nlp, phrases, k=3) == one
    assert used == [3]  # the chunks really went to a pool of three threads


def test_a_phrase_links_the_same_alone_and_in_a_batch(trained, monkeypatch):
    # exact scores, not just the order: bulk runs with other batch sizes or worker
    # processes must write identical records
    nlp, _ = trained
    monkeypatch.setitem(nlp.get_pipe("text2node_linker").cfg, "cache_size", 0)
    phrases = ["flu", "type 2 diabetes", "lung infection", "asthma attack", "gout", "high cholesterol"] * 4
    batch = link_phrases(nlp, phrases, k=3)
    assert [link_phrases(nlp, [p], k=3)[0] for p in phrases[:6]] == batch[:6]


def test_runtime_settings_come_from_the_config_not_the_saved_cfg(trained, tmp_path):
    nlp, _ = trained
    nlp.to_disk(tmp_path / "p")
    saved = spacy.load(tmp_path / "p").get_pipe("text2node_linker").cfg
    assert saved["n_threads"] == 0 and saved["cache_size"] == nlp.get_pipe("text2node_linker").cfg["cache_size"]
    over = {"components": {"text2node_linker": {"runtime": {"n_threads": 1, "cache_size": 7}}}}
    cfg = spacy.load(tmp_path / "p", config=over).get_pipe("text2node_linker").cfg
    assert cfg["n_threads"] == 1 and cfg["cache_size"] == 7
    assert cfg["ann_candidates"] == saved["ann_candidates"]  # the rest is the saved cfg


def test_a_pipeline_with_the_flat_settings_factory_loads_and_links_the_same(trained, tmp_path):
    # pipelines saved before the settings blocks name factory "text2node_linker" with flat settings
    nlp, _ = trained
    phrases = ["juvenile diabetes", "lung infection", "obesity", "grippe"]
    legacy = toy_vectors_nlp()
    model = {"@architectures": "spacy-text2node.PhraseMapperCNN.v1", "width": 32, "depth": 1}
    legacy.add_pipe("text2node_linker", config={"spans": "ents", "threshold": 0.2, "model": model})
    legacy.from_bytes(nlp.to_bytes())
    assert legacy.config["components"]["text2node_linker"]["factory"] == "text2node_linker"
    assert legacy.get_pipe("text2node_linker").cfg == nlp.get_pipe("text2node_linker").cfg
    legacy.to_disk(tmp_path / "legacy")
    over = {"components": {"text2node_linker": {"n_threads": 1, "cache_size": 7}}}  # flat, as before
    loaded = spacy.load(tmp_path / "legacy", config=over)
    assert loaded.get_pipe("text2node_linker").cfg["n_threads"] == 1
    assert link_phrases(loaded, phrases) == link_phrases(nlp, phrases)


def test_settings_blocks_are_validated():
    nlp = spacy.blank("en")
    with pytest.raises(SettingsError, match=r"unknown setting\(s\) kk in \[search\]"):
        nlp.add_pipe("text2node_entity_linker", config={"search": {"kk": 1}})
    with pytest.raises(SettingsError, match=r"\[index\] node_space='x'"):
        nlp.add_pipe("text2node_entity_linker", config={"index": {"node_space": "x"}})
    with pytest.raises(SettingsError, match=r"\[search\] k='5' must be a whole number"):
        nlp.add_pipe("text2node_entity_linker", config={"search": {"k": "5"}})
    with pytest.raises(ValueError, match="spans='nope'"):
        nlp.add_pipe("text2node_entity_linker", config={"spans": "nope"})
    getter = {"@misc": "spacy-text2node.span_group_getter.v1", "key": "sc"}
    assert nlp.add_pipe("text2node_entity_linker", config={"spans": getter}).cfg["spans"] == "spans:sc"


def test_negative_threads_are_refused():
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="n_threads=-1"):
        nlp.add_pipe("text2node_linker", config={"n_threads": -1})
    with pytest.raises(ValueError, match="n_threads=-1"):
        nlp.add_pipe("text2node_entity_linker", config={"runtime": {"n_threads": -1}})


def test_new_process_gives_identical_candidates(trained, tmp_path):
    nlp, _ = trained
    nlp.to_disk(tmp_path / "p")
    phrases = ["juvenile diabetes", "lung infection", "obesity", "grippe"]
    here = link_phrases(nlp, phrases)
    code = (
        "import json, sys, spacy\n"
        "from spacy_text2node.linker_api import link_phrases\n"
        f"nlp = spacy.load({str(tmp_path / 'p')!r})\n"
        f"print(json.dumps(link_phrases(nlp, {phrases!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    there = json.loads(out.stdout.strip().splitlines()[-1])
    assert [[tuple(c) for c in r] for r in there] == here


# --------------------------------------------------------------------------- API
def test_api_build_train_calibrate(tiny_taxonomy):
    src = toy_vectors_nlp()
    nlp = build_linker_nlp(
        tiny_taxonomy,
        _node_vectors(tiny_taxonomy),
        src,
        spans="doc",
        architecture="mean",
        node_space="node2vec",
        width=32,
        k=3,
    )
    assert nlp.pipe_names == ["text2node_linker"]
    linker = nlp.get_pipe("text2node_linker")
    assert linker.index.space.shape == (len(tiny_taxonomy), 8)  # node2vec only
    train = _examples(nlp, _tax_pairs(tiny_taxonomy))
    dev = _examples(
        nlp, [("flu", "FLU"), ("grippe", "FLU"), ("diabetes type 1", "T1DM"), ("lung disease", ["RESP", "PNEU"])]
    )
    train_linker(nlp, train, dev, epochs=40, batch_size=16, learn_rate=0.01, show_progress=False)
    assert 0.0 <= linker.cfg["fusion_weight"] <= 1.0
    s = evaluate_phrases(nlp, dev)
    assert s["acc@1"] >= 0.75
    ranked = link_phrases(nlp, ["flu"], k=3)
    assert len(ranked[0]) <= 3 and ranked[0][0][0] == "FLU"
    nlp2 = build_linker_nlp(
        tiny_taxonomy,
        _node_vectors(tiny_taxonomy),
        src,
        spans="doc",
        architecture="cnn",
        node_space="node2vec+text",
        width=32,
    )
    assert nlp2.get_pipe("text2node_linker").index.space.shape == (len(tiny_taxonomy), 8 + 16)
    with pytest.raises(ValueError, match="architecture"):
        build_linker_nlp(tiny_taxonomy, None, src, spans="doc", architecture="transformer")


def test_calibration_learns_to_trust_lexical_when_mapper_untrained(tiny_taxonomy, tmp_path):
    src = toy_vectors_nlp()
    nlp = build_linker_nlp(
        tiny_taxonomy, _node_vectors(tiny_taxonomy), src, spans="doc", node_space="node2vec", width=16
    )
    linker = nlp.get_pipe("text2node_linker")
    linker.cfg["fusion_weight"] = 1.0  # node channel only: an untrained mapper is noise
    dev = _examples(nlp, [*CALIBRATION_PAIRS, ("Podagra", "GOUT")])
    test = _examples(
        nlp,
        [
            ("diabetes type 2", "T2DM"),
            ("influenzas", "FLU"),
            ("obesities", "OBES"),
            ("lung infections", "PNEU"),
            ("juvenile diabetes mellitus", "T1DM"),
        ],
    )
    before = evaluate_phrases(nlp, test)["mrr"]
    info = calibrate_linker(nlp, dev)
    assert (
        info["given"] == 9 and info["queries"] == 8 and info["w_lexical"] > info["w_node"]
    )  # "Podagra" is a taxonomy string
    assert info["acc@1_after"] >= info["acc@1_before"]
    after = evaluate_phrases(nlp, test)
    assert after["mrr"] > before and after["acc@1"] >= 0.8
    assert linker.cfg["calibrated"] and linker.index.reranker is not None
    # the reranker travels with the pipeline
    nlp.to_disk(tmp_path / "p")
    again = spacy.load(tmp_path / "p")
    phrases = ["diabetes type 2", "influenzas", "podagra"]
    a, b = link_phrases(again, phrases), link_phrases(nlp, phrases)
    assert [[c for c, _ in r] for r in a] == [[c for c, _ in r] for r in b]
    assert np.allclose([s for r in a for _, s in r], [s for r in b for _, s in r], atol=1e-6)
    with pytest.raises(ValueError, match="not in taxonomy"):
        calibrate_linker(nlp, _examples(nlp, [("flu", "NOPE")]))


def _mapped_strings(nlp, linker, texts):
    docs = [nlp.make_doc(t) for t in texts]
    return l2_normalize(linker.map_spans(docs, [(i, 0, len(d)) for i, d in enumerate(docs)]))


def test_calibration_maps_the_taxonomy_strings_for_the_siamese_feature(tiny_taxonomy, tmp_path):
    src = toy_vectors_nlp()
    nlp = build_linker_nlp(
        tiny_taxonomy, _node_vectors(tiny_taxonomy), src, spans="doc", node_space="node2vec", width=16
    )
    linker = nlp.get_pipe("text2node_linker")
    examples = _examples(nlp, _tax_pairs(tiny_taxonomy))
    train_linker(nlp, examples, epochs=5, batch_size=16, learn_rate=0.01, show_progress=False, calibrate=False)
    assert linker.index.strings is None  # only a calibration maps them
    info = calibrate_linker(nlp, _examples(nlp, CALIBRATION_PAIRS))
    texts, nodes = tiny_taxonomy.strings()

    def stored():
        return linker.index.strings * linker.index.strings_scale[:, None]

    S = stored()
    assert linker.index.strings.dtype == np.int8 and S.shape == (len(texts), linker.index.dim) and "w_siamese" in info
    assert np.allclose(S, _mapped_strings(nlp, linker, texts), atol=1e-2)  # each string mapped alone
    # the feature is the best cosine with the node's strings; calibration leaves the
    # query's own string out (else the mapper's own output would score its concept 1)
    docs = [nlp.make_doc(t) for t in texts]
    offsets = [(i, 0, len(d)) for i, d in enumerate(docs)]
    t, _ = calibration_table(linker, docs, offsets, texts, [[int(n)] for n in nodes])
    own = t.ni == nodes[t.qi]
    single = np.bincount(nodes, minlength=len(tiny_taxonomy))[t.ni] == 1
    assert (own & single).any() and not t.siamese[own & single].any()
    Y = l2_normalize(linker.map_spans(docs, offsets))
    full = linker.index.pair_table(Y, texts, allowed=None)
    mine = full.ni == nodes[full.qi]
    assert np.allclose(full.siamese[mine], 1.0, atol=1e-2)
    # a training step makes the strings stale: a search (here the KB's) or a save maps them
    # again with the current mapper first
    optimizer = Adam(0.05)
    linker.update(examples[:8], sgd=optimizer)
    doc = nlp.make_doc("influenzas")
    assert linker.kb.get_candidates(doc[0:1])
    fresh = _mapped_strings(nlp, linker, texts)
    assert not np.allclose(S, fresh, atol=1e-2) and np.allclose(stored(), fresh, atol=1e-2)
    linker.update(examples[8:16], sgd=optimizer)
    nlp.to_disk(tmp_path / "p")
    again_fresh = _mapped_strings(nlp, linker, texts)
    assert not np.allclose(fresh, again_fresh, atol=1e-2) and np.allclose(stored(), again_fresh, atol=1e-2)
    again = spacy.load(tmp_path / "p")
    assert np.array_equal(again.get_pipe("text2node_linker").index.strings, linker.index.strings)
    phrases = ["diabetes type 2", "influenzas", "podagra"]
    assert link_phrases(again, phrases) == link_phrases(nlp, phrases)


def test_parameter_averages_link_and_save_with_the_strings_and_results_of_the_averaged_mapper(tiny_taxonomy, tmp_path):
    # spacy train with use_averages evaluates and saves inside nlp.use_params(averages): the
    # cached results and the mapped strings must follow the swapped weights, both ways
    nlp = build_linker_nlp(
        tiny_taxonomy, _node_vectors(tiny_taxonomy), toy_vectors_nlp(), spans="doc", node_space="node2vec", width=16
    )
    linker = nlp.get_pipe("text2node_linker")
    examples = _examples(nlp, _tax_pairs(tiny_taxonomy))
    train_linker(nlp, examples, epochs=2, batch_size=16, learn_rate=0.01, show_progress=False, calibrate=False)
    calibrate_linker(nlp, _examples(nlp, CALIBRATION_PAIRS), siamese=True)
    texts, _ = tiny_taxonomy.strings()
    optimizer = Adam(0.05, use_averages=True)
    for a in range(0, 48, 8):
        linker.update(examples[a : a + 8], sgd=optimizer)
    phrases = ["diabetes type 2", "influenzas", "podagra", "gout", "flu"]

    def stored():
        return linker.index.strings * linker.index.strings_scale[:, None]

    def uncached():
        linker.cfg["cache_size"], size = 0, linker.cfg["cache_size"]
        try:
            return link_phrases(nlp, phrases)
        finally:
            linker.cfg["cache_size"] = size

    link_phrases(nlp, phrases)  # maps the strings (stale after the updates)
    own = link_phrases(nlp, phrases)  # fills the results cache
    assert linker._results
    own_strings = stored()
    with nlp.use_params(optimizer.averages):
        averaged = link_phrases(nlp, phrases)
        assert averaged == uncached() and averaged != own
        assert np.allclose(stored(), _mapped_strings(nlp, linker, texts), atol=1e-2)
        assert not np.allclose(stored(), own_strings, atol=1e-2)
        nlp.to_disk(tmp_path / "p")
    assert link_phrases(nlp, phrases) == own == uncached()
    assert np.allclose(stored(), _mapped_strings(nlp, linker, texts), atol=1e-2)
    assert link_phrases(spacy.load(tmp_path / "p"), phrases) == averaged


HASH_EMBED = {
    "@architectures": "spacy.MultiHashEmbed.v2",
    "width": 16,
    "attrs": ["NORM", "PREFIX", "SUFFIX"],
    "rows": [200, 50, 50],
    "include_static_vectors": True,
}


DOCS_EMBEDDED: list = []


@spacy.registry.architectures("test.DocCountingEmbed.v1")
def _doc_counting_embed() -> Model:
    """A MultiHashEmbed that records how many docs each call embeds (DOCS_EMBEDDED)."""

    def forward(model, docs, is_train):
        DOCS_EMBEDDED.append(len(docs))
        return docs, lambda d: d

    return chain(Model("count_docs", forward), MultiHashEmbed(16, ["NORM"], [100], include_static_vectors=True))


def test_an_embed_mapper_is_context_free_maps_its_strings_and_links_the_same_after_loading(tiny_taxonomy, tmp_path):
    nlp = _leaf_linker(tiny_taxonomy, toy_vectors_nlp(), embed=dict(HASH_EMBED))
    linker = nlp.get_pipe("text2node_linker")
    embed = _find(linker.model, "t2n_span_embed").layers[0]
    before = embed.to_bytes()
    _train_on_taxonomy(nlp, tiny_taxonomy, epochs=3)
    assert embed.to_bytes() != before  # its tables and mixing layer were trained
    assert linker._context_free_mapper()
    calibrate_linker(nlp, _examples(nlp, CALIBRATION_PAIRS), siamese=True)
    assert linker.index.strings is not None  # the siamese feature's strings were mapped
    phrases = ["diabetes type 2", "influenzas", "podagra", "gout", "flu", "..."]
    # a phrase maps the same alone as among others: what the results cache and chunks rely on
    alone = np.concatenate([map_phrases(nlp, [p]) for p in phrases])
    assert np.allclose(map_phrases(nlp, phrases), alone, atol=1e-5)
    assert not alone[-1].any()  # no word vector: a zero row, linked by the lexical channel alone
    linked = link_phrases(nlp, phrases)
    nlp.to_disk(tmp_path / "p")
    assert link_phrases(spacy.load(tmp_path / "p"), phrases) == linked
    # a batch of nothing but empty phrases: NIL, not a crash in the embed
    assert link_phrases(nlp, ["", " "]) == [[], []]
    assert not map_phrases(nlp, [""]).any()


def test_an_embed_mapper_maps_from_its_kept_token_rows_what_it_maps_without_them(tiny_taxonomy):
    nlp = _leaf_linker(tiny_taxonomy, toy_vectors_nlp(), embed=dict(HASH_EMBED))
    linker = nlp.get_pipe("text2node_linker")
    _train_on_taxonomy(nlp, tiny_taxonomy, epochs=2)
    texts = [t for _, t in tiny_taxonomy.iter_texts()] + ["Gout gout GOUT", "", "...", "influenza " * 40]
    docs = [nlp.make_doc(t) for t in texts]
    offsets = [(i, 0, len(d)) for i, d in enumerate(docs)]

    def uncached():
        return linker.map_spans(docs, offsets, cached=False)

    first = linker.map_spans(docs, offsets)  # fills the kept rows
    assert linker._token_inputs._index
    assert np.array_equal(first, uncached())
    assert np.array_equal(linker.map_spans(docs, offsets), first)  # every form kept: the embed does not run
    # an optimizer step changes the weights: the kept rows are dropped, not reused
    train = _examples(nlp, _tax_pairs(tiny_taxonomy))
    linker.update(train[:8], sgd=Adam(0.05))
    assert not np.array_equal(linker.map_spans(docs, offsets), first)
    assert np.array_equal(linker.map_spans(docs, offsets), uncached())


def test_an_embed_with_static_vectors_refuses_a_table_looked_up_by_lower_case_which_loading_would_change(
    tiny_taxonomy, tmp_path
):
    # spaCy does not save a table's lookup attribute: a LOWER table maps otherwise once loaded
    from spacy_text2node.vectors import build_vectors_pipeline

    src = toy_vectors_nlp()
    words = [src.vocab.strings[k] for k in src.vocab.vectors.keys()]
    matrix = np.stack([src.vocab.get_vector(w) for w in words])
    lower = build_vectors_pipeline(words, matrix, lowercase=True, subwords=None)
    with pytest.raises(ValueError, match="looks tokens up by LOWER"):
        _leaf_linker(tiny_taxonomy, lower, embed=dict(HASH_EMBED))
    # keyed by exact forms with the case variants: the same links before and after loading
    exact = build_vectors_pipeline(words, matrix, lowercase=False, subwords=None)
    add_case_variants(exact.vocab.vectors, words)
    nlp = _leaf_linker(tiny_taxonomy, exact, embed=dict(HASH_EMBED))
    _train_on_taxonomy(nlp, tiny_taxonomy, epochs=2)
    phrases = ["Gout", "INFLUENZA", "diabetes Type 2"]
    nlp.to_disk(tmp_path / "p")
    assert np.array_equal(map_phrases(spacy.load(tmp_path / "p"), phrases), map_phrases(nlp, phrases))


def test_an_embed_mapper_embeds_only_the_docs_of_each_chunk_it_maps(tiny_taxonomy):
    seen = DOCS_EMBEDDED
    nlp = _leaf_linker(tiny_taxonomy, toy_vectors_nlp(), embed={"@architectures": "test.DocCountingEmbed.v1"})
    linker = nlp.get_pipe("text2node_linker")
    texts = [t for _, t in tiny_taxonomy.iter_texts()] * 10
    docs = [nlp.make_doc(t) for t in texts]
    seen.clear()
    Y = linker.map_spans_in_chunks(docs, [(i, 0, len(d)) for i, d in enumerate(docs)])
    # (chunks whose token forms were all seen before do not run the embed at all)
    assert Y.shape[0] == len(docs) and seen and max(seen) <= MAP_CHUNK < len(docs)


def test_a_mapper_takes_a_tok2vec_or_an_embed_not_both():
    with pytest.raises(ValueError, match="not both"):
        PhraseMapperCNN(
            tok2vec=MultiHashEmbed(8, ["NORM"], [10], False), embed=MultiHashEmbed(8, ["SHAPE"], [9], False)
        )


NOISE_WORDS = "patient history of severe mild acute chronic with had has the".split()


def _noisy_pairs(tax, seed, extra):
    """Each taxonomy string with its words shuffled, one left out and `extra` others added."""
    import random

    rng = random.Random(seed)
    out = []
    for text, cid in _tax_pairs(tax):
        words = text.lower().split()
        rng.shuffle(words)
        words = words[: max(1, len(words) - 1)] + rng.sample(NOISE_WORDS, extra)
        rng.shuffle(words)
        out.append((" ".join(words), cid))
    return out


def test_calibration_drops_the_siamese_feature_where_it_links_fewer_held_out_spans(tiny_taxonomy, tmp_path):
    src = toy_vectors_nlp()
    nlp = build_linker_nlp(
        tiny_taxonomy, _node_vectors(tiny_taxonomy), src, spans="doc", node_space="node2vec", width=16
    )
    linker = nlp.get_pipe("text2node_linker")
    _train_on_taxonomy(nlp, tiny_taxonomy, 5)

    def cv(info):
        return {float(k.split("=")[1]): v for k, v in info.items() if k.startswith("cv_acc@1_l2=")}

    phrases = ["diabetes type 2", "influenzas", "lung infections"]
    outcomes = set()
    for pairs in (
        [(" ".join(reversed(t.split())) + "s", cid) for t, cid in _tax_pairs(tiny_taxonomy)],
        _noisy_pairs(tiny_taxonomy, 2, 1),
        _noisy_pairs(tiny_taxonomy, 0, 1),  # last: a loss, so the feature ends dropped
    ):
        dev = _examples(nlp, pairs)
        on = calibrate_linker(nlp, dev, siamese=True)
        assert on["siamese"] == 1.0 and linker.index.strings is not None and "siamese_acc@1_with" not in on
        linked = {True: link_phrases(nlp, phrases)}
        off = calibrate_linker(nlp, dev, siamese=False)
        assert off["siamese"] == 0.0 and linker.index.strings is None and off["w_siamese"] == 0.0
        linked[False] = link_phrases(nlp, phrases)
        auto = calibrate_linker(nlp, dev)
        # the same folds: each choice's held-out acc@1 is the one its own calibration measured
        with_, without = auto["siamese_acc@1_with"], auto["siamese_acc@1_without"]
        assert with_ == max(cv(on).values()) and without == max(cv(off).values())
        kept = with_ >= without  # a tie keeps it
        assert auto["siamese"] == float(kept) and (linker.index.strings is not None) == kept
        assert cv(auto) == cv(on if kept else off) and auto["w_siamese"] == (on if kept else off)["w_siamese"]
        assert link_phrases(nlp, phrases) == linked[kept]
        outcomes.add((with_ > without) - (with_ < without))
    assert outcomes == {-1, 0, 1}  # these dev sets exercise a loss, a tie and a gain
    # a dropped feature stays dropped: nothing is saved, searches and saves do not map strings again
    nlp.to_disk(tmp_path / "p")
    again = spacy.load(tmp_path / "p")
    assert again.get_pipe("text2node_linker").index.strings is None
    assert link_phrases(again, phrases) == linked[False] == link_phrases(nlp, phrases)


def test_min_probability_leaves_unclear_spans_nil_in_a_calibrated_linker(tiny_taxonomy):
    src = toy_vectors_nlp()
    nlp = build_linker_nlp(
        tiny_taxonomy, _node_vectors(tiny_taxonomy), src, spans="doc", node_space="node2vec", width=16
    )
    linker = nlp.get_pipe("text2node_linker")
    phrases = ["diabetes type 2", "influenzas", "lung", "gout attack", "xqzt"]
    linker.cfg.update(cache_size=0, min_probability=0.9)
    uncalibrated = link_phrases(nlp, phrases, k=3)
    linker.cfg["min_probability"] = 0.0
    assert link_phrases(nlp, phrases, k=3) == uncalibrated  # without a reranker scores are no probabilities
    calibrate_linker(nlp, _examples(nlp, [*CALIBRATION_PAIRS, ("Podagra", "GOUT")]))
    full = link_phrases(nlp, phrases, k=3)
    best = [r[0][1] if r else None for r in full]
    cut = sorted(p for p in best if p is not None)[len([p for p in best if p is not None]) // 2]
    assert 0 < cut < 1  # some spans above it, some under
    linker.cfg["min_probability"] = cut
    got = link_phrases(nlp, phrases, k=3)
    assert got == [r if r and r[0][1] >= cut else [] for r in full]
    assert any(r == [] for r, f in zip(got, full) if f) and any(got)
    with pytest.raises(SettingsError, match=r"min_probability=1\.5 must be in \[0, 1\)"):
        SearchSettings(min_probability=1.5).check()
    # scoring the linker on gold mentions leaves none NIL for a low probability
    from spacy_text2node.cli.evaluate import _evaluate_documents
    from spacy_text2node.readers.linking import PubTatorCorpus

    def gold_scores(min_probability):
        linker.cfg["min_probability"] = min_probability
        examples = list(PubTatorCorpus(FIXTURES / "pubtator_tiny.txt", taxonomy_path=None)(nlp))
        scores = _evaluate_documents(nlp, examples, True)
        scores.pop("speed")
        return scores

    assert gold_scores(0.999) == gold_scores(0.0)
    assert linker.cfg["min_probability"] == 0.0 and linker.cfg["spans"] == "doc"  # restored
    linker.cfg["min_probability"] = 0.999
    assert all(r == [] or r[0][1] >= 0.999 for r in link_phrases(nlp, phrases, k=3))
    gold_scores(0.999)
    assert linker.cfg["min_probability"] == 0.999


def test_calibration_chooses_word_penalty_by_cross_validation(tiny_taxonomy):
    src = toy_vectors_nlp()
    nlp = build_linker_nlp(
        tiny_taxonomy, _node_vectors(tiny_taxonomy), src, spans="doc", node_space="node2vec", width=16
    )
    # reworded taxonomy strings (words reversed, plural): none is a taxonomy string
    pairs = [(" ".join(reversed(t.split())) + "s", cid) for t, cid in _tax_pairs(tiny_taxonomy)]
    assert len(pairs) >= 20
    info = calibrate_linker(nlp, _examples(nlp, pairs))
    from spacy_text2node.index import Reranker

    assert info["l2_words"] in Reranker.L2_GRID
    cv = {float(k.split("=")[1]): v for k, v in info.items() if k.startswith("cv_acc@1_l2=")}
    assert set(cv) == set(Reranker.L2_GRID) and all(0.0 <= v <= 1.0 for v in cv.values())
    assert cv[info["l2_words"]] == max(cv.values())
    # a fixed penalty skips the search
    info2 = calibrate_linker(nlp, _examples(nlp, pairs), l2_words=0.05)
    assert info2["l2_words"] == 0.05 and not any(k.startswith("cv_") for k in info2)


def test_calibration_chooses_word_penalty_on_selection_pairs(tiny_taxonomy):
    """With held-out selection pairs the penalty is the grid value whose reranker, fitted
    on all calibration pairs, links most selection pairs right (ties: the larger one);
    selection texts that are taxonomy strings are kept (their own strings left out)."""
    from spacy_text2node.index import Reranker

    src = toy_vectors_nlp()
    nlp = build_linker_nlp(
        tiny_taxonomy, _node_vectors(tiny_taxonomy), src, spans="doc", node_space="node2vec", width=16
    )
    pairs = [(" ".join(reversed(t.split())) + "s", cid) for t, cid in _tax_pairs(tiny_taxonomy)]
    select = [
        ("flu", "FLU"),
        ("grippe", "FLU"),
        ("podagra", "GOUT"),
        ("lung infections", "PNEU"),
        ("diabetes type 2", "T2DM"),
    ]
    info = calibrate_linker(nlp, _examples(nlp, pairs), select_examples=_examples(nlp, select))
    val = {float(k.split("=")[1]): v for k, v in info.items() if k.startswith("select_acc@1_l2=")}
    assert set(val) == set(Reranker.L2_GRID) and not any(k.startswith("cv_") for k in info)
    assert info["l2_words"] == max(l2 for l2, v in val.items() if v == max(val.values()))
    # the chosen penalty is the one the pipeline now uses: refitting with it scores the same
    linker = nlp.get_pipe("text2node_linker")
    chosen = linker.index.reranker
    again = calibrate_linker(nlp, _examples(nlp, pairs), l2_words=info["l2_words"])
    assert np.allclose(linker.index.reranker.dense, chosen.dense) and again["acc@1_after"] == info["acc@1_after"]
    # each grid value's selection acc@1, recomputed by hand, is what was reported
    docs = [nlp.make_doc(t) for t, _ in select]
    t, gold = calibration_table(
        linker,
        docs,
        [(i, 0, len(d)) for i, d in enumerate(docs)],
        [t for t, _ in select],
        [[tiny_taxonomy.index(c)] for _, c in select],
    )
    cal_docs = [nlp.make_doc(t) for t, _ in pairs]
    tc, gc = calibration_table(
        linker,
        cal_docs,
        [(i, 0, len(d)) for i, d in enumerate(cal_docs)],
        [t for t, _ in pairs],
        [[tiny_taxonomy.index(c)] for _, c in pairs],
    )
    init = Reranker.initial_dense(float(linker.cfg["fusion_weight"]))
    for l2, v in val.items():
        rr = Reranker.fit(tc, tc.bounds, gc, l2_words=l2, init=init)
        z = rr.score(t)
        best = [
            t.ni[a + int(np.lexsort((t.ni[a:e], -z[a:e]))[0])] if e > a else -1
            for a, e in zip(t.bounds[:-1], t.bounds[1:])
        ]
        assert len(best) == len(select)
        assert v == pytest.approx(sum(tiny_taxonomy.index(c) == b for (_, c), b in zip(select, best)) / len(select))
    with pytest.raises(ValueError, match="selection"):
        calibrate_linker(nlp, _examples(nlp, pairs), select_examples=[])


def test_take_queries_keeps_pairs_contiguous():
    from spacy_text2node.index import take_queries

    bounds = np.array([0, 2, 2, 5, 6])
    feats = {"a": np.arange(6.0), "m": sp.csr_matrix(np.eye(6, 3)), "bounds": bounds}
    gold = np.array([1, 0, 0, 0, 1, 1], dtype=bool)
    sub, b, g = take_queries(feats, bounds, gold, np.array([0, 2]))
    assert b.tolist() == [0, 2, 5] and sub["a"].tolist() == [0, 1, 2, 3, 4] and g.tolist() == [1, 0, 0, 0, 1]
    assert sub["m"].shape == (5, 3) and sub["bounds"].tolist() == [0, 2, 5]


def test_leave_out_exact_and_word_features(tiny_taxonomy):
    lex = _lexical(tiny_taxonomy)
    q = lex.transform(["Podagra", "gouts of lung"])
    qw, q_idf = lex.word_transform(["Podagra", "gouts of lung"])
    gout = tiny_taxonomy.index("GOUT")
    nodes = np.array([gout, gout])
    f = lex.pair_features(q, qw, q_idf, np.array([0, 1]), nodes)
    assert f.lexical[0] == pytest.approx(1.0, abs=1e-5) and f.recall[0] == pytest.approx(1.0)
    # "gouts of lung": the label "Gout" covers "gout" (stemmed) but not "of", "lung"; it has no extra word
    assert 0.0 < f.recall[1] < 1.0 and f.precision[1] == pytest.approx(1.0)
    assert f.query_only[1].nnz == 2 and f.label_only[1].nnz == 0
    loo = lex.pair_features(q, qw, q_idf, np.array([0, 1]), nodes, leave_out_exact=True)
    # "Podagra" itself is left out: GOUT is scored by its other string, "Gout"
    assert loo.lexical[0] < 0.5 and loo.lexical[1] == f.lexical[1]
    from spacy_text2node.index import word_set

    assert word_set("Fractures of ribs, injuries") == ["fracture", "injury", "of", "rib"]


def test_principal_components():
    rng = np.random.default_rng(0)
    # 3 informative directions in 10 dims, plus rows without any known word (zero)
    x = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 10)) + 0.01 * rng.normal(size=(200, 10))
    x[:5] = 0.0
    y = principal_components(x, 3)
    assert y.shape == (200, 3) and y.dtype == np.float32
    assert not y[:5].any()  # zero rows stay zero
    # 3 components keep the cosine geometry of the (centred, unit) rows
    u = l2_normalize(x[5:])
    u = u - u.mean(0)
    assert np.allclose(u @ u.T, y[5:] @ y[5:].T, atol=0.02)
    assert principal_components(x, 12).shape == (200, 10)  # dim at or above the width: unchanged
    with pytest.raises(ValueError, match="dim"):
        principal_components(x, 0)


def test_text_dim_shrinks_node_space_and_round_trips(tiny_taxonomy, tmp_path):
    src = toy_vectors_nlp()
    nlp = build_linker_nlp(
        tiny_taxonomy, _node_vectors(tiny_taxonomy), src, spans="doc", architecture="mean", width=16, text_dim=4, k=3
    )
    linker = nlp.get_pipe("text2node_linker")
    assert linker.index.space.shape == (len(tiny_taxonomy), 8 + 4)
    assert linker.cfg["nO"] == 12
    _train_on_taxonomy(nlp, tiny_taxonomy, 20)
    before = link_phrases(nlp, ["flu", "type 2 diabetes"], k=3)
    assert before[0][0][0] == "FLU"
    nlp.to_disk(tmp_path / "p")
    nlp2 = spacy.load(tmp_path / "p")
    assert nlp2.get_pipe("text2node_linker").cfg["text_dim"] == 4
    assert link_phrases(nlp2, ["flu", "type 2 diabetes"], k=3) == before
    with pytest.raises(ValueError, match="text_dim"):
        build_linker_nlp(tiny_taxonomy, None, src, spans="doc", architecture="mean", text_dim=-1)


def test_reranker_products_and_older_rerankers_load():
    rng = np.random.default_rng(0)
    n = 7
    feats = {k: rng.random(n).astype("float32") for k in Reranker.FEATURES}
    feats["label_only"] = feats["query_only"] = sp.csr_matrix((n, 3), dtype="float32")
    F = Reranker.dense_features(feats)
    assert F.shape == (n, Reranker.N_DENSE) and len(Reranker.dense_names()) == Reranker.N_DENSE
    assert np.allclose(F[:, Reranker.dense_names().index("lexical*node")], feats["lexical"] * feats["node"])
    assert Reranker.FEATURES[-1] == "siamese"

    def saved(dense):
        zeros = npy_bytes(np.zeros(3, "float32"))
        return Reranker.from_dict({"dense": npy_bytes(dense), "label_words": zeros, "query_words": zeros})

    # rerankers saved with the six plain weights, or with them and the products (before
    # "siamese"), score exactly as they did
    plain = np.stack([feats[k] for k in Reranker.FEATURES[:6]], axis=1)
    products = np.stack([feats[a] * feats[b] for a, b in Reranker.PRODUCTS], axis=1)
    w6 = rng.normal(size=6).astype("float32")
    assert np.allclose(saved(w6).score(feats), plain @ w6, atol=1e-6)
    w11 = rng.normal(size=11).astype("float32")
    assert np.allclose(saved(w11).score(feats), np.concatenate([plain, products], axis=1) @ w11, atol=1e-6)
    assert saved(w11).dense[6] == 0.0 and np.array_equal(saved(w11).dense[7:], w11[6:])
    with pytest.raises(ValueError, match="dense weights"):
        Reranker(np.zeros(4), np.zeros(3), np.zeros(3))


def test_candidates_leaves_only(tiny_taxonomy, tmp_path):
    src = toy_vectors_nlp()
    nlp = _leaf_linker(
        tiny_taxonomy,
        src,
        k=20,
        threshold=0.0,
    )
    leaves = {c for c in tiny_taxonomy.ids if tiny_taxonomy.is_leaf(c)}
    ranked = link_phrases(nlp, ["Disease", "Respiratory disease", "diabetes"], k=20)
    assert all(r and {c for c, _ in r} <= leaves for r in ranked)
    assert ranked[2][0][0] in {"T1DM", "T2DMC"}
    # the neighbour index holds only the leaves, and keeps doing so through a save and load
    linker = nlp.get_pipe("text2node_linker")
    assert {tiny_taxonomy.id_at(int(i)) for i in linker.index.ann_items} == leaves
    nlp.to_disk(tmp_path / "p")
    nlp2 = spacy.load(tmp_path / "p")
    assert link_phrases(nlp2, ["Disease", "Respiratory disease", "diabetes"], k=20) == ranked
    linker2 = nlp2.get_pipe("text2node_linker")
    assert np.array_equal(linker2.index.ann_items, linker.index.ann_items)
    assert NodeIndex.from_bytes(linker.index.to_bytes()).ann_items.tolist() == linker.index.ann_items.tolist()
    linker2.cfg["candidates"] = "all"
    with pytest.raises(ValueError, match="neighbour index holds only"):
        link_phrases(nlp2, ["diabetes"])
    with pytest.raises(ValueError, match="candidates"):
        build_linker_nlp(tiny_taxonomy, None, src, spans="doc", candidates="billable")


def test_linker_built_from_a_vectors_pipeline_with_subwords(tiny_taxonomy):
    # build_linker_nlp sources the text2node_vectors component from the vectors pipeline;
    # its hooks then see tokens of the linker's own vocab, whose strings the vectors
    # pipeline never stored (this used to raise KeyError E018 during training)
    from spacy_text2node.vectors import build_vectors_pipeline

    src = toy_vectors_nlp()
    words = [src.vocab.strings[k] for k in src.vocab.vectors.keys()]
    wv = build_vectors_pipeline(
        words, np.stack([src.vocab.get_vector(w) for w in words]), subwords="ngram", show_progress=False
    )
    nlp = build_linker_nlp(tiny_taxonomy, _node_vectors(tiny_taxonomy), wv, spans="doc", width=16)
    assert "text2node_vectors" in nlp.pipe_names
    examples = _examples(
        nlp, [("zymotic flu", "FLU"), ("diabetes typus zwei", "T2DM"), ("asthmatoid bronchitis", "ASTH")]
    )
    train_linker(nlp, examples, examples, epochs=1, show_progress=False, calibrate=False)
    ranked = link_phrases(nlp, ["zymoticflu", "diabetess", "asthmaa"], k=3)
    assert all(len(r) for r in ranked)
    # words outside the table take their vectors from the subword hook on the cached path too
    docs = list(nlp.pipe(["zymoticflu", "diabetess attack", "asthma", "!!"]))
    assert sum(t.vector.any() and not t.has_vector for d in docs for t in d) == 0  # hooks set has_vector
    _assert_cached_mapping_is_the_model(
        nlp.get_pipe("text2node_linker"), docs, [(i, 0, len(d)) for i, d in enumerate(docs)]
    )


def test_calibration_keeps_strings_of_concepts_that_are_not_candidates(tiny_taxonomy):
    # "Type 2 diabetes mellitus" (T2DM) has a child, so with leaf candidates it is no
    # candidate's string: a dev pair from it (to its child) is used; "Gout" is a leaf's label
    src = toy_vectors_nlp()
    dev_pairs = [
        ("Type 2 diabetes mellitus", "T2DMC"),
        ("Gout", "GOUT"),
        ("diabetes type two with complications", "T2DMC"),
    ]
    nlp = _leaf_linker(
        tiny_taxonomy,
        src,
    )
    assert calibrate_linker(nlp, _examples(nlp, dev_pairs))["queries"] == 2
    nlp = build_linker_nlp(
        tiny_taxonomy, _node_vectors(tiny_taxonomy), src, spans="doc", node_space="node2vec", width=16
    )
    assert calibrate_linker(nlp, _examples(nlp, dev_pairs))["queries"] == 1  # every concept is a candidate
    with pytest.raises(ValueError, match="strings of concepts the linker links to"):
        calibrate_linker(nlp, _examples(nlp, dev_pairs[:2]))


def test_default_child_pairs(tmp_path):
    from spacy_text2node import Taxonomy
    from spacy_text2node.datasets import default_child_pairs

    rows = [
        "id,label,parents,synonyms,definition",
        "K62,Other diseases of anus and rectum,,,",
        "K62.0,Anal polyp,K62,,",
        'K62.9,"Disease of anus and rectum, unspecified",K62,,',
        "S01.15,Open bite of eyelid,,,",
        'S01.15A,"Open bite of eyelid, initial encounter",S01.15,,',
        'S01.15D,"Open bite of eyelid, subsequent encounter",S01.15,,',
        "E11,Type 2 diabetes mellitus,,,",
        "E11.8,Type 2 diabetes mellitus with unspecified complications,E11,,",
        'E11.9,"Type 2 diabetes mellitus, unspecified",E11,,',
        "R10,Abdominal pain,,,",
        "R10.1,Pain localized to upper abdomen,R10,,",
        "Q71,Reduction defects of unspecified upper limb,,,",
        'Q71.9,"Reduction defect of unspecified upper limb, unspecified",Q71,,',
        'Q71.8,"Other reduction defects of upper limb, initial encounter",Q71,,',
    ]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n", encoding="utf8")
    tax = Taxonomy.from_csv(tmp_path / "t.csv")
    got = {p["text"]: p["concept"] for p in default_child_pairs(tax)}
    # E11: two children say "unspecified", so it has no single default; R10: none does;
    # Q71 already says "unspecified", so its default is the next qualifier's child
    assert got == {
        "Other diseases of anus and rectum": "K62.9",
        "Open bite of eyelid": "S01.15A",
        "Reduction defects of unspecified upper limb": "Q71.8",
    }
    assert default_child_pairs(tax, exclude=["K62.9"]) and "K62" not in {
        p["parent"] for p in default_child_pairs(tax, exclude=["K62.9"])
    }


def test_default_model_config_parses():
    from thinc.api import Config

    cfg = Config().from_str(DEFAULT_LINKER_MODEL)
    assert cfg["model"]["@architectures"] == "spacy-text2node.PhraseMapperCNN.v1"


def test_linker_cfg_init_and_train(tiny_taxonomy, tmp_path):
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train as train_loop
    from spacy.util import load_config

    from spacy_text2node.nodes.io import NodeVectors

    tiny_taxonomy.to_disk(tmp_path / "tax")
    NodeVectors(tiny_taxonomy.ids, _node_vectors(tiny_taxonomy)).to_disk(tmp_path / "nodes")
    dictionary = tmp_path / "dictionary.jsonl"
    dictionary.write_text('{"text": "sugar disease", "concept": "T2DM"}\n')
    config = load_config(
        REPO / "configs" / "linker.cfg",
        overrides={
            "paths.train": str(PAIRS),
            "paths.dev": str(PAIRS),
            "paths.taxonomy": str(tmp_path / "tax"),
            "paths.node_vectors": str(tmp_path / "nodes"),
            "paths.vectors": str(VECTORS_TXT),
            "paths.vectors_format": "glove",
            "paths.dictionary": str(dictionary),
            "components.text2node_linker.model.width": 32,
            "training.max_epochs": 12,
            "training.eval_frequency": 5,
        },
        interpolate=False,
    )
    nlp = init_nlp(config)
    assert nlp.vocab.vectors.shape == (66, 16)
    linker = nlp.get_pipe("text2node_linker")
    assert linker.index.space.shape == (len(tiny_taxonomy), 8 + 16)
    (tmp_path / "out").mkdir()
    nlp, _ = train_loop(nlp, tmp_path / "out", stdout=io.StringIO(), stderr=io.StringIO())
    best = spacy.load(tmp_path / "out" / "model-last")
    # the shipped mapper's embed reads the GloVe table: loaded, it maps as it was trained
    phrases = ["Bronchial asthma", "GOUT", "sugar Disease"]
    assert np.array_equal(map_phrases(best, phrases), map_phrases(nlp, phrases))
    doc = best("Bronchial asthma")
    assert doc.ents[0].kb_id_ == "ASTH"
    assert best("sugar disease").ents[0].kb_id_ == "T2DM"  # from [paths] dictionary
    meta = json.loads((tmp_path / "out" / "model-last" / "meta.json").read_text())
    assert "text2node_acc@1" in meta["performance"]


# --------------------------------------------------------------------------- displaCy
def test_render_links(trained):
    nlp, _ = trained
    linker = nlp.get_pipe("text2node_linker")
    doc = linker(_gold_doc(nlp, "Patient with juvenile diabetes", 2, 4))
    html = render_links(doc, url_template="https://example.org/concept/{id}", taxonomy=linker.taxonomy)
    assert "T1DM" in html and "Type 1 diabetes mellitus" in html
    assert "https://example.org/concept/T1DM" in html
    assert concept_url("MESH:D003920", "https://meshb.nlm.nih.gov/record/ui?ui={code}").endswith("ui=D003920")
    assert concept_url("", "x/{id}") == "#"


@pytest.mark.slow
@pytest.mark.long
def test_icd10cm_p3_end_to_end(icd10cm):
    """Text-only node space on all of ICD-10-CM, trained 1 epoch on label/inclusion
    strings, evaluated on 500 GEM ICD-9 descriptions (the P3 setting)."""
    from spacy_text2node.datasets.gem import load_gem
    from spacy_text2node.vectors.pipeline import make_glove_vectors

    bench = load_gem(icd10cm)
    glove = make_glove_vectors()(spacy.blank("en"))
    nlp = build_linker_nlp(icd10cm, None, glove, spans="doc", architecture="cnn", node_space="node2vec+text")
    train = _examples(nlp, [(t, c) for c, t in icd10cm.iter_texts() if t.strip()])
    train_linker(nlp, train, epochs=1, show_progress=False)
    rng = np.random.default_rng(0)
    queries = [bench.queries[i] for i in rng.choice(len(bench.queries), 500, replace=False)]
    test = _examples(nlp, [(q.text, list(q.gold)) for q in queries])
    s = evaluate_phrases(nlp, test)
    # measured with 2 epochs on a 1,500-query sample: 0.385 / 0.597 (TF-IDF peer: 0.389 / 0.611)
    assert s["acc@1"] > 0.33 and s["acc@5"] > 0.52


def test_linked_doc_serializes(trained):
    """A linked Doc survives to_bytes/DocBin, as nlp.pipe(n_process=2) needs (bug: tuple keys in user_data)."""
    from spacy.tokens import DocBin

    nlp, _ = trained
    linker = nlp.get_pipe("text2node_linker")
    doc = linker(_gold_doc(nlp, "Patient with juvenile diabetes and gout", 2, 4))
    back = Doc(nlp.vocab).from_bytes(doc.to_bytes())
    assert back.ents[0].kb_id_ == "T1DM"
    assert [tuple(c) for c in back.ents[0]._.text2node_candidates] == [
        tuple(c) for c in doc.ents[0]._.text2node_candidates
    ]
    db = DocBin(store_user_data=True, docs=[doc])
    again = list(DocBin(store_user_data=True).from_bytes(db.to_bytes()).get_docs(nlp.vocab))[0]
    assert again.ents[0].kb_id_ == "T1DM"
    # the predictions are kept once, in the span extension (spaCy stores it in user_data)
    assert [tuple(c) for c in again.ents[0]._.text2node_candidates] == [
        tuple(c) for c in doc.ents[0]._.text2node_candidates
    ]
    assert "text2node_linker" not in doc.user_data
    # the scorer reads the predictions of a deserialized doc
    ref = _gold_doc(nlp, "Patient with juvenile diabetes and gout", 2, 4)
    ref.ents = [Span(ref, 2, 4, label="DISEASE", kb_id="T1DM")]
    from spacy_text2node.pipeline.scoring import score_linking

    for linked in (back, again):
        assert score_linking([Example(linked, ref)])["text2node_acc@1"] == 1.0
    wrong = _gold_doc(nlp, "Patient with juvenile diabetes and gout", 2, 4)
    wrong.ents = [Span(wrong, 2, 4, label="DISEASE", kb_id="T2DM")]
    assert score_linking([Example(again, wrong)])["text2node_acc@1"] == 0.0
    unlinked = _gold_doc(nlp, "Patient with juvenile diabetes and gout", 2, 4)  # no candidates: counts as wrong
    assert score_linking([Example(unlinked, ref)])["text2node_nil_rate"] == 1.0


def test_result_cache_same_results_and_invalidated_by_training(trained):
    nlp, examples = trained
    linker = nlp.get_pipe("text2node_linker")
    texts = ["flu", "grippe", "flu", "type 2 diabetes", "flu"]
    linker.cfg["cache_size"] = 0
    plain = link_phrases(nlp, texts, k=3)
    linker.cfg["cache_size"] = 100
    cached = link_phrases(nlp, texts, k=3)
    assert cached == plain and len(linker._results) == 3  # three distinct texts
    assert link_phrases(nlp, texts, k=3) == plain
    linker.cfg["k"] = linker.cfg["k"]  # same settings: the cache survives
    assert len(linker._results) == 3
    nlp.update(examples[:4], sgd=Adam(0.01))
    link_phrases(nlp, ["flu"], k=3)
    assert len(linker._results) == 1  # emptied by the update


def test_memory_of_training_phrases(tiny_taxonomy, tmp_path):
    nlp = toy_vectors_nlp()
    nlp.add_pipe(
        "text2node_linker",
        config={"spans": "ents", "model": {"@architectures": "spacy-text2node.PhraseMapperMean.v1", "width": 16}},
    )
    # taxonomy strings are not memorised again; the new phrasing is
    examples = _examples(nlp, _tax_pairs(tiny_taxonomy) + [("sugar disease", "T2DM"), ("sugar disease", "T2DM")])
    linker = nlp.get_pipe("text2node_linker")
    linker.initialize(lambda: examples, nlp=nlp, taxonomy=tiny_taxonomy, node_vectors=_node_vectors(tiny_taxonomy))
    mem = linker.index.memory
    assert mem is not None and mem.matrix.shape[0] == 1
    t = linker.index.pair_table(np.zeros((1, linker.index.dim), "float32"), ["sugar disease"])
    t2dm = tiny_taxonomy.index("T2DM")
    assert t2dm in set(t.ni.tolist())  # a memory match is a candidate
    assert t.memory[t.ni == t2dm][0] == pytest.approx(1.0, abs=1e-5)
    nlp.to_disk(tmp_path / "p")
    again = spacy.load(tmp_path / "p").get_pipe("text2node_linker")
    assert again.index.memory is not None and again.index.memory.matrix.shape[0] == 1
    linker.cfg["memory"] = False
    linker.initialize(lambda: examples, nlp=nlp, taxonomy=tiny_taxonomy, node_vectors=_node_vectors(tiny_taxonomy))
    assert linker.index.memory is None


DICTIONARY_PAIRS = [
    {"text": "sugar disease", "concept": "T2DM"},
    {"text": "Sugar  Disease", "concept": "T2DM"},  # the same phrase, normalised
    {"text": "lung attack", "concept": "ASTH"},
    {"text": "lung attack", "concept": "COPD"},  # annotated with another concept: left out
    {"text": "flu with tb", "concept": "FLU", "gold": ["FLU", "TB"]},  # several at once: left out
    {"text": "sugar sickness", "concept": "DM"},  # not a leaf
]


def test_phrase_dictionary_links_an_annotated_phrase_first(tiny_taxonomy, tmp_path):
    from spacy_text2node.index.dictionary import probability

    nlp = build_linker_nlp(
        tiny_taxonomy, _node_vectors(tiny_taxonomy), toy_vectors_nlp(), spans="doc", node_space="node2vec", width=16
    )
    linker = nlp.get_pipe("text2node_linker")
    linker.cfg["cache_size"] = 0
    phrases = ["sugar disease", "lung attack", "flu with tb", "sugar sickness"]
    plain = link_phrases(nlp, phrases, k=3)
    assert plain[0][0][0] != "T2DM"  # what the untrained model gives the new phrasing
    counts = linker.set_dictionary(DICTIONARY_PAIRS)
    assert counts == {"pairs": 6, "phrases": 2, "conflicting": 1, "composite": 1}
    got = link_phrases(nlp, phrases, k=3)
    # uncalibrated: the dictionary's concept first with the ranking's best score, the rest in order
    assert got[0][0] == ("T2DM", plain[0][0][1]) and got[0][1:] == [c for c in plain[0] if c[0] != "T2DM"][:2]
    assert got[1:3] == plain[1:3]  # the ambiguous and the composite phrase: the model decides
    assert got[3][0][0] == "DM"
    doc = nlp("Sugar disease")
    assert doc.ents[0].kb_id_ == "T2DM" and doc.ents[0]._.text2node_candidates[0][0] == "T2DM"
    # a mention in the dictionary is linked as it was annotated: not split into its parts
    linker.cfg["composite"] = True
    assert nlp("influenza or asthma").ents[0]._.text2node_concepts == ["FLU", "ASTH"]
    linker.set_dictionary([*DICTIONARY_PAIRS, {"text": "influenza or asthma", "concept": "RESP"}])
    assert nlp("influenza or asthma").ents[0]._.text2node_concepts == ["RESP"]
    linker.cfg["composite"] = False
    # calibrated: a mixture, probability(2) = 3/4 on the dictionary's concept, 1/4 on the model's ranking
    calibrate_linker(nlp, _examples(nlp, CALIBRATION_PAIRS))
    linker.set_dictionary(None)
    model = link_phrases(nlp, phrases, k=5)[0]
    linker.set_dictionary(DICTIONARY_PAIRS)
    mixed = link_phrases(nlp, phrases, k=5)[0]
    p = probability(2)
    own = dict(model).get("T2DM", 0.0)
    assert mixed[0] == ("T2DM", pytest.approx(p + (1 - p) * own))
    assert mixed[1:] == [(c, pytest.approx((1 - p) * s)) for c, s in model if c != "T2DM"][:4]
    # a dictionary concept that may not be returned (candidates = "leaves") is not
    linker.cfg["candidates"] = "leaves"
    assert all(c != "DM" for c, _ in link_phrases(nlp, ["sugar sickness"], k=3)[0])
    linker.cfg["candidates"] = "all"
    # saved with the pipeline, loaded with it
    nlp.to_disk(tmp_path / "p")
    assert (tmp_path / "p" / "text2node_linker" / "index" / "dictionary.json").exists()
    again = spacy.load(tmp_path / "p")
    again.get_pipe("text2node_linker").cfg["cache_size"] = 0
    assert link_phrases(again, phrases, k=5) == link_phrases(nlp, phrases, k=5)
    assert spacy.load(tmp_path / "p").get_pipe("text2node_linker").from_bytes(linker.to_bytes()).index.dictionary
    linker.set_dictionary(None)
    nlp.to_disk(tmp_path / "p")
    assert not (tmp_path / "p" / "text2node_linker" / "index" / "dictionary.json").exists()


def test_phrase_dictionary_refuses_unknown_concepts(tiny_taxonomy, tmp_path):
    nlp = build_linker_nlp(tiny_taxonomy, None, toy_vectors_nlp(), spans="doc", architecture="mean")
    linker = nlp.get_pipe("text2node_linker")
    with pytest.raises(ValueError, match=r"dictionary pairs, pair 2: concept 'NOPE' is not in taxonomy"):
        linker.set_dictionary([{"text": "flu", "concept": "FLU"}, {"text": "x", "concept": "NOPE"}])
    with pytest.raises(ValueError, match=r"pair 1: needs a 'text' string and a 'concept' \(or 'gold' list of\)"):
        linker.set_dictionary([{"text": "flu", "gold": "FLU"}])
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"text": "flu", "concept": "FLU"}\n{"text": "x", "concept": "NOPE"}\n')
    with pytest.raises(ValueError, match=r"pairs\.jsonl, line 2: concept 'NOPE' is not in taxonomy"):
        linker.set_dictionary(path)
    assert linker.index.dictionary is None
    path.write_text('{"text": "grippe", "concept": "FLU"}\n')
    assert linker.set_dictionary(str(path))["phrases"] == 1


# --------------------------------------------------------------------------- CLI
CALIBRATION_PAIRS = [
    ("type 2 diabetes", "T2DM"),
    ("type 1 diabetes", "T1DM"),
    ("bacterial pneumonias", "BPNEU"),
    ("chronic obstructive pulmonary diseases", "COPD"),
    ("viral infections", "VIR"),
    ("bronchial asthmas", "ASTH"),
    ("high cholesterols", "HYPCH"),
    ("tuberculoses", "TB"),
]


def _calibrate_cli(model, dev, output, *extra):
    from typer.testing import CliRunner

    import spacy_text2node.cli.link  # noqa: F401  (registers the command)
    from spacy_text2node.cli import app

    return CliRunner().invoke(app, ["calibrate-linker", str(model), str(dev), "--output", str(output), *extra])


def test_calibrate_cli_creates_a_nested_output_folder(phrase_linker_dir, tmp_path):
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps({"text": t, "concept": c}) + "\n" for t, c in CALIBRATION_PAIRS))
    out = tmp_path / "a" / "b" / "c"
    res = _calibrate_cli(phrase_linker_dir, dev, out)
    assert res.exit_code == 0, res.output
    linker = spacy.load(out).get_pipe("text2node_linker")
    assert linker.cfg["calibrated"] is True and linker.index.reranker is not None


def test_calibrate_cli_siamese_option(phrase_linker_dir, tmp_path):
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps({"text": t, "concept": c}) + "\n" for t, c in CALIBRATION_PAIRS))
    for value, kept in (("off", False), ("on", True)):
        res = _calibrate_cli(phrase_linker_dir, dev, tmp_path / value, "--siamese", value)
        assert res.exit_code == 0, res.output
        assert (spacy.load(tmp_path / value).get_pipe("text2node_linker").index.strings is not None) == kept
    res = _calibrate_cli(phrase_linker_dir, dev, tmp_path / "bad", "--siamese", "yes")
    assert res.exit_code == 1 and "--siamese 'yes': expected one of auto, on, off" in res.output
    assert not (tmp_path / "bad").exists()


def test_calibrate_cli_sets_the_phrase_dictionary_after_calibrating(phrase_linker_dir, tmp_path):
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps({"text": t, "concept": c}) + "\n" for t, c in CALIBRATION_PAIRS))
    # the dictionary may hold the calibration pairs: it takes no part in the calibration
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(dev.read_text() + json.dumps({"text": "sugar disease", "concept": "T2DM"}) + "\n")
    res = _calibrate_cli(phrase_linker_dir, dev, tmp_path / "out", "--dictionary", str(pairs))
    assert res.exit_code == 0, res.output
    assert "Phrase dictionary: 9 phrases from 9 pairs" in res.output
    nlp = spacy.load(tmp_path / "out")
    assert nlp.get_pipe("text2node_linker").index.reranker is not None
    assert nlp("sugar disease").ents[0].kb_id_ == "T2DM"
    assert spacy.load(phrase_linker_dir)("sugar disease").ents[0].kb_id_ != "T2DM"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "tuberculoses", "concept": "NOPE"}\n')
    res = _calibrate_cli(phrase_linker_dir, dev, tmp_path / "out2", "--dictionary", str(bad))
    said = " ".join(res.output.split())
    assert res.exit_code == 1 and "bad.jsonl, line 1: concept 'NOPE' is not in taxonomy" in said
    assert "Calibrating" not in said and not (tmp_path / "out2" / "config.cfg").exists()


def test_calibrate_cli_refuses_an_output_that_is_a_file_before_calibrating(phrase_linker_dir, tmp_path):
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps({"text": t, "concept": c}) + "\n" for t, c in CALIBRATION_PAIRS))
    (tmp_path / "a").write_text("not a folder")
    res = _calibrate_cli(phrase_linker_dir, dev, tmp_path / "a" / "b")
    assert res.exit_code == 1
    assert "Calibrating on" not in res.output and "a/b" in res.output


# --------------------------------------------------------------------------- one training path
def test_train_linker_uses_the_training_block_of_configs_linker_cfg():
    # train_linker and `spacy train configs/linker.cfg` must not drift apart: same optimizer,
    # batcher, dropout, patience rules; only corpora, epochs, sizes and the seed are per call
    from thinc.api import Config

    from spacy_text2node.linker_api import TRAINING_CONFIG

    ours = Config().from_str(TRAINING_CONFIG)["training"]
    shipped = Config().from_disk(REPO / "configs" / "linker.cfg", interpolate=False)["training"]
    for block in ("optimizer", "batcher", "score_weights"):
        assert dict(ours[block]) == dict(shipped[block]), block
    for key in ("dropout", "accumulate_gradient", "frozen_components", "annotating_components"):
        assert ours[key] == shipped[key], key


def test_train_linker_runs_spacys_training_loop(tiny_taxonomy, capsys):
    nlp = build_linker_nlp(tiny_taxonomy, _node_vectors(tiny_taxonomy), toy_vectors_nlp(), spans="doc")
    train = _examples(nlp, _tax_pairs(tiny_taxonomy))
    dev = _examples(nlp, [("flu", "FLU"), ("diabetes type 1", "T1DM")])
    before = nlp.config.to_str()
    train_linker(nlp, train, dev, epochs=3, batch_size=8, learn_rate=0.01, calibrate=False, show_progress=True)
    out = capsys.readouterr().out
    # spaCy's loop and ConsoleLogger: the learn rate given, one dev evaluation per epoch
    assert "Initial learn rate: 0.01" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "1", "2"]
    # the temporary corpora and training settings do not stay in the pipeline's config
    assert nlp.config.to_str() == before


def test_train_linker_same_seed_same_model(tiny_taxonomy):
    def run():
        nlp = build_linker_nlp(tiny_taxonomy, _node_vectors(tiny_taxonomy), toy_vectors_nlp(), spans="doc")
        train_linker(
            nlp, _examples(nlp, _tax_pairs(tiny_taxonomy)), epochs=2, batch_size=8, seed=3, show_progress=False
        )
        return link_phrases(nlp, ["flu", "gout of the lung", "diabetes"], k=3)

    assert run() == run()


def test_annotate_before_linker_runs_untrainable_components_only(tiny_taxonomy):
    from spacy.language import Language

    from spacy_text2node.linker_api import annotate_before_linker

    if not Doc.has_extension("seen_by"):
        Doc.set_extension("seen_by", default=None)

    @Language.component("t2n_test_marker")
    def marker(doc):
        doc._.seen_by = "marker"
        return doc

    nlp = build_linker_nlp(tiny_taxonomy, _node_vectors(tiny_taxonomy), toy_vectors_nlp(), spans="doc")
    nlp.add_pipe("t2n_test_marker", first=True)
    eg = _examples(nlp, [("flu", "FLU")])[0]
    assert eg.predicted._.seen_by is None
    (out,) = list(annotate_before_linker()(nlp, eg))
    assert out.predicted._.seen_by == "marker"
    # nothing behind the linker runs
    nlp.add_pipe("t2n_test_marker", name="after", last=True)
    eg = _examples(nlp, [("flu", "FLU")])[0]
    nlp.remove_pipe("t2n_test_marker")
    (out,) = list(annotate_before_linker()(nlp, eg))
    assert out.predicted._.seen_by is None


def test_train_linker_hands_its_own_examples_to_the_loop(tiny_taxonomy):
    from spacy_text2node import linker_api

    nlp = build_linker_nlp(tiny_taxonomy, _node_vectors(tiny_taxonomy), toy_vectors_nlp(), spans="doc")
    train = _examples(nlp, _tax_pairs(tiny_taxonomy))
    # the reader yields the caller's Example objects themselves: no copy held beside them
    linker_api._RUNNING["k"] = train
    try:
        assert [id(eg) for eg in linker_api.in_memory_examples("k")(nlp)] == [id(eg) for eg in train]
    finally:
        del linker_api._RUNNING["k"]
    train_linker(nlp, train, epochs=1, batch_size=8, show_progress=False)
    assert linker_api._RUNNING == {}  # nothing left behind
    with pytest.raises(ValueError, match="no examples under key 'gone'"):
        list(linker_api.in_memory_examples("gone")(nlp))


def _assert_cached_mapping_is_the_model(linker, docs, offsets, cache=None):
    """`predict_static` (the input layer's rows from a cache) gives bitwise what the mapper
    model gives, and the same spans with vectors."""
    from spacy_text2node.ml.mapper import StaticInputCache, predict_static, spans_with_vectors

    cache = cache or StaticInputCache()
    fast = predict_static(linker.model, docs, offsets, cache, "table")
    assert fast is not None
    assert np.array_equal(fast[0], linker.model.ops.to_numpy(linker.model.predict((docs, offsets))))
    assert np.array_equal(fast[1], spans_with_vectors(docs, offsets, linker._max_tokens()))
    return fast


def test_cached_input_layer_maps_as_the_model_does(trained, monkeypatch):
    from spacy_text2node.ml.mapper import StaticInputCache, predict_static

    nlp, examples = trained
    linker = nlp.get_pipe("text2node_linker")
    long = " ".join(["flu"] * 40)  # past max_tokens: truncated alike
    docs = [nlp.make_doc(t) for t in ["type 2 diabetes", "zzqx flu", "...", long, "lung infection flu"]]
    offsets = [(0, 0, 3), (1, 0, 2), (2, 0, 1), (3, 0, 40), (4, 0, 3), (4, 1, 2), (0, 1, 1)]  # the last is empty
    cache = StaticInputCache()
    Y, with_vectors = _assert_cached_mapping_is_the_model(linker, docs, offsets, cache)
    assert with_vectors.tolist() == [True, True, False, True, True, True, False]
    # warm: rows from the cache, in another batch, are the rows computed the first time
    again, _ = _assert_cached_mapping_is_the_model(linker, docs[::-1], [(0, 1, 2), (4, 0, 3)], cache)
    assert np.array_equal(again, Y[[5, 0]])
    # training changes the input layer's weights in place: the cache must not serve old rows
    nlp.update(examples, sgd=Adam(0.01))
    _assert_cached_mapping_is_the_model(linker, docs, offsets, cache)
    assert not np.array_equal(predict_static(linker.model, docs, offsets, cache, "table")[0], Y)
    # and linking through the component uses it (the same rankings as without it)
    monkeypatch.setitem(linker.cfg, "cache_size", 0)
    phrases = ["flu", "type 2 diabetes", "lung infection", "...", "zzqx asthma"]
    cached = link_phrases(nlp, phrases, k=3)
    import spacy_text2node.pipeline.search as search_mod

    monkeypatch.setattr(search_mod, "predict_static", lambda *a, **k: None)
    assert link_phrases(nlp, phrases, k=3) == cached
    # a table whose rows would take too much memory is not cached: the model runs as it is
    monkeypatch.setattr(StaticInputCache, "MAX_BYTES", 16)
    assert predict_static(linker.model, docs, offsets, StaticInputCache(), "table") is None


# --------------------------------------------------------------------------- synonym term
def _synonym_table(tax, rows):
    from spacy_text2node.pipeline.training import SynonymTable

    table = SynonymTable()
    table.step(tax, 1, lambda texts: rows[: len(texts)])
    return table


def test_synonym_loss_gradient_matches_finite_differences(tiny_taxonomy):
    from spacy_text2node.pipeline.training import synonym_loss_and_grad

    rng = np.random.default_rng(0)
    n_strings = sum(len(tiny_taxonomy.texts(c)) for c in tiny_taxonomy.ids)
    table = _synonym_table(tiny_taxonomy, rng.normal(size=(n_strings, 6)).astype("float32"))
    idx = {c: i for i, c in enumerate(tiny_taxonomy.ids)}
    texts = ["lung disease", "sugar sickness", "flu"]
    gold = [[idx["RESP"]], [idx["MET"]], [idx["INF"], idx["FLU"]]]
    cands = np.arange(len(tiny_taxonomy))
    Y = rng.normal(size=(3, 6))
    loss, grad = synonym_loss_and_grad(Y, texts, gold, cands, table, 0.5)
    assert loss > 0
    eps = 1e-5
    num = np.zeros_like(Y)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            up, down = Y.copy(), Y.copy()
            up[i, j] += eps
            down[i, j] -= eps
            num[i, j] = (
                synonym_loss_and_grad(up, texts, gold, cands, table, 0.5)[0]
                - synonym_loss_and_grad(down, texts, gold, cands, table, 0.5)[0]
            ) / (2 * eps)
    # the loss is summed over spans, the gradient averaged (as the node-space loss)
    np.testing.assert_allclose(grad * Y.shape[0], num, rtol=1e-3, atol=1e-4)


def test_synonym_loss_leaves_out_the_span_s_own_string(tiny_taxonomy):
    from spacy_text2node.pipeline.training import synonym_loss_and_grad

    n_strings = sum(len(tiny_taxonomy.texts(c)) for c in tiny_taxonomy.ids)
    rows = np.random.default_rng(1).normal(size=(n_strings, 4)).astype("float32")
    table = _synonym_table(tiny_taxonomy, rows)
    idx = {c: i for i, c in enumerate(tiny_taxonomy.ids)}
    met = idx["MET"]  # "Metabolic disease", no synonym: its only string is the span itself
    Y = np.ones((1, 4))
    loss, grad = synonym_loss_and_grad(Y, ["metabolic  Disease"], [[met]], np.arange(len(tiny_taxonomy)), table, 0.1)
    assert loss == 0.0 and not grad.any()
    resp = idx["RESP"]  # "Respiratory disease" has two synonyms: they teach it
    loss, grad = synonym_loss_and_grad(Y, ["Respiratory disease"], [[resp]], np.arange(len(tiny_taxonomy)), table, 0.1)
    assert loss > 0 and grad.any()


def test_synonym_table_is_remapped_every_refresh_steps(tiny_taxonomy):
    from spacy_text2node.pipeline.training import SynonymTable

    calls = []

    def map_texts(texts):
        calls.append(len(texts))
        return np.full((len(texts), 3), float(len(calls)), dtype="float32")

    table = SynonymTable()
    for _ in range(7):
        table.step(tiny_taxonomy, 3, map_texts)
    n_strings = sum(len(tiny_taxonomy.texts(c)) for c in tiny_taxonomy.ids)
    assert calls == [n_strings] * 3  # steps 0, 3 and 6
    np.testing.assert_allclose(np.linalg.norm(table.rows, axis=1), 1.0, rtol=1e-6)
    assert table.texts[:3] == tiny_taxonomy.texts(tiny_taxonomy.ids[0])[:3]


def test_map_texts_maps_each_text_whole_with_or_without_the_input_cache(tiny_taxonomy, monkeypatch):
    """The synonym table (training: no cache) and the index's strings (cached) map the
    taxonomy's strings in chunks; each row is the text's doc mapped whole, in any chunking."""
    import spacy_text2node.pipeline.search as search

    nlp = _leaf_linker(tiny_taxonomy, toy_vectors_nlp())
    linker = nlp.get_pipe("text2node_linker")
    texts = tiny_taxonomy.strings()[0]
    docs = [nlp.make_doc(t) for t in texts]
    whole = linker.map_whole_docs(docs)
    monkeypatch.setattr(search, "STRING_CHUNK", 7)  # chunks that cut the texts unevenly
    for cached in (False, True):
        np.testing.assert_allclose(linker.map_texts(texts, cached=cached), whole, rtol=1e-5, atol=1e-6)
    assert linker.map_texts([], cached=False).shape == (0, whole.shape[1])


def test_synonym_weight_changes_the_training(tiny_taxonomy):
    src = toy_vectors_nlp()
    outs = []
    for weight in (0.0, 1.0):
        nlp = _leaf_linker(tiny_taxonomy, src, synonym_weight=weight, synonym_refresh=3)
        linker = nlp.get_pipe("text2node_linker")
        train = _examples(nlp, _tax_pairs(tiny_taxonomy))
        train_linker(nlp, train, [], epochs=4, batch_size=16, learn_rate=0.01, show_progress=False, calibrate=False)
        assert (linker._synonyms.rows is not None) == (weight > 0)
        outs.append(linker.map_whole_docs([nlp.make_doc("lung disease"), nlp.make_doc("flu")]))
    assert not np.allclose(outs[0], outs[1])
    with pytest.raises(SettingsError, match="synonym_weight"):
        _leaf_linker(tiny_taxonomy, src, synonym_weight=-0.5)
    with pytest.raises(SettingsError, match="synonym_refresh"):
        _leaf_linker(tiny_taxonomy, src, synonym_weight=1.0, synonym_refresh=0)
