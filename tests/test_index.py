"""Tests of the index: the lexical channel (`LexicalIndex.transform`, `word_transform`,
`retrieve`, whose fast paths must give exactly what the plain definitions below give, and
its TF-IDF against scikit-learn's), the sort and PCA it relies on, and serialization."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp

from spacy_text2node.index import (
    RETRIEVAL_POOL,
    LexicalIndex,
    NodeIndex,
    Reranker,
    char_ngrams,
    l2_normalize,
    principal_components,
    word_set,
    words,
)
from spacy_text2node.index.ann import ranked_top_k
from spacy_text2node.index.neighbours import KINDS
from spacy_text2node.index.text import quantize_rows

# queries: known strings, near misses, case/punctuation variants, repeated words and
# n-grams, unknown n-grams, punctuation only, empty, unicode, a very long word
QUERIES = [
    "Tuberculosis",
    "tuberculossis",
    "bronchial asthma",
    "Bronchial  Asthma!!",
    "diabetes diabetes diabetes",
    "type 2 diabetes mellitus with complications",
    "Type 1 diabetes",
    "lung",
    "infection",
    "Flu",
    "flu flu",
    "",
    "   ",
    "...",
    "?!-,",
    "qqxz",
    "zzzz yyyy wwww",
    "a",
    "x" * 120,
    "Ünïcödé disease",
    "COVID-19",
    "sars cov 2 infection",
    "chronic obstructive lung disease",
    "disease",
    "Disease of the lung",
    "infections",
    "diseases of the respiratory system",
    "high cholesterol level",
    "gout gout",
]


def _strings(tax):
    pairs = [(t, tax.index(cid)) for cid, t in tax.iter_texts()]
    return [t for t, _ in pairs], [i for _, i in pairs]


@pytest.fixture(scope="module")
def lexical_indexes(tiny_taxonomy):
    """The taxonomy's strings, and a memory-like index whose strings repeat across and
    within nodes (identical scores: the tie-breaking cases)."""
    texts, sn = _strings(tiny_taxonomy)
    n = len(tiny_taxonomy)
    main = LexicalIndex.build(texts, sn, n, max_df=0.5)
    rng = np.random.default_rng(0)
    mem_texts, mem_nodes = [], []
    for t, node in zip(texts, sn):
        for _ in range(int(rng.integers(1, 4))):
            mem_texts.append(t)
            mem_nodes.append(int(node) if rng.random() < 0.6 else int(rng.integers(0, n)))
    memory = LexicalIndex.build(mem_texts, mem_nodes, n, max_df=0.5)
    return main, memory


def _reference_transform(lex, texts):
    """TF-IDF rows of the queries divided by their full norm (unknown n-grams count in the
    norm with the highest IDF); each row lists its known n-grams in reverse order of
    first occurrence (the order the product with the diagonal of inverse norms gives)."""
    unk_idf = float(lex.idf.max()) if len(lex.idf) else 1.0
    indptr, indices, data = [0], [], []
    norms = np.ones(len(texts), dtype="float32")
    for i, t in enumerate(texts):
        sq, row = 0.0, []
        for g, v in Counter(char_ngrams(t)).items():
            j = lex.vocab.get(g)
            if j is None:
                sq += (v * unk_idf) ** 2
                continue
            w = float(v) * float(lex.idf[j])
            row.append((j, w))
            sq += w * w
        norms[i] = np.sqrt(sq) if sq > 0 else 1.0
        for j, w in reversed(row):
            indices.append(j)
            data.append(w)
        indptr.append(len(indices))
    scale = 1.0 / norms
    data = np.asarray(data, dtype="float32") * np.repeat(scale, np.diff(indptr)).astype("float32")
    return sp.csr_matrix(
        (data, np.asarray(indices, dtype="int32"), np.asarray(indptr, dtype="int64")),
        shape=(len(texts), len(lex.vocab)),
    )


def _reference_word_transform(lex, texts):
    indptr, indices, total = [0], [], np.zeros(len(texts), dtype="float32")
    for i, t in enumerate(texts):
        ws = word_set(t)
        known = [lex.word_vocab[w] for w in ws if w in lex.word_vocab]
        indices.extend(known)
        indptr.append(len(indices))
        total[i] = float(lex.word_idf[known].sum()) + lex._unknown_word_idf * (len(ws) - len(known))
    q = sp.csr_matrix(
        (np.ones(len(indices), dtype="float32"), np.asarray(indices, dtype="int32"), np.asarray(indptr, dtype="int64")),
        shape=(len(texts), len(lex.word_vocab)),
    )
    return q, total


def _reference_retrieve(lex, q, k, allowed=None):
    """The shortlist: the RETRIEVAL_POOL * k best strings by the pruned score (one sparse
    product) and every string tied with the last. Their nodes ordered by the strings' full
    cosine (float64, summed in the string's column order; a stable sort over the product's
    column order), the first occurrence of each node, the first k. With `allowed`, the
    strings of other nodes are dropped first."""
    if k <= 0:
        return [np.zeros(0, dtype="int64") for _ in range(q.shape[0])]
    s = (q @ lex._retrieval_T).tocsr()
    m = lex.matrix
    out = []
    for i in range(s.shape[0]):
        a, b = s.indptr[i], s.indptr[i + 1]
        vals, cols = s.data[a:b], s.indices[a:b]
        if allowed is not None:
            keep = allowed[lex.string_node[cols]]
            vals, cols = vals[keep], cols[keep]
        if len(vals) == 0:
            out.append(np.zeros(0, dtype="int64"))
            continue
        kk = min(k * RETRIEVAL_POOL, len(vals))
        top = np.flatnonzero(vals >= np.sort(vals)[::-1][kk - 1]) if kk < len(vals) else np.arange(len(vals))
        qd = dict(
            zip(
                q.indices[q.indptr[i] : q.indptr[i + 1]].tolist(),
                q.data[q.indptr[i] : q.indptr[i + 1]].astype("float64").tolist(),
            )
        )
        full = []
        for st in cols[top]:
            v = 0.0
            for r in range(m.indptr[st], m.indptr[st + 1]):
                v += qd.get(int(m.indices[r]), 0.0) * float(m.data[r])
            full.append(v)
        nodes = lex.string_node[cols[top]][np.argsort(-np.asarray(full), kind="stable")]
        _, first = np.unique(nodes, return_index=True)
        out.append(nodes[np.sort(first)][:k].astype("int64"))
    return out


def _same_csr(a, b):
    return (
        a.shape == b.shape
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and a.data.dtype == np.float32
        and np.array_equal(a.data, b.data)
    )


@pytest.mark.parametrize("which", [0, 1])
def test_lexical_transform_matches_definition(lexical_indexes, which):
    lex = lexical_indexes[which]
    q = lex.transform(QUERIES)
    assert isinstance(q, sp.csr_matrix) and q.shape == (len(QUERIES), len(lex.vocab))
    assert _same_csr(q, _reference_transform(lex, QUERIES))
    norms = np.sqrt(np.asarray(q.multiply(q).sum(axis=1)).ravel())
    assert norms[QUERIES.index("Tuberculosis")] == pytest.approx(1.0, abs=1e-5)  # all n-grams known
    assert q[QUERIES.index("")].nnz == 0 and q[QUERIES.index("...")].nnz == 0 and q[QUERIES.index("qqxz")].nnz == 0
    assert 0 < norms[QUERIES.index("Ünïcödé disease")] < 1.0  # unknown n-grams count in the norm
    # a batch gives the rows of the queries one by one
    for i in (0, 4, 11, 19):
        assert _same_csr(lex.transform([QUERIES[i]]), q[i])
    empty = lex.transform([])
    assert empty.shape == (0, len(lex.vocab)) and empty.nnz == 0


@pytest.mark.parametrize("which", [0, 1])
def test_lexical_word_cache_keeps_the_definition(lexical_indexes, which, monkeypatch):
    """The n-gram ids and stems kept between calls change no row: warm, after the cache
    filled up and was swapped for a new one, and with threads sharing it (unknown n-grams
    repeated inside a query must keep one id each, or their count in the norm is wrong)."""
    import spacy_text2node.index.lexical as lexical_module

    lex = lexical_indexes[which]
    queries = QUERIES + ["qqxz qqxz zzqx", "xqz-qzx xqz", "gout qqxzy gout"]
    want, want_w = _reference_transform(lex, queries), _reference_word_transform(lex, queries)
    for _ in range(2):  # cold, then warm
        assert _same_csr(lex.transform(queries), want)
        qw, total = lex.word_transform(queries)
        assert _same_csr(qw, want_w[0]) and np.array_equal(total, want_w[1])
    size = lexical_module.WORD_CACHE_SIZE
    monkeypatch.setattr(lexical_module, "WORD_CACHE_SIZE", 3)
    first = lex._words
    for q in queries:
        assert _same_csr(lex.transform([q]), _reference_transform(lex, [q]))
    assert lex._words is not first  # full: a new cache replaced it
    monkeypatch.setattr(lexical_module, "WORD_CACHE_SIZE", size)
    lex._words = lexical_module._WordCache(lex.vocab)
    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(lambda i: lex.transform(queries[i % len(queries) :] + queries), range(16)))
    for i, q in enumerate(rows):
        assert _same_csr(q, _reference_transform(lex, queries[i % len(queries) :] + queries))


@pytest.mark.parametrize("which", [0, 1])
def test_lexical_word_transform_matches_definition(lexical_indexes, which):
    lex = lexical_indexes[which]
    qw, total = lex.word_transform(QUERIES)
    ref_qw, ref_total = _reference_word_transform(lex, QUERIES)
    assert _same_csr(qw, ref_qw)
    assert total.dtype == np.float32 and np.array_equal(total, ref_total)
    # eight or more distinct words (a different float32 summation in numpy)
    long = [" ".join(w for w, _ in zip(lex.word_vocab, range(n))) + " unknownword" for n in (7, 8, 9, 20)]
    qw, total = lex.word_transform(long)
    ref_qw, ref_total = _reference_word_transform(lex, long)
    assert _same_csr(qw, ref_qw) and np.array_equal(total, ref_total)
    qw, total = lex.word_transform([])
    assert qw.shape == (0, len(lex.word_vocab)) and len(total) == 0


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("k", [0, 1, 2, 3, 5, 40])
def test_lexical_retrieve_matches_definition(lexical_indexes, which, k):
    lex = lexical_indexes[which]
    q = lex.transform(QUERIES)
    got = lex.retrieve(q, k)
    ref = _reference_retrieve(lex, q, k)
    assert len(got) == len(QUERIES)
    for g, r in zip(got, ref):
        assert g.dtype == np.int64 and np.array_equal(g, r)
        assert len(set(g.tolist())) == len(g) <= max(k, 0)


def test_lexical_retrieve_semantics(lexical_indexes, tiny_taxonomy):
    lex = lexical_indexes[0]
    q = lex.transform(QUERIES)
    got = lex.retrieve(q, 40)
    assert tiny_taxonomy.id_at(got[QUERIES.index("Tuberculosis")][0]) == "TB"
    assert tiny_taxonomy.id_at(got[QUERIES.index("bronchial asthma")][0]) == "ASTH"
    assert tiny_taxonomy.id_at(got[QUERIES.index("Bronchial  Asthma!!")][0]) == "ASTH"
    for t in ("", "   ", "...", "?!-,", "qqxz"):
        assert len(got[QUERIES.index(t)]) == 0
    # k larger than the candidates: every node with an informative n-gram in common, once
    i = QUERIES.index("disease")
    s = (q[i] @ lex._retrieval_T).tocsr()
    assert set(got[i].tolist()) == set(lex.string_node[s.indices].tolist())
    # identical queries get identical candidates; rows do not depend on the batch
    assert np.array_equal(got[QUERIES.index("gout gout")], lex.retrieve(lex.transform(["gout gout"]), 40)[0])
    assert np.array_equal(got[0], lex.retrieve(lex.transform(["tuberculosis"]), 40)[0])
    assert lex.retrieve(lex.transform([]), 5) == []


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("k", [1, 3, 5, 40])
def test_lexical_retrieve_allowed_nodes(lexical_indexes, which, k):
    """Retrieval restricted to some nodes (the leaves) ranks only their strings: k of
    them, not k of all nodes then filtered (which lost leaves behind their parents)."""
    lex = lexical_indexes[which]
    q = lex.transform(QUERIES)
    allowed = np.zeros(lex.n_nodes, dtype=bool)
    allowed[::2] = True
    got = lex.retrieve(q, k, allowed=allowed)
    ref = _reference_retrieve(lex, q, k, allowed=allowed)
    for g, r in zip(got, ref):
        assert np.array_equal(g, r) and allowed[g].all()
    everything = lex.retrieve(q, k)
    filtered = [e[allowed[e]] for e in everything]
    if k <= 5:  # (40 takes every node of the tiny taxonomy either way)
        assert any(len(g) > len(f) for g, f in zip(got, filtered))  # the filter-after kept fewer
    assert all(
        np.array_equal(a, b) for a, b in zip(lex.retrieve(q, k, allowed=np.ones(lex.n_nodes, dtype=bool)), everything)
    )
    with pytest.raises(ValueError, match="allowed"):
        lex.retrieve(q, k, allowed=allowed[:-1])


def test_lexical_retrieve_ties_between_nodes():
    """Strings shared by several nodes score the same: the order among them is the stable
    order of the sparse product's columns, and a cut inside a tie keeps the whole tie."""
    texts = [
        "acute pain",
        "acute pain",
        "acute pain",
        "chronic pain",
        "pain",
        "pain",
        "acute kidney failure",
        "pain of the back",
        "back pain",
        "pain in limb",
        "acute pain",
        "painful",
    ]
    nodes = [0, 1, 2, 3, 4, 5, 6, 7, 7, 8, 9, 9]
    lex = LexicalIndex.build(texts, nodes, 10, max_df=1.0)
    queries = ["acute pain", "pain", "back pain", "acute", "pains"]
    q = lex.transform(queries)
    for k in range(0, 12):
        ref = _reference_retrieve(lex, q, k)
        got = lex.retrieve(q, k)
        assert all(np.array_equal(g, r) for g, r in zip(got, ref)), k
    assert set(lex.retrieve(q, 12)[0][:4].tolist()) == {0, 1, 2, 9}  # the identical strings first


