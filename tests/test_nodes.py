"""node2vec walks, skip-gram, node-vector files, parent MRR and the embed-nodes CLI."""

import json
from collections import Counter

import numpy as np
import pytest
from spacy.util import registry
from typer.testing import CliRunner

import spacy_text2node.cli.nodes  # noqa: F401  (registers the commands until the lead wires it)
from spacy_text2node import Taxonomy, TaxonomyBuilder
from spacy_text2node.cli import app
from spacy_text2node.nodes import (
    Node2VecConfig,
    NodeVectors,
    embed_nodes,
    node2vec_csr,
    parent_mrr,
    parent_ranks,
    random_walks,
)
from spacy_text2node.nodes.sgns import alias_table, keep_probabilities

SMALL = dict(dim=16, walk_length=20, num_walks=4, window=4, epochs=1)


def _csr_from_edges(n, edges):
    nbrs = [set() for _ in range(n)]
    for a, b in edges:
        nbrs[a].add(b)
        nbrs[b].add(a)
    indptr = np.zeros(n + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(x) for x in nbrs])
    indices = np.asarray([j for x in nbrs for j in sorted(x)], dtype=np.int32)
    return indptr, indices


@pytest.fixture(scope="module")
def chapter(icd10cm):
    """An ICD-10-CM chapter (about 2,000 concepts), a real tree of useful size."""
    root = next(r for r in icd10cm.roots if len(icd10cm.descendants(r)) > 1500 and len(icd10cm.descendants(r)) < 4000)
    return icd10cm.subtree([root], name=f"icd10cm-{root}")


# walks ---------------------------------------------------------------------------------
def test_walks_follow_edges_and_start_nodes(tiny_taxonomy):
    indptr, indices = tiny_taxonomy.csr()
    n = len(tiny_taxonomy)
    ids = np.arange(3 * n)
    walks, lengths = random_walks(indptr, indices, ids, walk_length=15, p=1.0, q=0.5, seed=3)
    assert walks.shape == (3 * n, 15) and walks.dtype == np.int32
    assert (walks[:, 0] == ids % n).all()
    for w, length in zip(walks, lengths):
        assert length == 15
        for a, b in zip(w[: length - 1], w[1:length]):
            assert b in indices[indptr[a] : indptr[a + 1]]


def test_walks_same_for_seed_whatever_threads_and_order(tiny_taxonomy):
    indptr, indices = tiny_taxonomy.csr()
    ids = np.arange(200)
    w1, _ = random_walks(indptr, indices, ids, walk_length=30, q=0.5, seed=7, parallel=True)
    w2, _ = random_walks(indptr, indices, ids[::-1].copy(), walk_length=30, q=0.5, seed=7, parallel=False)
    assert (w1 == w2[::-1]).all()
    w3, _ = random_walks(indptr, indices, ids, walk_length=30, q=0.5, seed=8)
    assert not (w1 == w3).all()


def test_walk_steps_follow_node2vec_bias():
    # 0 - 1, 1 - 2, 1 - 3, 2 - 3, 1 - 4: from 1 having come from 0, the weights are
    # 1/p for 0 (return), 1/q for 2, 3 and 4 (none is a neighbour of 0).
    # From 1 having come from 2: 1/p for 2, 1 for 3 (neighbour of 2), 1/q for 0 and 4.
    indptr, indices = _csr_from_edges(5, [(0, 1), (1, 2), (1, 3), (2, 3), (1, 4)])
    p, q = 2.0, 0.25
    walks, _ = random_walks(indptr, indices, np.arange(0, 5 * 40000, 5) + 2, walk_length=3, p=p, q=q, seed=1)
    # walks from node 2: step 1 goes to 1 or 3; look at the third node after 2 -> 1
    sel = walks[walks[:, 1] == 1]
    counts = Counter(sel[:, 2].tolist())
    weights = {2: 1 / p, 3: 1.0, 0: 1 / q, 4: 1 / q}
    total = sum(weights.values())
    for node, w in weights.items():
        expected = w / total
        observed = counts[node] / len(sel)
        assert abs(observed - expected) < 0.02, (node, observed, expected)


def test_isolated_node_walks_have_length_one():
    indptr, indices = _csr_from_edges(4, [(0, 1), (1, 2)])
    walks, lengths = random_walks(indptr, indices, np.arange(8), walk_length=5)
    assert lengths.tolist() == [5, 5, 5, 1] * 2


