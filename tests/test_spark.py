"""The Spark backend (local[2]): the same records as the local backend."""

import os
import sys

import pytest

pytest.importorskip("pyspark", reason="needs the spark extra")

from conftest import FIXTURES

from spacy_text2node.bulk import build_clinical_pipeline, link_documents, read_output, read_records, run_bulk
from spacy_text2node.bulk.spark import link_spark_dataframe, local_spark_session, spark_processor

NOTES = FIXTURES / "bulk_notes.jsonl"
CSV = FIXTURES / "bulk_notes.csv"


@pytest.fixture(scope="module")
def spark():
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = local_spark_session("local[2]", "text2node-tests", **{"spark.driver.memory": "1g"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def ruler_dir(tiny_taxonomy, tmp_path_factory):
    path = tmp_path_factory.mktemp("spark") / "ruler_pipeline"
    build_clinical_pipeline(mentions="ruler", taxonomy=tiny_taxonomy).to_disk(path)
    return path


@pytest.mark.slow
def test_dataframe_equals_local_backend(spark, ruler_dir, tmp_path):
    local = tmp_path / "local.jsonl"
    link_documents(ruler_dir, CSV, local, id_field="note_id", text_field="note", progress=False)
    expected = read_output(local)
    rows = [
        {"note_id": r.id, "note": r.text, "specialty": "x"}
        for r in read_records(CSV, id_field="note_id", text_field="note")
    ]
    df = spark.createDataFrame(rows).repartition(3)  # order is not kept: compare by id
    out = link_spark_dataframe(df, ruler_dir, text_col="note", id_col="note_id")
    assert out.columns == ["id", "n_tokens", "spans", "error"]
    got = {}
    errors = {}
    for row in out.collect():
        d = row.asDict(recursive=True)
        if d.pop("error") is None:
            got[d["id"]] = d
        else:
            errors[d["id"]] = d
    assert got == {r["id"]: r for r in expected}
    assert set(errors) == {"e_empty"}
    assert sum(len(r["spans"]) for r in expected) > 10
    # the schema is plain columns
    assert out.schema["spans"].dataType.elementType["concept_id"].dataType.typeName() == "string"


def test_backend_spark_equals_local_with_errors_and_resume(spark, ruler_dir, tmp_path):
    local = tmp_path / "local.jsonl"
    link_documents(ruler_dir, NOTES, local, max_chars=300, progress=False)
    proc = spark_processor(spark, ruler_dir, max_chars=300, chunk_size=5)
    out = tmp_path / "spark.jsonl"
    stats = run_bulk(proc, NOTES, out, max_chars=300, progress=False, limit=10)
    assert stats.n_in == 10
    stats = run_bulk(proc, NOTES, out, max_chars=300, progress=False, resume=True)
    assert stats.balanced and stats.total_written == 12 and stats.total_errors == 8
    assert out.read_bytes() == local.read_bytes()
    assert (tmp_path / "spark.jsonl.errors.jsonl").read_bytes() == (tmp_path / "local.jsonl.errors.jsonl").read_bytes()