def test_lexical_retrieve_many_nodes_large_k(lexical_indexes):
    """More nodes than a query's first 64 slots, k above them and above the node count,
    some strings shared by several nodes; a query matrix of another width is refused."""
    base = list(lexical_indexes[0].exact)  # normalised strings of the tiny taxonomy
    texts, nodes = [], []
    for mod in ("acute", "chronic", "left", "right", "recurrent"):
        for t in base:
            texts.append(f"{mod} {t}")
            nodes.append(len(set(nodes)) if len(texts) % 7 else nodes[-1] if nodes else 0)
    texts += base[:10]
    nodes += list(range(10))
    n_nodes = max(nodes) + 1
    lex = LexicalIndex.build(texts, nodes, n_nodes, max_df=0.2)
    assert n_nodes > 64
    queries = ["chronic disease", "acute infection of the lung", "left", "diabetes", "recurrent gout", ""] * 3
    q = lex.transform(queries)
    for k in (1, 7, 30, 100, 10**6):
        got, ref = lex.retrieve(q, k), _reference_retrieve(lex, q, k)
        assert all(np.array_equal(g, r) for g, r in zip(got, ref)), k
    assert len(lex.retrieve(q, 10**6)[0]) > 64
    with pytest.raises(ValueError, match="columns"):
        lex.retrieve(sp.csr_matrix((1, q.shape[1] + 1), dtype="float32"), 5)