# skip-gram helpers ---------------------------------------------------------------------
def test_alias_table_samples_in_proportion():
    w = np.array([1.0, 0.0, 3.0, 6.0])
    prob, alias = alias_table(w)
    # exact distribution implied by the table
    n = len(w)
    implied = np.zeros(n)
    for k in range(n):
        implied[k] += prob[k] / n
        implied[alias[k]] += (1 - prob[k]) / n
    assert np.allclose(implied, w / w.sum())
    with pytest.raises(ValueError):
        alias_table(np.zeros(3))


def test_keep_probabilities_gensim_formula():
    counts = np.array([1000, 10, 0, 1])
    keep = keep_probabilities(counts, 0.01)
    threshold = 0.01 * counts.sum()
    assert keep[0] == pytest.approx((np.sqrt(1000 / threshold) + 1) * threshold / 1000, rel=1e-6)
    assert keep[1] == 1.0 and keep[2] == 1.0
    assert (keep_probabilities(counts, 0) == 1).all()


# node2vec -------------------------------------------------------------------------------
def test_embed_nodes_shape_order_and_determinism(tiny_taxonomy):
    a = embed_nodes(tiny_taxonomy, workers=1, seed=0, progress=False, **SMALL)
    b = embed_nodes(tiny_taxonomy, workers=1, seed=0, progress=False, **SMALL)
    c = embed_nodes(tiny_taxonomy, workers=1, seed=1, progress=False, **SMALL)
    assert a.vectors.dtype == np.float32 and a.shape == (len(tiny_taxonomy), 16)
    assert a.ids == tiny_taxonomy.ids
    assert np.array_equal(a.vectors, b.vectors)
    assert not np.array_equal(a.vectors, c.vectors)
    assert np.isfinite(a.vectors).all()
    assert a.cfg["params"]["q"] == 0.5 and a.cfg["taxonomy"] == tiny_taxonomy.name


def test_chunking_does_not_change_the_result(tiny_taxonomy):
    a = embed_nodes(tiny_taxonomy, workers=1, seed=5, progress=False, chunk_size=7, **SMALL)
    b = embed_nodes(tiny_taxonomy, workers=1, seed=5, progress=False, chunk_size=10_000, **SMALL)
    assert np.array_equal(a.vectors, b.vectors)


def test_parallel_workers_train_as_well(chapter):
    params = dict(dim=32, walk_length=40, num_walks=4, window=5, seed=0, progress=False)
    one = embed_nodes(chapter, workers=1, **params)
    two = embed_nodes(chapter, workers=2, **params)
    m1, m2 = parent_mrr(chapter, one, 500), parent_mrr(chapter, two, 500)
    assert abs(m1 - m2) < 0.1 * max(m1, m2)


def test_node2vec_puts_parents_near_children(chapter):
    nv = embed_nodes(chapter, dim=32, walk_length=40, num_walks=4, window=5, workers=2, seed=0, progress=False)
    trained = parent_mrr(chapter, nv, n_samples=500)
    rng = np.random.default_rng(0)
    untrained = parent_mrr(chapter, rng.standard_normal(nv.shape).astype(np.float32), n_samples=500)
    # a random parent among ~2,000 nodes ranks ~1,000th (MRR ~ 0.004)
    assert untrained < 0.05
    assert trained > 5 * untrained


def test_isolated_nodes_get_their_initial_vector():
    b = TaxonomyBuilder("test", name="with-isolated")
    b.add("R", "root")
    for i in range(6):
        b.add(f"C{i}", f"child {i}", parents=["R"])
    b.add("ALONE", "isolated concept")
    tax = b.build()
    nv = embed_nodes(tax, workers=1, progress=False, **SMALL)
    # the documented initialization: uniform in +-0.5/dim from the seed, in node order
    rng = np.random.default_rng(0)
    init = ((rng.random((len(tax), SMALL["dim"]), dtype=np.float32) - 0.5) / SMALL["dim"]).astype(np.float32)
    alone = tax.index("ALONE")
    assert np.array_equal(nv.vectors[alone], init[alone])
    assert np.linalg.norm(nv["ALONE"]) > 0
    assert nv.cfg["stats"]["isolated_nodes"] == 1
    # every connected node was trained
    connected = [i for i in range(len(tax)) if i != alone]
    assert not np.isclose(nv.vectors[connected], init[connected]).all(axis=1).any()


