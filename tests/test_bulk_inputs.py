"""Bad bulk inputs fail loudly (issue 17): ids, BOMs, CSV quoting, OUTPUT == INPUT,
n_chars, the no-spans warning and one-line CLI errors."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import spacy
from conftest import FIXTURES, REPO

import spacy_text2node.cli.link  # noqa: F401  (registers `text2node link`)
from spacy_text2node.bulk import (
    build_clinical_pipeline,
    link_documents,
    local_processor,
    read_output,
    read_records,
    run_bulk,
)

NOTES = FIXTURES / "bulk_notes.jsonl"
CSV = FIXTURES / "bulk_notes.csv"
TXT = FIXTURES / "bulk_txt"
BOM = b"\xef\xbb\xbf"
# the blank pipelines of these tests find no spans: that warning is tested where it is meant
pytestmark = pytest.mark.filterwarnings("ignore:No spans were found")


@pytest.fixture
def blank_nlp():
    """A real blank English pipeline: it tokenizes and finds no spans. Built for each test: a run
    given a Language adjusts it (`nlp.max_length`)."""
    return spacy.blank("en")


@pytest.fixture(scope="module")
def blank_dir(tmp_path_factory):
    """A blank English pipeline saved once; tests only load it."""
    path = tmp_path_factory.mktemp("blank") / "blank_pipeline"
    spacy.blank("en").to_disk(path)
    return path


@pytest.fixture
def ruler_nlp(tiny_taxonomy):
    """The ruler pipeline of the tiny taxonomy, built for each test (see `blank_nlp`)."""
    return build_clinical_pipeline(mentions="ruler", taxonomy=tiny_taxonomy)


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _errors(out):
    return [json.loads(line) for line in Path(str(out) + ".errors.jsonl").read_text().splitlines()]


def _run(nlp, src, out, **kw):
    kw.setdefault("progress", False)
    return run_bulk(local_processor(nlp), src, out, **kw)


# --------------------------------------------------------------------------- ids


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv", "parquet"])
def test_missing_id_field_is_an_error(tmp_path, fmt):
    rows = [{"idx": "a", "text": "first note"}, {"idx": "b", "text": "second note"}]
    path = _write(tmp_path, fmt, rows)
    with pytest.raises(ValueError) as e:
        list(read_records(path))
    text = str(e.value)
    assert "'id'" in text and path.name in text and "idx" in text
    assert "--id-field NAME" in text and "--id-field none" in text


def _write(tmp_path, fmt, rows, bom=False):
    if fmt == "jsonl":
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    elif fmt in ("csv", "tsv"):
        import csv
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), delimiter="\t" if fmt == "tsv" else ",")
        w.writeheader()
        w.writerows(rows)
        data = buf.getvalue().encode()
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "in.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        return path
    path = tmp_path / f"in.{fmt}"
    path.write_bytes((BOM if bom else b"") + data)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("none", [None, "none"])
def test_id_field_none_gives_record_index_ids(tmp_path, fmt, none):
    path = _write(tmp_path, fmt, [{"idx": "a", "text": "first"}, {"idx": "b", "text": "second"}])
    got = [(r.index, r.id, r.text) for r in read_records(path, id_field=none)]
    assert got == [(0, "0", "first"), (1, "1", "second")]


def test_txt_folder_keeps_file_name_ids():
    assert [r.id for r in read_records(TXT)][:2] == ["n01.txt", "n02.txt"]
    assert [r.id for r in read_records(TXT, id_field=None)][:2] == ["n01.txt", "n02.txt"]


def test_jsonl_later_record_without_id_goes_to_errors(blank_nlp, tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "one"}, {"text": "two"}, {"id": "c", "text": "three"}])
    recs = list(read_records(src))
    assert (recs[1].id, recs[1].line, recs[1].error) == (None, 2, "missing id field 'id'")
    out = tmp_path / "out.jsonl"
    stats = _run(blank_nlp, src, out)
    assert stats.balanced and (stats.n_written, stats.n_errors) == (2, 1)
    assert [r["id"] for r in read_output(out)] == ["a", "c"]
    assert [(e["index"], e["line"], e["reason"]) for e in _errors(out)] == [(1, 2, "missing id field 'id'")]


def test_jsonl_first_object_decides_after_bad_lines(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", ["{bad json", {"note": "x", "text": "y"}])
    with pytest.raises(ValueError, match=r"in.jsonl, line 2.*'id'.*\['note', 'text'\]"):
        list(read_records(src))


def test_jsonl_first_object_without_text_field_is_an_error(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "body": "x"}])
    with pytest.raises(ValueError, match=r"in.jsonl, line 1.*'text'.*--text-field"):
        list(read_records(src))


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv"])
def test_bom_is_stripped(tmp_path, fmt):
    path = _write(tmp_path, fmt, [{"id": "a", "text": "first"}, {"id": "b", "text": "second"}], bom=True)
    got = [(r.id, r.text, r.error) for r in read_records(path)]
    assert got == [("a", "first", None), ("b", "second", None)]


def test_bom_in_gzip_csv(tmp_path):
    import gzip

    path = tmp_path / "in.csv.gz"
    path.write_bytes(gzip.compress(BOM + b"id,text\nx1,hello\n"))
    assert [(r.id, r.text) for r in read_records(path)] == [("x1", "hello")]


def test_bad_json_ids_go_to_errors(blank_nlp, tmp_path):
    rows = [
        {"id": "ok", "text": "fine"},
        {"id": None, "text": "a"},
        {"id": [1], "text": "b"},
        {"id": {"x": 1}, "text": "c"},
        {"id": True, "text": "d"},
        {"id": "", "text": "e"},
        {"id": "  ", "text": "f"},
        {"id": 1.5, "text": "g"},
        {"id": 7, "text": "h"},
        {"id": 8.0, "text": "i"},
        '{"id": NaN, "text": "j"}',
        '{"id": "\\ud800", "text": "k"}',
    ]
    src = _jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    stats = _run(blank_nlp, src, out)
    assert stats.balanced and stats.n_written == 3
    assert [r["id"] for r in read_output(out)] == ["ok", "7", "8"]
    errs = _errors(out)
    assert [e["line"] for e in errs] == [2, 3, 4, 5, 6, 7, 8, 11, 12]
    assert all(e["id"] is None for e in errs)
    reasons = [e["reason"] for e in errs]
    assert reasons[0] == "id is null"
    assert reasons[1].startswith("id is not a string or an integer but list")
    assert reasons[2].startswith("id is not a string or an integer but dict")
    assert reasons[3].startswith("id is not a string or an integer but bool")
    assert reasons[4] == reasons[5] == "empty id"
    assert "1.5" in reasons[6] and "nan" in reasons[7]
    assert "not valid UTF-8" in reasons[8]


def test_parquet_null_ids_go_to_errors(blank_nlp, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["a", None, "c"], "text": ["one", "two", "three"]}), src)
    out = tmp_path / "out.jsonl"
    stats = _run(blank_nlp, src, out)
    assert stats.balanced and [r["id"] for r in read_output(out)] == ["a", "c"]
    assert [(e["index"], e["reason"]) for e in _errors(out)] == [(1, "id is null")]


def test_csv_empty_id_goes_to_errors(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,text\na,one\n,two\n")
    recs = list(read_records(src))
    assert [(r.id, r.error) for r in recs] == [("a", None), (None, "empty id")]


# --------------------------------------------------------------------------- CSV quoting


def test_unterminated_quote_does_not_swallow_rows(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('id,text\na,first\nb,"unterminated\nc,third\nd,"quoted, fourth"\ne,fifth\n')
    recs = list(read_records(src))
    assert [(r.id, r.text, r.line) for r in recs if r.error is None] == [
        ("a", "first", 2),
        ("c", "third", 4),
        ("d", "quoted, fourth", 5),
        ("e", "fifth", 6),
    ]
    bad = [r for r in recs if r.error is not None]
    assert len(bad) == 1 and bad[0].line == 3 and bad[0].error.startswith("bad CSV row")
    assert [r.index for r in recs] == [0, 1, 2, 3, 4]


def test_unterminated_quote_at_the_end(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('id,text\na,first\nb,"runs to the end\nc,third\nd,fourth\n')
    recs = list(read_records(src))
    got = [(r.id, r.line, r.error is None) for r in recs]
    assert got == [("a", 2, True), (None, 3, False), ("c", 4, True), ("d", 5, True)]
    assert "never closed" in recs[1].error


def test_stray_quote_closed_by_a_later_quoted_field(tmp_path):
    # the stray quote pairs with the opening quote of d's field: a closing quote followed by text is a bad shape
    src = tmp_path / "in.csv"
    src.write_text('id,text\nb,"stray\nc,third\nd,"""quoted"" start"\ne,fifth\n')
    recs = list(read_records(src))
    got = [(r.id, r.text) for r in recs if r.error is None]
    assert got == [("c", "third"), ("d", '"quoted" start'), ("e", "fifth")]
    assert [(r.line, r.error is not None) for r in recs][0] == (2, True)