def _reference_pair_dots(a, rows_a, b, rows_b):
    """a[i] . b[j] over the columns both rows hold, in increasing column order: float32
    products summed in float64, stored as float32."""
    out = np.zeros(len(rows_a), dtype=np.float32)
    for p, (i, j) in enumerate(zip(rows_a, rows_b)):
        ra = dict(zip(a.indices[a.indptr[i] : a.indptr[i + 1]].tolist(), a.data[a.indptr[i] : a.indptr[i + 1]]))
        rb = dict(zip(b.indices[b.indptr[j] : b.indptr[j + 1]].tolist(), b.data[b.indptr[j] : b.indptr[j + 1]]))
        acc = 0.0
        for c in sorted(set(ra) & set(rb)):
            acc += float(np.float32(ra[c]) * np.float32(rb[c]))
        out[p] = acc
    return out


@pytest.mark.parametrize("which", [0, 1])
def test_lexical_pair_scores_are_the_best_string_cosine(lexical_indexes, which):
    lex = lexical_indexes[which]
    q = lex.transform(QUERIES)
    rng = np.random.default_rng(which)
    qi = rng.integers(0, len(QUERIES), 400)
    ni = rng.integers(0, lex.n_nodes, 400)
    cos = (lex.matrix @ q.T).toarray()  # strings x queries
    ref = np.zeros(len(qi), dtype=np.float32)
    for p, (i, n) in enumerate(zip(qi, ni)):
        s = np.flatnonzero(lex.string_node == n)
        ref[p] = cos[s, i].max() if len(s) else 0.0
    assert np.allclose(lex.pair_scores(q, qi, ni), ref, atol=1e-6)
    assert lex.pair_scores(q, qi, ni).max() > 0.5


