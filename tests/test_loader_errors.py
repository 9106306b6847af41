"""Issue 17: loaders (taxonomy and vector files) and the non-link CLI commands fail loudly and clearly.

Every bad input below is an error naming the file (and line or row) and what to do; on the command line
it is one `✘` line and a non-zero exit, never a traceback.
"""

import gzip
import json
import struct

import numpy as np
import pytest
from conftest import FIXTURES
from typer.testing import CliRunner

from spacy_text2node import Taxonomy, TaxonomyError
from spacy_text2node.cli import app
from spacy_text2node.nodes import NodeVectors
from spacy_text2node.util import open_binary
from spacy_text2node.vectors import VectorsError, read_vectors

GLOVE_TXT = FIXTURES / "vectors_glove_300.txt"
TINY_CSV = FIXTURES / "tiny_taxonomy.csv"


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8"))
    return p


def _fails_cleanly(res, *needles, code=None):
    """The command exited non-zero through msg.fail (no traceback) and said every needle."""
    assert res.exit_code != 0, res.output
    if code is not None:
        assert res.exit_code == code, res.output
    # an unexpected exception would be kept in res.exception; msg.fail exits with SystemExit
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    fails = [line for line in res.output.splitlines() if "✘" in line]
    assert len(fails) == 1, res.output
    flat = " ".join(res.output.split())  # wasabi wraps messages at 80 columns (never inside a word)
    for needle in needles:
        assert needle in flat, (needle, res.output)


# --- taxonomy CSV header -----------------------------------------------------------
def test_csv_header_parent_instead_of_parents(tmp_path):
    p = _write(tmp_path, "t.csv", "id,label,parent,synonyms\nA,Alpha,,\nB,Beta,A,\n")
    with pytest.raises(TaxonomyError) as e:
        Taxonomy.from_csv(p)
    text = str(e.value)
    assert f"{p}, line 1" in text
    assert "unknown column 'parent'" in text
    assert "did you mean 'parents'?" in text
    assert "id, label, parents, synonyms, definition" in text


def test_csv_unknown_column_without_a_close_match(tmp_path):
    p = _write(tmp_path, "t.tsv", "id\tlabel\tnotes\nA\tAlpha\tx\n")
    with pytest.raises(TaxonomyError, match=r"t\.tsv, line 1: unknown column 'notes'") as e:
        Taxonomy.from_csv(p)
    assert "did you mean" not in str(e.value)
    assert "remove" in str(e.value).lower()


def test_csv_missing_required_column_suggests_the_close_one(tmp_path):
    p = _write(tmp_path, "t.csv", "id,lable,parents\nA,Alpha,\n")
    with pytest.raises(TaxonomyError, match=r"t\.csv, line 1: no 'label' column") as e:
        Taxonomy.from_csv(p)
    assert "did you mean 'label'" in str(e.value) and "'lable'" in str(e.value)


def test_csv_duplicate_column_is_an_error(tmp_path):
    p = _write(tmp_path, "t.csv", "id,label,parents,parents\nA,Alpha,,\n")
    with pytest.raises(TaxonomyError, match=r"t\.csv, line 1: column 'parents' appears twice"):
        Taxonomy.from_csv(p)


def test_csv_accepted_columns_keep_working(tmp_path):
    # any order, surrounding spaces, only the required columns, or renamed columns
    p = _write(tmp_path, "t.csv", "definition, synonyms ,label,id,parents\nroot,r1|r2,Root,R,\n,,Kid,K,R\n")
    t = Taxonomy.from_csv(p)
    assert t.parents("K") == ["R"] and [s.text for s in t.synonyms("R")] == ["r1", "r2"]
    assert t.definition("R") == "root"
    q = _write(tmp_path, "q.csv", "id,label\nA,Alpha\n")
    assert Taxonomy.from_csv(q).ids == ["A"]
    r = _write(tmp_path, "r.csv", "code,name,up\nA,Alpha,\nB,Beta,A\n")
    t = Taxonomy.from_csv(r, id_column="code", label_column="name", parents_column="up")
    assert t.parents("B") == ["A"]


def test_cli_build_csv_with_parent_header(tmp_path):
    p = _write(tmp_path, "t.csv", "id,label,parent,synonyms\nA,Alpha,,\nB,Beta,A,\n")
    res = CliRunner().invoke(app, ["taxonomy", "build", str(p), str(tmp_path / "out"), "--format", "csv"])
    _fails_cleanly(res, "line 1", "did you mean 'parents'?", code=1)
    assert not (tmp_path / "out").exists()