def test_multiline_quoted_fields_still_work(tmp_path):
    import csv
    import io

    texts = [
        'Line one: asthma.\nLine two: gout, "quoted".',
        "A\r\nB, C\n\nD",
        "plain",
        '"starts quoted"\nand, more',
    ]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "specialty", "text"])
    for i, t in enumerate(texts):
        w.writerow([f"n{i}", "x", t])
    src = tmp_path / "in.csv"
    src.write_text(buf.getvalue(), newline="")
    recs = list(read_records(src))
    assert [(r.id, r.text, r.error) for r in recs] == [(f"n{i}", t, None) for i, t in enumerate(texts)]


def test_csv_every_row_is_a_record_or_an_error(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('id,text\na,one\nb,two,extra\nc\n\nd,"multi\nline"\ne,"bad"quote\nf,six\n')
    recs = list(read_records(src))
    assert [(r.id, r.line, r.error is None) for r in recs] == [
        ("a", 2, True),
        ("b", 3, False),
        ("c", 4, False),
        ("d", 7, True),
        ("e", 8, True),
        ("f", 9, True),
    ]
    assert recs[1].error == "bad CSV row: 3 fields, the header has 2"
    assert recs[4].text == "badquote"  # one line, so read as Python's csv module reads it


def test_csv_missing_id_and_text_columns_name_the_header(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("note_id,body\na,b\n")
    missing_id = r"in.csv, line 1: no id column 'id'.*note_id.*--id-field NAME.*--id-field none"
    with pytest.raises(ValueError, match=missing_id):
        read_records(src, text_field="body")  # eager: raised before any output is opened
    with pytest.raises(ValueError, match=r"no text column 'text'.*--text-field"):
        read_records(src, id_field="note_id")


# --------------------------------------------------------------------------- output safety


@pytest.mark.parametrize("flags", [dict(overwrite=True), dict(resume=True), dict()])
def test_output_equal_to_input_is_refused(blank_nlp, tmp_path, flags):
    src = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "one"}])
    before = src.read_bytes()
    with pytest.raises(ValueError, match="same file as the input"):
        _run(blank_nlp, src, src, **flags)
    with pytest.raises(ValueError, match="errors file .* same file as the input"):
        _run(blank_nlp, src, tmp_path / "out.jsonl", errors_path=src, **flags)
    (tmp_path / "link.jsonl").symlink_to(src)
    with pytest.raises(ValueError, match="same file as the input"):
        _run(blank_nlp, tmp_path / "link.jsonl", tmp_path / "sub" / ".." / "in.jsonl", **flags)
    assert src.read_bytes() == before and not (tmp_path / "out.jsonl").exists()