def test_quantize_rows_keeps_each_row_within_half_a_step():
    x = np.random.default_rng(3).normal(size=(50, 9)).astype("float32")
    x[4] = 0.0
    q, scale = quantize_rows(x)
    assert q.dtype == np.int8 and scale.dtype == np.float32 and scale[4] == 0 and not q[4].any()
    assert (np.abs(q).max(axis=1)[scale > 0] == 127).all()
    assert np.all(np.abs(q * scale[:, None] - x) <= scale[:, None] / 2 + 1e-7)


def _reference_pair_features(lex, q, qw, q_idf, qi, ni, leave_out_exact, dense):
    """Per pair: the node's string with the best cosine (the first on ties; with
    leave_out_exact, strings at cosine >= 0.9999 count as -1), its cosine, the word
    comparison of that string with the query, and the largest product of the query's
    dense row with the dense rows of the node's strings not left out (0 if none)."""
    n, V = len(ni), lex.word_matrix.shape[1]
    lexical, recall, precision, siamese = (np.zeros(n, dtype=np.float32) for _ in range(4))
    lo, qo = np.zeros((n, V), dtype=np.float32), np.zeros((n, V), dtype=np.float32)
    for p, (i, node) in enumerate(zip(qi, ni)):
        strings = np.flatnonzero(lex.string_node == node)
        if len(strings) == 0:
            continue
        sims = _reference_pair_dots(lex.matrix, strings, q, np.full(len(strings), i))
        if leave_out_exact:
            sims[sims >= 0.9999] = -1.0
        kept = strings[sims > -1.0] if leave_out_exact else strings
        if len(kept):
            rows = dense[0][kept].astype(np.float32) * dense[1][kept, None]
            siamese[p] = (rows @ dense[2][i]).max()
        best = strings[int(np.argmax(sims))]
        if sims.max() < 0:
            continue
        lexical[p] = sims.max()
        s_words = set(lex.word_matrix.indices[lex.word_matrix.indptr[best] : lex.word_matrix.indptr[best + 1]].tolist())
        q_words = set(qw.indices[qw.indptr[i] : qw.indptr[i + 1]].tolist())
        overlap = np.float32(0.0)
        for w in sorted(s_words & q_words):
            overlap = np.float32(overlap + lex.word_idf[w])
        recall[p] = overlap / q_idf[i] if q_idf[i] > 0 else 0.0
        s_idf = lex.word_idf[sorted(s_words)].sum() if s_words else 0.0
        precision[p] = overlap / s_idf if s_idf > 0 else 0.0
        lo[p, sorted(s_words - q_words)] = 1.0
        qo[p, sorted(q_words - s_words)] = 1.0
    return lexical, recall, precision, lo, qo, siamese


@pytest.mark.parametrize("which,leave_out_exact", [(0, False), (1, False), (0, True), (1, True)])
def test_lexical_pair_features_match_definition(lexical_indexes, which, leave_out_exact):
    lex = lexical_indexes[which]
    qw, q_idf = lex.word_transform(QUERIES)
    rng = np.random.default_rng(7 + which)
    qi = np.concatenate([np.sort(rng.integers(0, len(QUERIES), 300)), rng.integers(0, len(QUERIES), 100)])
    ni = rng.integers(0, lex.n_nodes, 400)
    # pairs whose node has a string equal to the query (the leave-out case)
    exact = list(lex.exact.items())[:5]
    queries = QUERIES + [t for t, _ in exact]
    qi = np.concatenate([qi, len(QUERIES) + np.arange(len(exact))])
    ni = np.concatenate([ni, [nodes[0] for _, nodes in exact]])
    q2, (qw2, q_idf2) = lex.transform(queries), lex.word_transform(queries)
    # dense rows of the strings (int8 with a scale each, as an index keeps them) and of the queries
    strings, scale = quantize_rows(rng.normal(size=(lex.matrix.shape[0], 5)))
    dense = (strings, scale, rng.normal(size=(len(queries), 5)).astype(np.float32))
    f = lex.pair_features(q2, qw2, q_idf2, qi, ni, leave_out_exact=leave_out_exact, dense=dense)
    lexical, recall, precision, lo, qo, siamese = _reference_pair_features(
        lex, q2, qw2, q_idf2, qi, ni, leave_out_exact, dense
    )
    assert np.array_equal(f.lexical, lexical)
    assert np.allclose(f.siamese, siamese, atol=1e-5) and (siamese != 0).sum() > 100
    without = lex.pair_features(q2, qw2, q_idf2, qi, ni, leave_out_exact=leave_out_exact)
    assert np.array_equal(without.lexical, f.lexical) and not without.siamese.any()
    with pytest.raises(ValueError, match="not mapped for this index"):
        lex.pair_features(q2, qw2, q_idf2, qi, ni, dense=(strings[1:], scale[1:], dense[2]))
    assert np.allclose(f.recall, recall, atol=1e-6) and np.allclose(f.precision, precision, atol=1e-6)
    assert np.array_equal(f.label_only.toarray(), lo) and np.array_equal(f.query_only.toarray(), qo)
    assert (f.lexical > 0.3).sum() > 5 and f.label_only.nnz > 0 and f.query_only.nnz > 0
    if leave_out_exact:
        assert (f.lexical[-len(exact) :] < 0.9999).all()
    else:
        assert np.allclose(f.lexical[-len(exact) :], 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="columns"):
        lex.pair_features(q2, sp.csr_matrix((len(queries), qw2.shape[1] + 1), dtype="float32"), q_idf2, qi, ni)


