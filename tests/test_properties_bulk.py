"""Property-based tests of the bulk reader and runner (issue 17): random valid-looking rows, random bytes
and random truncations never raise anything but ValueError, and every input record ends up exactly once
in the output or the errors file."""

import csv
import io
import json
import re
import tempfile
from pathlib import Path

import pytest
import spacy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spacy_text2node.bulk import local_processor, read_output, read_records, run_bulk

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# the blank pipeline finds no spans: its warning is tested in test_bulk_inputs.py
pytestmark = pytest.mark.filterwarnings("ignore:No spans were found")

NLP = spacy.blank("en")
PROCESS = local_processor(NLP)
BOM = b"\xef\xbb\xbf"

json_ids = st.one_of(
    st.text(max_size=6),
    st.integers(-3, 3),
    st.none(),
    st.booleans(),
    st.floats(),
    st.just(""),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
json_texts = st.one_of(st.text(max_size=30), st.none(), st.integers(), st.just("  "), st.binary(max_size=5).map(repr))
json_rows = st.fixed_dictionaries({"id": json_ids, "text": json_texts}) | st.dictionaries(
    st.sampled_from(["id", "text", "other"]), json_texts, max_size=3
)


@st.composite
def jsonl_files(draw):
    """Lines of JSON objects mixed with random bytes, truncated lines, blank lines and odd JSON."""
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["row", "row", "row", "bytes", "cut", "blank", "odd"]))
        if kind == "row":
            lines.append(json.dumps(draw(json_rows)).encode())
        elif kind == "bytes":
            lines.append(draw(st.binary(max_size=20)).replace(b"\n", b""))
        elif kind == "cut":
            line = json.dumps(draw(json_rows)).encode()
            lines.append(line[: draw(st.integers(0, len(line)))])
        elif kind == "blank":
            lines.append(draw(st.sampled_from([b"", b"  ", b"\r", b"\t"])))
        else:
            odd = [b"[1, 2]", b"null", b"[" * 50_000, b'{"id": "\\ud800", "text": "x"}', b"{}"]
            lines.append(draw(st.sampled_from(odd)))
    data = b"\n".join(lines) + draw(st.sampled_from([b"\n", b""]))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        data = BOM + data
    return data


def _check_run(data: bytes, suffix: str, id_field):
    """Run the reader and the runner on `data`; check the accounting. RETURNS the records, or None
    when the input was refused with a ValueError (the documented error)."""
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / f"in{suffix}"
        src.write_bytes(data)
        try:
            recs = list(read_records(src, id_field=id_field))
        except ValueError:
            with pytest.raises(ValueError):
                run_bulk(PROCESS, src, Path(d) / "out.jsonl", id_field=id_field, progress=False)
            assert not (Path(d) / "out.jsonl").exists()
            return None
        out = Path(d) / "out.jsonl"
        stats = run_bulk(PROCESS, src, out, id_field=id_field, progress=False)
        assert stats.balanced and stats.n_in == len(recs)
        assert stats.n_in == stats.n_written + stats.n_errors
        written = read_output(out) if out.exists() else []
        errors = [json.loads(line) for line in Path(str(out) + ".errors.jsonl").read_bytes().split(b"\n") if line]
        assert (len(written), len(errors)) == (stats.n_written, stats.n_errors)
        first = {}
        for r in recs:
            if r.error is None and r.id not in first:
                first[r.id] = r
        indices = [first[w["id"]].index for w in written] + [e["index"] for e in errors]
        assert sorted(indices) == list(range(len(recs)))  # every record exactly once
        assert [r.index for r in recs] == list(range(len(recs)))
        assert stats.n_chars == sum(len(first[w["id"]].text) for w in written)
        assert all(e["reason"] for e in errors)
        return recs


@SETTINGS
@given(data=jsonl_files(), id_field=st.sampled_from(["id", None]))
@example(data=b'{"id": "a", "text": "x"}\n{"text": "y"}\n' + b"[" * 50_000 + b"\n", id_field="id")
def test_jsonl_reader_and_runner_account_for_every_line(data, id_field):
    recs = _check_run(data, ".jsonl", id_field)
    if recs is None:
        return
    body = data[len(BOM) :] if data.startswith(BOM) else data
    nonblank = [n for n, line in enumerate(body.split(b"\n"), 1) if line.strip()]
    assert [r.line for r in recs] == nonblank  # every non-blank line is one record