def test_parquet_output_folder_holding_the_input_is_refused(blank_nlp, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "data.parquet"
    folder.mkdir()
    pq.write_table(pa.table({"id": ["a"], "text": ["one"]}), folder / "part-00000.parquet")
    with pytest.raises(ValueError, match="same file as the input|inside the output folder"):
        _run(blank_nlp, folder / "part-00000.parquet", folder, overwrite=True)
    with pytest.raises(ValueError, match="same file as the input"):
        _run(blank_nlp, folder, folder, overwrite=True)
    assert (folder / "part-00000.parquet").exists()


def test_output_kind_mismatch_is_refused_before_truncating(blank_nlp, tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "one"}])
    (tmp_path / "d.jsonl").mkdir()
    with pytest.raises(ValueError, match="d.jsonl is a folder"):
        _run(blank_nlp, src, tmp_path / "d.jsonl", overwrite=True)
    pfile = tmp_path / "f.parquet"
    pfile.write_bytes(b"keep me")
    errs = tmp_path / "f.parquet.errors.jsonl"
    errs.write_bytes(b"keep me too")
    with pytest.raises(ValueError, match="f.parquet is a file"):
        _run(blank_nlp, src, pfile, overwrite=True)
    assert pfile.read_bytes() == b"keep me" and errs.read_bytes() == b"keep me too"