def test_scoring_in_threads_leaves_the_index_untouched(tiny_taxonomy):
    # the linker scores chunks of spans on several threads over one shared index: no
    # call may change the index's arrays (a lazy in-place sort of a shared matrix raced
    # and corrupted it), and the index must score the same after a save and load
    from concurrent.futures import ThreadPoolExecutor

    texts, sn = _strings(tiny_taxonomy)
    lex = LexicalIndex.build(texts, sn, len(tiny_taxonomy), max_df=0.5)
    arrays = lambda m: [a.copy() for a in (m.indptr, m.indices, m.data)]  # noqa: E731
    before = {name: arrays(getattr(lex, name)) for name in ("matrix", "word_matrix", "_retrieval_T")}

    def score(chunk):
        q = lex.transform(chunk)
        qw, q_idf = lex.word_transform(chunk)
        qi = np.repeat(np.arange(len(chunk)), len(tiny_taxonomy))
        ni = np.tile(np.arange(len(tiny_taxonomy)), len(chunk))
        f = lex.pair_features(q, qw, q_idf, qi, ni)
        return f.lexical, f.recall, lex.pair_scores(q, qi, ni), lex.retrieve(q, 3)

    chunks = [QUERIES[i : i + 3] for i in range(0, len(QUERIES), 3)] * 4
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(score, chunks))
    for name, old in before.items():
        assert all(np.array_equal(a, b) for a, b in zip(old, arrays(getattr(lex, name)))), name
    again = LexicalIndex.from_dict(lex.to_dict())
    for chunk, got in zip(chunks, threaded):
        lex_, rec, mem, ret = got
        q = again.transform(chunk)
        qw, q_idf = again.word_transform(chunk)
        qi = np.repeat(np.arange(len(chunk)), len(tiny_taxonomy))
        ni = np.tile(np.arange(len(tiny_taxonomy)), len(chunk))
        f = again.pair_features(q, qw, q_idf, qi, ni)
        assert np.array_equal(f.lexical, lex_) and np.array_equal(f.recall, rec)
        assert np.array_equal(again.pair_scores(q, qi, ni), mem)
        assert all(np.array_equal(a, b) for a, b in zip(again.retrieve(q, 3), ret))


# ------------------------------------------------------------------------------ serialization
def test_lexical_index_round_trips_through_disk_and_bytes(lexical_indexes, tmp_path):
    lex = lexical_indexes[1]
    lex.to_disk(tmp_path / "lex")
    assert sorted(p.name for p in (tmp_path / "lex").iterdir()) == sorted(LexicalIndex.PARTS)
    for again in (LexicalIndex.from_disk(tmp_path / "lex"), LexicalIndex.from_dict(lex.to_dict())):
        assert again.vocab == lex.vocab and again.word_vocab == lex.word_vocab and again.exact == lex.exact
        assert _same_csr(again.matrix, lex.matrix) and np.array_equal(again.string_node, lex.string_node)
        q = lex.transform(QUERIES)
        assert [a.tolist() for a in again.retrieve(q, 5)] == [a.tolist() for a in lex.retrieve(q, 5)]
    (tmp_path / "lex" / "cfg").unlink()
    with pytest.raises(KeyError, match="cfg"):
        LexicalIndex.from_disk(tmp_path / "lex")


