"""The Spark backend (local[2]): the same records as the local backend, written by the executors.
(A real standalone cluster, with a worker killed mid-run: tests/test_spark_cluster.py.)"""

import json
import os
import sys

import pytest

pytest.importorskip("pyspark", reason="needs the spark extra")

from conftest import FIXTURES

from spacy_text2node.bulk import build_clinical_pipeline, link_documents, read_output, read_records
from spacy_text2node.bulk.spark import (
    check_spark_run,
    link_spark_dataframe,
    local_spark_session,
    pipeline_loads,
    run_spark_bulk,
)

NOTES = FIXTURES / "bulk_notes.jsonl"
CSV = FIXTURES / "bulk_notes.csv"

# one worker of a parallel run (pytest-xdist) runs the module: its tests share one local Spark session
pytestmark = pytest.mark.xdist_group("spark_local")


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


def by_id(records):
    out = {r["id"]: r for r in records}
    assert len(out) == len(records), "an id is in the output more than once"
    return out


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


@pytest.mark.parametrize("name", ["spark.jsonl", "spark.parquet"])
def test_executors_write_the_local_records_with_errors_and_resume(spark, ruler_dir, tmp_path, name):
    """The executors write part files (JSON lines or Parquet) holding the local backend's records; the
    driver's errors file is the local one byte for byte; a resumed run appends the rest, each id once."""
    local = tmp_path / "local.jsonl"
    link_documents(ruler_dir, NOTES, local, max_chars=300, progress=False)
    out = tmp_path / name
    opts = dict(max_chars=300, progress=False, chunk_size=5, partitions=2)
    stats = run_spark_bulk(spark, ruler_dir, NOTES, out, limit=10, **opts)
    assert stats.n_in == 10 and stats.balanced
    assert out.is_dir() and not (out / "_staging").exists()
    parts = sorted(p.name for p in out.glob("part-*"))
    assert parts and all(p.endswith(".json" if name.endswith(".jsonl") else ".parquet") for p in parts)
    with pytest.raises(ValueError, match="already exists"):
        run_spark_bulk(spark, ruler_dir, NOTES, out, **opts)
    stats = run_spark_bulk(spark, ruler_dir, NOTES, out, resume=True, **opts)
    assert stats.balanced and stats.n_skipped == 10
    assert stats.total_written == 12 and stats.total_errors == 8
    expected = read_output(local)
    assert by_id(read_output(out)) == by_id(expected)
    assert (tmp_path / f"{name}.errors.jsonl").read_bytes() == (tmp_path / "local.jsonl.errors.jsonl").read_bytes()
    # the counts of a whole run come from a Spark aggregation over the parts it wrote
    again = run_spark_bulk(spark, ruler_dir, NOTES, out, overwrite=True, **opts)
    assert again.balanced and (again.n_written, again.n_errors) == (12, 8)
    assert again.n_tokens == sum(r["n_tokens"] for r in expected)
    assert again.n_spans == sum(len(r["spans"]) for r in expected) > 10
    assert by_id(read_output(out)) == by_id(expected)


def test_json_parts_write_nulls_as_the_local_records_do(spark, ruler_dir, tmp_path):
    # a folder name with a colon, a space and a percent sign: Spark reads and writes the very path
    out = tmp_path / "run: 1 100%" / "linked.jsonl"
    out.parent.mkdir()
    run_spark_bulk(spark, ruler_dir, CSV, out, id_field="note_id", text_field="note", progress=False)
    lines = [line for part in sorted(out.glob("part-*.json")) for line in part.read_text().splitlines()]
    spans = [s for line in lines for s in json.loads(line)["spans"]]
    assert spans and all("negated" in s and s["negated"] is None for s in spans)


def test_pipeline_loaded_once_per_python_worker(spark, ruler_dir, tmp_path):
    """Three jobs of two tasks each: every executor Python worker loaded the pipeline once."""
    import shutil

    model = tmp_path / "model"  # a path of its own: the other tests' loads do not count
    shutil.copytree(ruler_dir, model)
    out = tmp_path / "linked.parquet"
    stats = run_spark_bulk(spark, model, NOTES, out, max_chars=300, progress=False, chunk_size=4, partitions=2)
    assert stats.n_written == 12

    def probe(batches):
        import pandas as pd

        for _ in batches:
            yield pd.DataFrame({"pid": [os.getpid()], "loads": [pipeline_loads().get(str(model.resolve()), 0)]})

    rows = spark.range(0, 8, numPartitions=8).mapInPandas(probe, "pid long, loads long").collect()
    loads = {r["pid"]: r["loads"] for r in rows}
    assert max(loads.values()) == 1, loads


def test_partition_without_error_column_refuses_a_bad_row(ruler_dir):
    """The rows of `run_spark_bulk` were checked by the driver: with with_error=False a row that still
    cannot be linked fails its task, naming the row, instead of being written without its record."""
    import pandas as pd

    from spacy_text2node.bulk.spark import _link_partition

    def link(pdf):
        args = dict(model=str(ruler_dir), text_col="text", id_col="id", span_keys=("ents",), top_k=None)
        return list(_link_partition(iter([pdf]), max_chars=100, batch_size=8, with_error=False, **args))

    (out,) = link(pd.DataFrame({"id": ["a"], "text": ["influenza"]}))
    assert list(out.columns) == ["id", "n_tokens", "spans"] and out["spans"][0][0]["text"] == "influenza"
    with pytest.raises(ValueError, match="could not link document 'b': empty text"):
        link(pd.DataFrame({"id": ["a", "b"], "text": ["influenza", " "]}))


def test_spark_output_checks(tmp_path):
    """Refused before Spark starts: a file where the executors' folder goes, an existing output without
    --resume or --overwrite, a folder holding the other format's parts."""
    file_out = tmp_path / "linked.jsonl"
    file_out.write_text("")
    with pytest.raises(ValueError, match="is a file; with --backend spark OUTPUT is a folder"):
        check_spark_run(NOTES, file_out)
    folder = tmp_path / "linked2.jsonl"
    folder.mkdir()
    (folder / "part-00000-x-c000.json").write_text("")
    with pytest.raises(ValueError, match="already exists"):
        check_spark_run(NOTES, folder)
    assert check_spark_run(NOTES, folder, resume=True)[0] == "jsonl"
    with pytest.raises(ValueError, match="holds jsonl parts"):
        check_spark_run(NOTES, folder, output_format="parquet", resume=True)
    with pytest.raises(ValueError, match="same file as the input"):
        check_spark_run(NOTES, tmp_path / "x.parquet", errors_path=NOTES)