def test_missing_id_field_is_raised_before_the_output_is_touched(blank_nlp, tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [{"idx": "a", "text": "one"}])
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"old output\n")
    with pytest.raises(ValueError, match="no id field 'id'"):
        _run(blank_nlp, src, out, overwrite=True)
    assert out.read_bytes() == b"old output\n"


# --------------------------------------------------------------------------- stats and the no-spans warning


def test_stats_count_chars_and_spans(ruler_nlp, tmp_path):
    out = tmp_path / "o.jsonl"
    stats = link_documents(ruler_nlp, CSV, out, id_field="note_id", text_field="note", progress=False)
    texts = {r.id: r.text for r in read_records(CSV, id_field="note_id", text_field="note")}
    recs = read_output(out)
    assert stats.n_chars == sum(len(texts[r["id"]]) for r in recs) > 0
    assert stats.n_spans == sum(len(r["spans"]) for r in recs) > 0 and stats.warnings == []
    d = stats.to_dict()
    assert d["n_chars"] == stats.n_chars and d["n_spans"] == stats.n_spans and d["warnings"] == []


def test_no_spans_warns_once(blank_nlp, tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": f"note number {i}"} for i in range(450)])
    with pytest.warns(UserWarning) as rec:
        stats = _run(blank_nlp, src, tmp_path / "o.jsonl")
    ours = [w for w in rec if "No spans" in str(w.message)]
    assert len(ours) == 1 and stats.n_written == 450 and stats.n_spans == 0
    text = str(ours[0].message)
    assert "first 200 documents" in text and "--mentions" in text and "clinical.cfg" in text and "--span-key" in text
    assert stats.warnings == [text]


def test_no_spans_warns_at_the_end_of_a_small_run(blank_nlp, tmp_path):
    rows = [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}, {"id": "c", "text": ""}]
    src = _jsonl(tmp_path / "in.jsonl", rows)
    with pytest.warns(UserWarning, match="No spans were found in the first 2 documents"):
        stats = _run(blank_nlp, src, tmp_path / "o.jsonl")
    assert len(stats.warnings) == 1


def test_spans_found_no_warning(ruler_nlp, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = link_documents(ruler_nlp, NOTES, tmp_path / "o.jsonl", max_chars=300, progress=False)
    assert stats.n_spans > 0 and stats.warnings == []


# --------------------------------------------------------------------------- the CLI


def _invoke(args):
    from typer.testing import CliRunner

    from spacy_text2node.cli import app

    res = CliRunner().invoke(app, ["link", *map(str, args), "--no-progress"])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res.exit_code, " ".join(res.output.split())


def test_cli_output_equal_to_input_keeps_the_input(blank_dir, tmp_path):
    src = _jsonl(tmp_path / "x.jsonl", [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}])
    before = src.read_bytes()
    code = "import sys; from spacy_text2node.cli import app; sys.argv[0] = 'text2node'; app()"
    for flag in ("--overwrite", "--resume"):
        args = [sys.executable, "-c", code, "link", str(blank_dir), str(src), str(src), flag, "--no-progress"]
        p = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
        out = p.stdout + p.stderr
        assert p.returncode != 0 and "Traceback" not in out, out
        # one message (wasabi wraps it to the terminal width), nothing else
        assert "same file as the input" in " ".join(out.split()) and out.count("\u2718") == 1, out
        assert out.strip().startswith("\x1b[38;5;1m\u2718") or out.strip().startswith("\u2718"), out
        assert src.read_bytes() == before


@pytest.fixture
def inputs(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "one"}])
    (tmp_path / "dir.jsonl").mkdir()
    (tmp_path / "file.parquet").write_text("x")
    return tmp_path, src