def test_a_reranker_fitted_on_another_word_vocabulary_is_an_error_not_dropped_words(lexical_indexes):
    """The reranker's per-word weights are indexed by its lexical index's word columns: one
    fitted with another vocabulary (another pipeline's reranker folder, an index rebuilt
    after calibration) would score every pair with its word weights ignored, or misplaced,
    and still look calibrated. It fails on load and when scoring."""
    lex, _ = lexical_indexes
    n, V = lex.n_nodes, len(lex.word_vocab)
    space = np.random.default_rng(0).normal(size=(n, 6)).astype("float32")
    dense = np.ones(Reranker.N_DENSE)
    with pytest.raises(ValueError, match=f"word weights for {V + 2} words.*has {V}.*recalibrate"):
        NodeIndex(space, lex, n_trees=2, reranker=Reranker(dense, np.zeros(V + 2), np.zeros(V + 2)))
    with pytest.raises(ValueError, match="word weights"):
        NodeIndex(space, lex, n_trees=2, reranker=Reranker(dense, np.zeros(V), np.zeros(V - 1)))
    NodeIndex(space, lex, n_trees=2, reranker=Reranker(dense, np.zeros(V), np.zeros(V)))
    NodeIndex(space, lex, n_trees=2, reranker=Reranker(dense, np.zeros(0), np.zeros(0)))  # no word weights
    feats = {k: np.ones(4, dtype="float32") for k in Reranker.FEATURES}
    feats["label_only"] = feats["query_only"] = sp.csr_matrix((4, V), dtype="float32")
    with pytest.raises(ValueError, match=f"{V} word columns.*{V + 2} word weights"):
        Reranker(dense, np.zeros(V + 2), np.zeros(V + 2)).score(feats)
    assert np.allclose(Reranker(dense, np.zeros(0), np.zeros(0)).score(feats), Reranker.N_DENSE)


@pytest.mark.parametrize("ann", ["hnsw", "annoy"])
def test_node_index_save_over_an_older_one_leaves_none_of_its_parts(lexical_indexes, tmp_path, ann):
    """Saving an index without a reranker, leaf flags, neighbour subset or memory over the
    folder of one that had them removes their files: none is read back as this index's."""
    lex, memory = lexical_indexes
    n = lex.n_nodes
    space = np.random.default_rng(0).normal(size=(n, 6)).astype("float32")
    leaves = np.arange(n) % 2 == 0
    ann_file = KINDS[ann].FILE
    full = NodeIndex(
        space,
        lex,
        ann=ann,
        n_trees=2,
        reranker=Reranker(np.ones(Reranker.N_DENSE), np.zeros(len(lex.word_vocab)), np.zeros(len(lex.word_vocab))),
        is_leaf=leaves,
        memory=memory,
        ann_items=np.flatnonzero(leaves),
        strings=np.ones((lex.matrix.shape[0], 6), dtype="int8"),
        strings_scale=np.full(lex.matrix.shape[0], 0.5, dtype="float32"),
    )
    full.to_disk(tmp_path / "index")
    on_disk = {p.name for p in (tmp_path / "index").iterdir()}
    assert on_disk == {
        "cfg.json",
        "space.npy",
        ann_file,
        "lexical",
        "reranker",
        "is_leaf.npy",
        "memory",
        "ann_items.npy",
        "strings.npy",
        "strings_scale.npy",
    }
    again = NodeIndex.from_disk(tmp_path / "index")
    assert again.ann_kind == ann
    assert again.to_bytes() == full.to_bytes()
    assert again.strings.dtype == np.int8 and np.array_equal(again.strings, full.strings)
    assert np.array_equal(again.strings_scale, full.strings_scale)
    assert np.array_equal(NodeIndex.from_bytes(full.to_bytes()).strings, full.strings)
    with pytest.raises(ValueError, match="mapped strings and their scales"):
        NodeIndex(space, lex, ann=ann, n_trees=2, strings=np.ones((3, 6), dtype="int8"), strings_scale=np.ones(3))
    with pytest.raises(ValueError, match="mapped strings and their scales"):
        NodeIndex(space, lex, ann=ann, n_trees=2, strings=full.strings)
    assert np.array_equal(again.ann_items, full.ann_items) and again.reranker is not None
    bare = NodeIndex(space, lex, ann=ann, n_trees=2)
    bare.to_disk(tmp_path / "index")
    assert {p.name for p in (tmp_path / "index").iterdir()} == {"cfg.json", "space.npy", ann_file, "lexical"}
    back = NodeIndex.from_disk(tmp_path / "index")
    assert back.reranker is None and back.memory is None and back.is_leaf is None and back.ann_items is None
    assert NodeIndex.from_bytes(bare.to_bytes()).to_bytes() == bare.to_bytes() == back.to_bytes()
    # the other kind saved over it: its file replaces this one's
    other = "annoy" if ann == "hnsw" else "hnsw"
    NodeIndex(space, lex, ann=other, n_trees=2).to_disk(tmp_path / "index")
    assert {p.name for p in (tmp_path / "index").iterdir()} == {"cfg.json", "space.npy", KINDS[other].FILE, "lexical"}
    assert NodeIndex.from_disk(tmp_path / "index").ann_kind == other