@pytest.mark.parametrize(
    "params,word",
    [
        ({"p": 0}, "p must be > 0"),
        ({"p": -1.0}, "p must be > 0"),
        ({"q": 0}, "q must be > 0"),
        ({"dim": 1}, "dim must be at least 2"),
        ({"walk_length": 1}, "walk_length must be at least 2"),
        ({"num_walks": 0}, "num_walks"),
        ({"window": 0}, "window"),
    ],
)
def test_bad_parameters_raise(tiny_taxonomy, params, word):
    with pytest.raises(ValueError, match=word):
        embed_nodes(tiny_taxonomy, progress=False, **params)


def test_empty_taxonomy_raises():
    with pytest.raises(ValueError, match="empty"):
        embed_nodes(Taxonomy("nothing"), progress=False)
    with pytest.raises(ValueError, match="empty"):
        node2vec_csr(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32), progress=False)


def test_config_object_and_overrides(tiny_taxonomy):
    cfg = Node2VecConfig(dim=8, walk_length=10, num_walks=2, window=3)
    nv = embed_nodes(tiny_taxonomy, cfg, q=2.0, progress=False)
    assert nv.dim == 8 and nv.cfg["params"]["q"] == 2.0


# quality ------------------------------------------------------------------------------------
def test_parent_ranks_match_a_brute_force_count(tiny_taxonomy):
    n = len(tiny_taxonomy)
    X = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    got = parent_ranks(tiny_taxonomy, X, n_samples=1000)
    with_parent = [i for i in range(n) if tiny_taxonomy.parent_indices(i)]
    assert got["nodes"].tolist() == with_parent
    for i, rank in zip(got["nodes"].tolist(), got["ranks"].tolist()):
        cos = {j: float(X[i] @ X[j] / np.linalg.norm(X[i]) / np.linalg.norm(X[j])) for j in range(n) if j != i}
        order = sorted(cos, key=lambda j: -cos[j])
        first_parent = min(order.index(p) for p in tiny_taxonomy.parent_indices(i))
        assert rank == first_parent + 1
    assert parent_mrr(tiny_taxonomy, X, n_samples=1000) == pytest.approx(np.mean(1 / got["ranks"]))
    sample = parent_ranks(tiny_taxonomy, X, n_samples=5, seed=1)["nodes"]
    assert len(sample) == 5 and set(sample.tolist()) <= set(with_parent)


def test_parent_rank_counts_nodes_at_least_as_near():
    b = TaxonomyBuilder("test", name="line")
    b.add("A", "a")
    b.add("B", "b", parents=["A"])
    b.add("C", "c")
    b.add("D", "d")
    tax = b.build()
    X = np.array([[1, 0], [1, 0.1], [1, 0.05], [0, 1]], dtype=np.float32)
    # for B: C (0.05) is nearer than the parent A, D is farther: rank 2
    r = parent_ranks(tax, X)
    assert r["nodes"].tolist() == [1] and r["ranks"].tolist() == [2]
    assert parent_mrr(tax, X) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="do not fit"):
        parent_mrr(tax, X[:3])


# files and registry ----------------------------------------------------------------------------
def test_node_vectors_round_trip_and_order_check(tiny_taxonomy, tmp_path):
    nv = embed_nodes(tiny_taxonomy, workers=1, progress=False, **SMALL)
    nv.to_disk(tmp_path / "nv")
    assert sorted(p.name for p in (tmp_path / "nv").iterdir()) == ["cfg.json", "nodes.json", "vectors.npy"]
    assert json.loads((tmp_path / "nv" / "nodes.json").read_text()) == tiny_taxonomy.ids
    back = NodeVectors.from_disk(tmp_path / "nv", taxonomy=tiny_taxonomy)
    assert np.array_equal(back.vectors, nv.vectors) and back.ids == nv.ids
    assert back.cfg["n"] == len(tiny_taxonomy) and back.cfg["dim"] == 16
    other = tiny_taxonomy.subtree(["RESP"])
    other_ids = list(reversed(tiny_taxonomy.ids))
    NodeVectors(other_ids, nv.vectors).to_disk(tmp_path / "rev")
    with pytest.raises(ValueError, match="node order does not match"):
        NodeVectors.from_disk(tmp_path / "rev", taxonomy=tiny_taxonomy)
    with pytest.raises(ValueError, match="vectors but"):
        NodeVectors.from_disk(tmp_path / "nv", taxonomy=other)
    with pytest.raises(ValueError, match="not a node-vector directory"):
        NodeVectors.from_disk(tmp_path)