@pytest.mark.parametrize(
    "extra, expect",
    [
        (["--backend", "dask"], "--backend"),
        (["--n-process", "0"], "--n-process"),
        (["--batch-size", "0"], "--batch-size"),
        (["--flush-every", "0"], "--flush-every"),
        (["--max-chars", "0"], "--max-chars"),
        (["--top-k", "0"], "--top-k"),
        (["--limit", "-1"], "--limit"),
        (["--mentions", "regex"], "--mentions"),
        (["--input-format", "xml"], "--input-format"),
        (["--output-format", "csv"], "--output-format"),
        (["--id-field", "nope"], "--id-field"),
        (["--text-field", "body"], "--text-field"),
    ],
)
def test_cli_user_errors_are_one_clear_line(blank_dir, inputs, extra, expect):
    tmp, src = inputs
    code, text = _invoke([blank_dir, src, tmp / "o.jsonl", *extra])
    assert code != 0 and "Traceback" not in text and expect in text, text
    assert not (tmp / "o.jsonl").exists()


def test_cli_path_errors(blank_dir, inputs):
    tmp, src = inputs
    code, text = _invoke([blank_dir, tmp / "absent.jsonl", tmp / "o.jsonl"])
    assert code != 0 and "absent.jsonl does not exist" in text
    code, text = _invoke([blank_dir, src, tmp / "dir.jsonl", "--overwrite"])
    assert code != 0 and "dir.jsonl is a folder" in text
    code, text = _invoke([blank_dir, src, tmp / "file.parquet", "--overwrite"])
    assert code != 0 and "file.parquet is a file" in text and (tmp / "file.parquet").read_text() == "x"
    code, text = _invoke([blank_dir, src, src, "--overwrite"])
    assert code != 0 and "same file as the input" in text
    code, text = _invoke([tmp / "no_model", src, tmp / "o.jsonl"])
    assert code != 0 and "no_model" in text


def test_cli_stats_json_has_chars_and_warning(blank_dir, tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "one two"}, {"id": "b", "text": "three"}])
    code, text = _invoke([blank_dir, src, tmp_path / "o.jsonl", "--stats-json", tmp_path / "s.json"])
    assert code == 0, text
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["n_chars"] == len("one two") + len("three") and stats["n_spans"] == 0
    assert len(stats["warnings"]) == 1 and "No spans were found" in text and "--mentions" in text


def test_cli_id_field_none(blank_dir, tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [{"text": "one"}, {"text": "two"}])
    code, text = _invoke([blank_dir, src, tmp_path / "o.jsonl", "--id-field", "none"])
    assert code == 0, text
    assert [r["id"] for r in read_output(tmp_path / "o.jsonl")] == ["0", "1"]


def test_jsonl_output_lines_survive_splitlines(blank_nlp, tmp_path):
    """NEL, U+2028 and U+2029 in ids or texts are escaped, so every reader sees one record per line."""
    rows = [{"id": "a\x85b", "text": "one\u2028two"}, {"id": "c\u2029", "text": "three"}, {"id": "", "text": "x\x85"}]
    src = _jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "o.jsonl"
    _run(blank_nlp, src, out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a\x85b", "c\u2029"]
    assert len(Path(str(out) + ".errors.jsonl").read_text(encoding="utf-8").splitlines()) == 1


def test_spark_partition_applies_the_id_rules(blank_dir):
    """The Spark backend's partition function (run here on a pandas batch, without Spark) gives rows
    with a null, empty or non-string id an error instead of linking them under a null id."""
    pd = pytest.importorskip("pandas")
    from spacy_text2node.bulk.spark import _link_partition

    def link(pdf):
        (out,) = _link_partition(
            iter([pdf]),
            model=str(blank_dir),
            text_col="text",
            id_col="id",
            span_keys=("ents",),
            top_k=None,
            max_chars=100,
            batch_size=8,
        )
        return out

    out = link(pd.DataFrame({"id": ["a", None, "", "d", float("nan")], "text": ["one", "two", "three", "", "five"]}))

    def col(name):  # pandas shows a null as None or NaN; Arrow reads both as null
        return [None if pd.isna(v) else v for v in out[name].tolist()]

    assert col("id") == ["a", None, None, "d", None]
    assert col("error") == [None, "id is null", "empty id", "empty text", "id is null"]
    assert out["n_tokens"].tolist() == [1, 0, 0, 0, 0]
    out = link(pd.DataFrame({"id": [7, 8], "text": ["x", "y"]}))
    assert col("id") == ["7", "8"] and col("error") == [None, None]