def test_hnsw_search_is_exact_on_a_small_index_and_the_same_in_any_batch(lexical_indexes):
    """On a small index the HNSW search finds the exact nearest rows (largest inner product
    of unit rows), nearest first; a zero row gets none; a row's result does not depend on
    the rows searched with it; and a build from the same rows is the same bytes."""
    lex, _ = lexical_indexes
    n = lex.n_nodes
    rng = np.random.default_rng(1)
    space = rng.normal(size=(n, 8)).astype("float32")
    space /= np.linalg.norm(space, axis=1, keepdims=True)
    index = NodeIndex(space, lex, ann="hnsw")
    Y = rng.normal(size=(7, 8)).astype("float32")
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    Y[3] = 0.0
    k = min(4, n)
    found = index.ann_batch(Y, k)
    for i, got in enumerate(found):
        if i == 3:
            assert len(got) == 0
            continue
        want = np.argsort(-(space @ Y[i]), kind="stable")[:k]
        assert got.tolist() == want.tolist()
        assert index.ann(Y[i], k) == got.tolist()
    one_by_one = [index.ann_batch(Y[i : i + 1], k)[0].tolist() for i in range(len(Y))]
    assert one_by_one == [f.tolist() for f in found]
    assert NodeIndex(space, lex, ann="hnsw").to_bytes() == index.to_bytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_first_nodes_follow_a_stable_sort_with_ties(dtype):
    """The retrieval takes the first k distinct nodes of its shortlisted strings in the
    order of a stable sort of their scores, largest first (equal scores keep the
    product's column order); the kernel's heap gives exactly that order."""
    from spacy_text2node.index.kernels import _first_nodes

    rng = np.random.default_rng(0)
    cases = [np.zeros(0), np.ones(1), np.ones(7), np.arange(9.0), np.arange(9.0)[::-1], np.array([0.5, -0.0, 0.0, 0.5])]
    cases += [rng.integers(0, k, size=n).astype(float) / k for k in (2, 3, 10) for n in (2, 5, 16, 33, 100, 1000)]
    cases += [rng.random(257)]
    n_nodes = 40
    string_node = rng.integers(0, n_nodes, size=500)
    for case, v in enumerate(cases):
        v = np.asarray(v, dtype=dtype)
        strings = rng.integers(0, len(string_node), size=len(v))
        for k in (0, 1, 3, 25, 100):
            seen = np.full(n_nodes, 7, dtype=np.int64)  # stamps of an earlier row
            out = np.full(k + 2, -1, dtype=np.int64)
            n = _first_nodes(v, strings, string_node, seen, 100 + case, k, out, 1, np.empty(len(v), dtype=np.int64))
            want = []
            for p in np.argsort(-v, kind="stable"):
                node = int(string_node[strings[p]])
                if node not in want and len(want) < k:
                    want.append(node)
            assert out[1 : 1 + n].tolist() == want, (case, k)
            assert out[0] == -1 and (k == 0 or out[1 + n :].tolist() == [-1] * (k + 1 - n))


@pytest.mark.parametrize("unit_rows", [True, False])
def test_principal_components_is_scikit_learns_pca_up_to_signs(unit_rows):
    """Our PCA (an exact eigendecomposition, kept because the node spaces of trained
    linkers were built with it) spans what scikit-learn's exact PCA spans: the same
    projections up to the sign of each component (which no cosine sees)."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, 12)) * np.linspace(3.0, 0.2, 12)).astype("float32")
    x[:4] = 0.0  # no known word: left out of the fit, and zero after
    ours = principal_components(x, 5, unit_rows=unit_rows)
    live = l2_normalize(x[4:]) if unit_rows else x[4:]
    theirs = PCA(n_components=5, svd_solver="full").fit(live).transform(live)
    signs = np.sign((ours[4:] * theirs).sum(0))
    assert set(signs.tolist()) <= {-1.0, 1.0}
    np.testing.assert_allclose(ours[4:], theirs * signs, atol=1e-4)
    assert not ours[:4].any()
    # the cosine geometry is the same whatever the signs
    np.testing.assert_allclose(ours[4:] @ ours[4:].T, theirs @ theirs.T, atol=1e-3)


# ------------------------------------------------------------------------------ scikit-learn parity
def _sklearn_tfidf(texts):
    """scikit-learn's char_wb TF-IDF set up as ours: 3-grams of each word padded with spaces,
    smoothed IDF ln((1 + n) / (1 + df)) + 1, raw counts, L2 rows. Our words are the
    lower-cased unicode \\w+ runs, so the preprocessor hands scikit-learn those, joined by
    spaces (its own split is at whitespace only: "COVID-19" would be one word)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(3, 3),
        preprocessor=lambda t: " ".join(words(t)),
        smooth_idf=True,
        sublinear_tf=False,
        norm="l2",
    ).fit(texts)


def _in_our_columns(lex, vec, m):
    """scikit-learn's columns (sorted n-grams) reordered to ours (first occurrence)."""
    names = vec.get_feature_names_out()
    assert sorted(names) == sorted(lex.vocab)
    order = np.empty(len(names), dtype="int64")
    for j, g in enumerate(names):
        order[lex.vocab[g]] = j
    return m.toarray()[:, order]


def test_tfidf_matches_scikit_learn_char_wb(lexical_indexes, tiny_taxonomy):
    texts, _ = _strings(tiny_taxonomy)
    lex = lexical_indexes[0]
    vec = _sklearn_tfidf(texts)
    ours_idf = np.empty(len(lex.vocab))
    ours_idf[[lex.vocab[g] for g in vec.get_feature_names_out()]] = vec.idf_
    np.testing.assert_allclose(lex.idf, ours_idf, rtol=1e-6)
    # the taxonomy's strings: the same rows
    np.testing.assert_allclose(lex.matrix.toarray(), _in_our_columns(lex, vec, vec.transform(texts)), atol=1e-6)
    # queries whose n-grams the taxonomy all has: the same rows
    known = [t for t in QUERIES if all(g in lex.vocab for g in char_ngrams(t))]
    assert len(known) >= 5 and "" in known
    np.testing.assert_allclose(
        lex.transform(known).toarray(), _in_our_columns(lex, vec, vec.transform(known)), atol=1e-6
    )