csv_cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@st.composite
def csv_files(draw):
    """A valid CSV written by the csv module, then damaged: stray quotes, random bytes, deletions, a cut."""
    rows = draw(st.lists(st.tuples(csv_cells, csv_cells), max_size=8))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=draw(st.sampled_from(["\r\n", "\n"])))
    w.writerow(["id", "text"])
    w.writerows(rows)
    data = bytearray(buf.getvalue().encode("utf-8"))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["quote", "bytes", "delete", "newline"]))
        at = draw(st.integers(0, len(data)))
        if op == "quote":
            data[at:at] = b'"'
        elif op == "bytes":
            data[at:at] = draw(st.binary(min_size=1, max_size=6))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        else:
            data[at:at] = draw(st.sampled_from([b"\n", b"\r", b"\r\n"]))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        data = bytearray(BOM) + data
    return bytes(data)


@SETTINGS
@given(data=csv_files(), id_field=st.sampled_from(["id", None]))
@example(data=b'id,text\na,"open\nb,two\nc,"x" y\n', id_field="id")
@example(data=b"id,text\r\n0\xc2\x85,\r\n", id_field="id")  # found by Hypothesis: a NEL in an id
def test_damaged_csv_never_crashes_and_accounts_for_every_row(data, id_field):
    recs = _check_run(data, ".csv", id_field)
    if recs is None:
        return
    n_lines = len(re.findall(rb"\r\n|\r|\n", data)) + 1
    lines = [r.line for r in recs]
    assert lines == sorted(lines) and len(set(lines)) == len(lines)  # one record per row, in order
    assert all(2 <= n <= n_lines for n in lines)


@SETTINGS
@given(
    rows=st.lists(st.tuples(csv_cells, csv_cells), max_size=8), eol=st.sampled_from(["\r\n", "\n"]), bom=st.booleans()
)
def test_valid_csv_round_trips(rows, eol, bom):
    if eol == "\n":  # csv.writer quotes only the characters of its line terminator: a bare \r would go unquoted
        rows = [(a.replace("\r", ""), b.replace("\r", "")) for a, b in rows]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=eol)
    w.writerow(["id", "text"])
    w.writerows(rows)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.csv"
        src.write_bytes((BOM if bom else b"") + buf.getvalue().encode("utf-8"))
        recs = list(read_records(src))
    assert len(recs) == len(rows)
    for rec, (rid, text) in zip(recs, rows):
        if rid.strip():
            assert (rec.id, rec.text, rec.error) == (rid, text, None)
        else:
            assert rec.error == "empty id"


plain = st.text(alphabet="abcdefgh XYZ.;:-0123456789", min_size=1, max_size=12)
# a quoted text: it holds a delimiter, a quote or a line break, but does not start with one (see csv_rows:
# a stray quote closed by such a field's opening quote is then always a bad row)
quoted = (
    st.tuples(plain, st.lists(st.sampled_from([",", '"', "\n", "\r\n", " "]) | plain, min_size=1, max_size=6))
    .map(lambda t: t[0] + "".join(t[1]))
    .filter(lambda s: any(c in s for c in ',"\r\n'))
)


@SETTINGS
@given(texts=st.lists(plain | quoted, min_size=1, max_size=8), data=st.data())
def test_a_stray_quote_loses_only_its_own_row(texts, data):
    k = data.draw(st.integers(0, len(texts)))
    bad = data.draw(plain)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["id", "text"])
    line_of_bad = None
    for i, text in enumerate(texts + [None]):
        if i == k:
            line_of_bad = len(re.findall(r"\r\n|\r|\n", out.getvalue())) + 1
            out.write(f'bad,"{bad}\n')  # an unterminated quote
        if text is not None:
            w.writerow([f"r{i}", text])
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.csv"
        src.write_text(out.getvalue(), newline="")
        recs = list(read_records(src))
    assert [(r.id, r.text) for r in recs if r.error is None] == [(f"r{i}", t) for i, t in enumerate(texts)]
    errors = [r for r in recs if r.error is not None]
    assert len(errors) == 1 and errors[0].line == line_of_bad and errors[0].error.startswith("bad CSV row")