def test_registered_functions(tiny_taxonomy, tmp_path):
    make = registry.misc.get("spacy-text2node.Node2Vec.v1")
    nv = make(tiny_taxonomy, dim=8, walk_length=10, num_walks=2, window=3, workers=1, seed=0)
    assert nv.shape == (len(tiny_taxonomy), 8)
    nv.to_disk(tmp_path / "nv")
    tax_dir = tmp_path / "tax"
    tiny_taxonomy.to_disk(tax_dir)
    cfg = {
        "vectors": {
            "@misc": "spacy-text2node.NodeVectors.v1",
            "path": str(tmp_path / "nv"),
            "taxonomy": {"@misc": "spacy-text2node.TaxonomyDir.v1", "path": str(tax_dir)},
        }
    }
    loaded = registry.resolve(cfg)["vectors"]
    assert np.array_equal(loaded.vectors, nv.vectors)


# CLI ---------------------------------------------------------------------------------------------
def test_cli_embed_nodes_and_eval(tiny_taxonomy, tmp_path):
    tax_dir, out = tmp_path / "tax", tmp_path / "out"
    tiny_taxonomy.to_disk(tax_dir)
    runner = CliRunner()
    args = [
        "embed-nodes",
        str(tax_dir),
        str(out),
        "--dim",
        "8",
        "--walk-length",
        "10",
        "--num-walks",
        "2",
        "--window",
        "3",
        "--workers",
        "1",
        "--seed",
        "0",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "parent MRR" in res.output
    nv = NodeVectors.from_disk(out, taxonomy=tiny_taxonomy)
    assert nv.shape == (len(tiny_taxonomy), 8)
    assert nv.cfg["params"]["walk_length"] == 10 and 0 < nv.cfg["quality"]["parent_mrr"] <= 1
    res = runner.invoke(app, ["nodes", "eval", str(tax_dir), str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["parent_mrr"] == pytest.approx(nv.cfg["quality"]["parent_mrr"])
    bad = runner.invoke(app, ["embed-nodes", str(tax_dir), str(tmp_path / "x"), "--q", "0"])
    assert bad.exit_code == 1 and "q must be > 0" in " ".join(bad.output.split())
    missing = runner.invoke(app, ["embed-nodes", str(tmp_path / "nope"), str(tmp_path / "x")])
    assert missing.exit_code == 1 and "no taxonomy.msgpack here" in " ".join(missing.output.split())


# slow: full ICD-10-CM, and a check against gensim on the same walks --------------------------------
@pytest.mark.slow
@pytest.mark.long
def test_full_icd10cm_node2vec(icd10cm):
    # the whole graph at the default width, with a quarter of the default walks (the project's
    # `nodes` step runs the defaults); the walks' and the training's cost scale with their tokens
    nv = embed_nodes(icd10cm, workers=2, seed=0, progress=False, num_walks=5, walk_length=40)
    assert nv.shape == (len(icd10cm), 128)
    assert np.isfinite(nv.vectors).all()
    rng = np.random.default_rng(0)
    random_mrr = parent_mrr(icd10cm, rng.standard_normal(nv.shape).astype(np.float32))
    assert parent_mrr(icd10cm, nv) > 20 * random_mrr


@pytest.mark.slow
def test_skipgram_no_worse_than_gensim_on_same_walks(chapter, tmp_path):
    from gensim.models import Word2Vec

    params = dict(dim=64, walk_length=40, num_walks=5, window=5, seed=0)
    ours = embed_nodes(chapter, workers=1, progress=False, **params)
    indptr, indices = chapter.csr()
    n = len(chapter)
    walks, lengths = random_walks(indptr, indices, np.arange(n * 5), walk_length=40, q=0.5, seed=0)
    corpus = tmp_path / "walks.txt"
    with corpus.open("w") as f:
        for w, k in zip(walks, lengths):
            f.write(" ".join(map(str, w[:k])) + "\n")
    model = Word2Vec(corpus_file=str(corpus), vector_size=64, window=5, sg=1, min_count=0, workers=1, epochs=1, seed=0)
    theirs = np.stack([model.wv[str(i)] for i in range(n)])
    m_ours, m_theirs = parent_mrr(chapter, ours), parent_mrr(chapter, theirs)
    assert m_ours >= 0.9 * m_theirs, (m_ours, m_theirs)