def test_tfidf_differs_from_scikit_learn_only_by_the_norm_of_unknown_ngrams(lexical_indexes, tiny_taxonomy):
    """By design, n-grams the taxonomy lacks count in a query's norm (with the highest IDF)
    where scikit-learn drops them: a query of mostly unknown n-grams must not look like a
    taxonomy string that shares its few known ones. Our row is scikit-learn's scaled by
    |known| / |all|, nothing else."""
    texts, _ = _strings(tiny_taxonomy)
    lex = lexical_indexes[0]
    vec = _sklearn_tfidf(texts)
    unknown = [t for t in QUERIES if any(g not in lex.vocab for g in char_ngrams(t))]
    assert len(unknown) >= 5
    theirs = _in_our_columns(lex, vec, vec.transform(unknown))
    ours = lex.transform(unknown).toarray()
    unk_idf = float(lex.idf.max())
    for t, a, b in zip(unknown, ours, theirs):
        counts = Counter(char_ngrams(t))
        known_sq = sum((v * float(lex.idf[lex.vocab[g]])) ** 2 for g, v in counts.items() if g in lex.vocab)
        unknown_sq = sum((v * unk_idf) ** 2 for g, v in counts.items() if g not in lex.vocab)
        assert unknown_sq > 0
        np.testing.assert_allclose(a, b * np.sqrt(known_sq / (known_sq + unknown_sq)), atol=1e-6)
    # so a query sharing one n-gram with a string scores lower than scikit-learn's cosine
    some = next(i for i, t in enumerate(unknown) if ours[i].any())
    assert np.linalg.norm(ours[some]) < np.linalg.norm(theirs[some]) - 1e-3


def test_hnsw_searches_of_different_breadths_side_by_side_keep_their_own():
    """usearch keeps the search breadth on the index: searches of two breadths running in
    threads at once must each get the results they get alone."""
    from concurrent.futures import ThreadPoolExecutor

    from spacy_text2node.index.neighbours import HnswNeighbours

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(4000, 16)).astype("float32")
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    Y = rng.normal(size=(64, 16)).astype("float32")
    index = HnswNeighbours.build(rows, m=4, ef_construction=16)
    alone = {ef: [r.tolist() for r in index.search(Y, 5, ef=ef)] for ef in (5, 200)}
    assert alone[5] != alone[200]  # the breadth matters on this index
    jobs = [5, 200] * 40
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda ef: (ef, [r.tolist() for r in index.search(Y, 5, ef=ef)]), jobs))
    assert all(res == alone[ef] for ef, res in got)


def _ranked_one_query_at_a_time(qi, ni, score, n_queries, k, softmax):
    """The definition `ranked_top_k` must keep: each query's pairs alone, sorted by score
    (ties by node), the shown score its softmax among all of the query's pairs."""
    out = []
    for i in range(n_queries):
        nodes, z = ni[qi == i], score[qi == i]
        shown = np.exp(z - z.max()) / np.exp(z - z.max()).sum() if softmax and len(z) else z
        order = sorted(range(len(z)), key=lambda j: (-z[j], nodes[j]))[:k]
        out.append([(int(nodes[j]), float(shown[j])) for j in order])
    return out


@pytest.mark.parametrize("softmax", [False, True])
@pytest.mark.parametrize("k", [1, 3, 50])
def test_ranked_top_k_matches_one_query_at_a_time(softmax, k):
    rng = np.random.default_rng(7)
    n_queries = 40
    per_query = rng.integers(0, 9, n_queries)  # some queries have no pair at all
    per_query[[0, -1]] = 0  # nor the first and the last
    qi = np.repeat(np.arange(n_queries), per_query)
    ni = np.concatenate([rng.choice(30, c, replace=False) for c in per_query]).astype("int64")
    score = rng.choice([0.25, 0.5, 0.75, 1.0, 2.0], len(ni))  # many ties between nodes
    got = ranked_top_k(qi, ni, score, n_queries, k, softmax=softmax)
    want = _ranked_one_query_at_a_time(qi, ni, score, n_queries, k, softmax)
    assert [[n for n, _ in r] for r in got] == [[n for n, _ in r] for r in want]
    for g, w in zip(got, want):
        assert [s for _, s in g] == pytest.approx([s for _, s in w], rel=1e-12, abs=1e-15)
    assert [len(r) for r in got] == [min(int(c), k) for c in per_query]
    if softmax:
        for r, c in zip(got, per_query):
            if 0 < c <= k:  # a query's whole list: its probabilities sum to one
                assert sum(s for _, s in r) == pytest.approx(1.0)


def test_ranked_top_k_of_no_pairs():
    empty = np.zeros(0, dtype="int64")
    assert ranked_top_k(empty, empty, np.zeros(0), 3, 5, softmax=True) == [[], [], []]
    assert ranked_top_k(empty, empty, np.zeros(0), 0, 5, softmax=False) == []


def test_ranked_top_k_puts_nan_scores_last():
    """A NaN score (a damaged feature) ranks after every number, NaNs by node, as a sort
    of the negated scores orders them; larger queries than k fill and drop the list."""
    qi = np.array([0] * 6 + [1] * 3, dtype="int64")
    ni = np.array([5, 1, 4, 2, 3, 0, 7, 8, 6], dtype="int64")
    score = np.array([np.nan, 0.5, np.nan, 0.9, 0.5, 0.1, np.nan, np.nan, np.nan])
    got = ranked_top_k(qi, ni, score, 2, 5, softmax=False)
    assert [[n for n, _ in r] for r in got] == [[2, 1, 3, 0, 4], [6, 7, 8]]
    assert [len(r) for r in ranked_top_k(qi, ni, score, 2, 2, softmax=False)] == [2, 2]