# --- gzip ---------------------------------------------------------------------------
def _truncated_gz(tmp_path, name, data, keep=0.5):
    p = tmp_path / name
    z = gzip.compress(data)
    p.write_bytes(z[: int(len(z) * keep)])
    return p


def test_open_binary_truncated_gzip_is_a_value_error(tmp_path):
    p = _truncated_gz(tmp_path, "notes.jsonl.gz", b'{"id": 1, "text": "some words here"}\n' * 2000)
    with pytest.raises(ValueError, match=r"notes\.jsonl\.gz: the file is truncated or damaged \(gzip: "):
        with open_binary(p) as f:
            for _ in f:
                pass
    # damaged data in the middle of the stream: zlib.error without the fix
    z = bytearray(gzip.compress(bytes(range(256)) * 4000))
    z[len(z) // 2 : len(z) // 2 + 64] = b"\xff" * 64
    q = tmp_path / "damaged.gz"
    q.write_bytes(bytes(z))
    with pytest.raises(ValueError, match=r"damaged\.gz: the file is truncated or damaged \(gzip: "):
        with open_binary(q) as f:
            f.read()


def test_truncated_gzip_taxonomy_names_the_file(tmp_path):
    p = _truncated_gz(tmp_path, "t.csv.gz", TINY_CSV.read_bytes() * 1, keep=0.6)
    damaged = r"t\.csv\.gz: the file is truncated or damaged \(gzip: .*\) after line \d+"
    with pytest.raises(TaxonomyError, match=damaged):
        Taxonomy.from_csv(p)


@pytest.mark.parametrize("fmt", ["glove", "auto"])
def test_truncated_gzip_vectors_name_the_file(tmp_path, fmt):
    p = _truncated_gz(tmp_path, "v.txt.gz", GLOVE_TXT.read_bytes())
    with pytest.raises(VectorsError, match=r"v\.txt\.gz: the file is truncated or damaged \(gzip: "):
        read_vectors(p, fmt)


def test_truncated_gzip_word2vec_binary_names_the_file(tmp_path):
    words, matrix = read_vectors(GLOVE_TXT, "glove", max_words=50)
    body = b"".join(w.encode() + b" " + row.astype("<f4").tobytes() + b"\n" for w, row in zip(words, matrix))
    p = _truncated_gz(tmp_path, "v.bin.gz", f"{len(words)} 50\n".encode() + body)
    with pytest.raises(VectorsError, match=r"v\.bin\.gz: the file is truncated or damaged \(gzip: "):
        read_vectors(p, "word2vec-binary")


# --- non-finite vector values ---------------------------------------------------------
@pytest.mark.parametrize(
    "content,fmt,line,value",
    [
        ("a 1.0 2.0\nb 1.0 nan\n", "glove", 2, "nan"),
        ("a 1.0 2.0\nb NaN 1.0\n", "glove", 2, "NaN"),
        ("a inf 2.0\nb 1.0 2.0\n", "glove", 1, "inf"),
        ("2 2\na 1.0 2.0\nb -inf 2.0\n", "word2vec", 3, "-inf"),
        ("2 2\na 1.0 2.0\nb 1e39 2.0\n", "fasttext-vec", 3, "1e39"),  # overflows float32
        ("a 1.0 2.0\nb 1.0 Infinity\n", "auto", 2, "Infinity"),
    ],
)
def test_non_finite_text_vectors_name_line(tmp_path, content, fmt, line, value):
    p = tmp_path / "nf.txt"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(VectorsError) as e:
        read_vectors(p, fmt)
    text = str(e.value)
    assert f"{p}, line {line}: {value!r}" in text and "not a finite number" in text
    assert "Fix or remove the line" in text


def test_non_finite_gzip_and_binary_vectors(tmp_path):
    gz = tmp_path / "nf.txt.gz"
    gz.write_bytes(gzip.compress(b"a 1.0 2.0\nb 1.0 nan\n"))
    with pytest.raises(VectorsError, match=r"nf\.txt\.gz, line 2: 'nan'"):
        read_vectors(gz, "glove")
    binf = tmp_path / "nf.bin"
    rows = [("a", [1.0, 2.0]), ("b", [float("nan"), 2.0])]
    binf.write_bytes(b"2 2\n" + b"".join(w.encode() + b" " + struct.pack("<2f", *v) + b"\n" for w, v in rows))
    with pytest.raises(VectorsError, match=r"nf\.bin, entry 2 \('b'\): values that are not finite.*Fix or remove"):
        read_vectors(binf, "word2vec-binary")


# --- taxonomy.msgpack -------------------------------------------------------------------
def _damaged_variants(good: bytes):
    rng = np.random.default_rng(0)
    return {
        "random": rng.integers(0, 256, 300, dtype=np.uint8).tobytes(),
        "truncated": good[: len(good) // 2],
        "extra": good + b"\x00\x01",
        "empty": b"",
        "wrong_shape": json.dumps({"x": 1}).encode(),
        "missing_keys": b"\x81\xa6format\x01",  # msgpack {"format": 1}
    }


@pytest.mark.parametrize("kind", ["random", "truncated", "extra", "empty", "wrong_shape", "missing_keys"])
def test_damaged_taxonomy_msgpack(tmp_path, tiny_taxonomy, kind):
    d = tmp_path / "tax"
    tiny_taxonomy.to_disk(d)
    bad = _damaged_variants((d / "taxonomy.msgpack").read_bytes())[kind]
    (d / "taxonomy.msgpack").write_bytes(bad)
    with pytest.raises(TaxonomyError) as e:
        Taxonomy.from_disk(d)
    assert str(d / "taxonomy.msgpack") in str(e.value) and "text2node taxonomy build" in str(e.value)
    with pytest.raises(TaxonomyError, match="taxonomy bytes"):
        Taxonomy.from_bytes(bad)
    res = CliRunner().invoke(app, ["taxonomy", "info", str(d)])
    _fails_cleanly(res, "taxonomy.msgpack", code=1)


def test_from_disk_given_the_msgpack_file(tmp_path, tiny_taxonomy):
    tiny_taxonomy.to_disk(tmp_path / "tax")
    with pytest.raises(TaxonomyError, match="give the folder that holds it"):
        Taxonomy.from_disk(tmp_path / "tax" / "taxonomy.msgpack")


# --- node-vector directories ------------------------------------------------------------
def test_damaged_node_vector_dir(tmp_path, tiny_taxonomy):
    d = tmp_path / "nv"
    rng = np.random.default_rng(0)
    NodeVectors(tiny_taxonomy.ids, rng.normal(size=(len(tiny_taxonomy), 4))).to_disk(d)
    (d / "nodes.json").write_text('["D", ', encoding="utf-8")
    with pytest.raises(ValueError, match=r"nodes\.json: not valid JSON"):
        NodeVectors.from_disk(d)
    NodeVectors(tiny_taxonomy.ids, rng.normal(size=(len(tiny_taxonomy), 4))).to_disk(d)
    m = np.load(d / "vectors.npy")
    m[3, 1] = np.nan
    np.save(d / "vectors.npy", m)
    with pytest.raises(ValueError, match=r"vectors\.npy: row 3 \(node 'MET'\) has values that are not finite"):
        NodeVectors.from_disk(d)


# --- CLI ------------------------------------------------------------------------------
def test_cli_on_error_typo(tmp_path):
    res = CliRunner().invoke(
        app, ["taxonomy", "build", str(TINY_CSV), str(tmp_path / "t"), "--format", "csv", "--on-error", "skp"]
    )
    _fails_cleanly(res, "--on-error", "'skp'", "raise", "skip", code=2)


def test_cli_messages_name_flags_not_keywords(tmp_path):
    bad = _write(tmp_path, "bad.csv", "id,label,parents,synonyms\nA,Alpha,Z,\n")
    res = CliRunner().invoke(app, ["taxonomy", "build", str(bad), str(tmp_path / "x"), "--format", "csv"])
    _fails_cleanly(res, "--on-error skip", code=1)
    nohead = _write(tmp_path, "v.txt", "a 1.0 2.0\n")
    res = CliRunner().invoke(app, ["vectors", "load", str(nohead), str(tmp_path / "v"), "--format", "word2vec"])
    _fails_cleanly(res, "--format glove", code=1)


def test_cli_out_dir_is_a_file(tmp_path, tiny_taxonomy):
    f = tmp_path / "taken"
    f.write_text("x", encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(app, ["taxonomy", "build", str(TINY_CSV), str(f), "--format", "csv"])
    _fails_cleanly(res, str(f), "is a file", code=1)
    tiny_taxonomy.to_disk(tmp_path / "tax")
    res = runner.invoke(app, ["embed-nodes", str(tmp_path / "tax"), str(f), "--dim", "4", "--num-walks", "1"])
    _fails_cleanly(res, str(f), "is a file", code=1)
    res = runner.invoke(app, ["vectors", "load", str(GLOVE_TXT), str(f), "--format", "glove", "--subwords", "none"])
    _fails_cleanly(res, str(f), "is a file", code=1)
    assert f.read_text(encoding="utf-8") == "x"


def test_cli_embed_nodes_on_a_flat_taxonomy(tmp_path):
    flat = _write(tmp_path, "flat.csv", "id,label\nA,Alpha\nB,Beta\nC,Gamma\n")
    Taxonomy.from_csv(flat).to_disk(tmp_path / "flat")
    res = CliRunner().invoke(app, ["embed-nodes", str(tmp_path / "flat"), str(tmp_path / "nv"), "--dim", "4"])
    _fails_cleanly(res, "no is-a edges", "parents", code=1)
    assert not (tmp_path / "nv").exists()


def test_cli_taxonomy_dir_missing_or_damaged(tmp_path, tiny_taxonomy):
    runner = CliRunner()
    res = runner.invoke(app, ["embed-nodes", str(tmp_path / "nope"), str(tmp_path / "nv")])
    _fails_cleanly(res, "no taxonomy.msgpack", code=1)
    tiny_taxonomy.to_disk(tmp_path / "tax")
    (tmp_path / "tax" / "taxonomy.msgpack").write_bytes(b"\x93\x01")
    res = runner.invoke(app, ["nodes", "eval", str(tmp_path / "tax"), str(tmp_path / "nv")])
    _fails_cleanly(res, "taxonomy.msgpack", code=1)
    res = runner.invoke(app, ["vectors", "train", str(tmp_path / "out"), "--taxonomy", str(tmp_path / "tax")])
    _fails_cleanly(res, "taxonomy.msgpack", code=1)


def test_cli_nodes_eval_on_damaged_vectors(tmp_path, tiny_taxonomy):
    tiny_taxonomy.to_disk(tmp_path / "tax")
    d = tmp_path / "nv"
    NodeVectors(tiny_taxonomy.ids, np.ones((len(tiny_taxonomy), 4))).to_disk(d)
    (d / "vectors.npy").write_bytes(b"\x93NUMPY garbage")
    res = CliRunner().invoke(app, ["nodes", "eval", str(tmp_path / "tax"), str(d)])
    _fails_cleanly(res, "vectors.npy", code=1)


# --- taxonomy JSONL values ----------------------------------------------------------------
@pytest.mark.parametrize(
    "obj,problem",
    [
        ({"id": "B", "label": "Beta", "parents": True}, "'parents' must be a string or a list of strings"),
        ({"id": "B", "label": "Beta", "synonyms": 1}, "'synonyms' must be a list"),
        ({"id": "B", "label": "Beta", "xrefs": {"a": 1}}, "'xrefs' must be a string or a list of strings"),
        ({"id": "B", "label": ["Beta"]}, "'label' must be a string"),
        ({"id": "B", "label": "Beta", "definition": ["x"]}, "'definition' must be a string"),
    ],
)
def test_jsonl_values_of_the_wrong_type_name_the_line(tmp_path, obj, problem):
    p = _write(tmp_path, "t.jsonl", json.dumps({"id": "A", "label": "Alpha"}) + "\n" + json.dumps(obj) + "\n")
    with pytest.raises(TaxonomyError, match=rf"t\.jsonl, line 2: {problem}"):
        Taxonomy.from_jsonl(p)
    assert Taxonomy.from_jsonl(p, on_error="skip").ids == ["A"]


def test_jsonl_unknown_keys_are_reported(tmp_path, caplog):
    p = _write(tmp_path, "t.jsonl", '{"id": "A", "label": "Alpha"}\n{"id": "B", "label": "Beta", "parnets": ["A"]}\n')
    t = Taxonomy.from_jsonl(p)
    assert t.roots == ["A", "B"]
    assert "ignored unknown keys 'parnets' (line 2; did you mean 'parents'?)" in caplog.text
    q = _write(tmp_path, "q.jsonl", '{"id": 7, "label": "Seven", "synonyms": "VII"}\n')
    t = Taxonomy.from_jsonl(q)
    assert t.ids == ["7"] and [s.text for s in t.synonyms("7")] == ["VII"]
