"""`python -m benchmarks tables`: markdown regions filled from results JSON, and --check on stale ones."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

META = {
    "command": "python -m benchmarks taxonomy",
    "date": "2026-12-01T21:00:00Z",
    "machine": {"cpus": 2, "cpu_model": "AMD EPYC", "python": "3.11.7"},
    "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
    "load_avg_at_end": [1.25, 1.0, 0.9],
}
ICD = {"concepts": 98505, "load_s": 3.7612, "round_trip_s": 0.9549, "identical": True, "peak_rss_mb": 491.6}
DOC = """# Title

Text before.

<!-- BEGIN bench:taxonomy -->
| an old | table |
<!-- END bench:taxonomy -->

Text after.
"""


def tables(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", "tables", *map(str, args)], cwd=cwd, capture_output=True, text=True
    )


def write_results(folder: Path, icd=ICD, meta=META):
    folder.mkdir(exist_ok=True)
    (folder / "taxonomy.json").write_text(json.dumps({"meta": meta, "results": {"ICD-10-CM": icd}}))


def test_fills_a_region_from_its_json_file(tmp_path):
    results = tmp_path / "results"
    write_results(results)
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    out = tables(doc, "--results", results)
    assert out.returncode == 0, out.stderr
    text = doc.read_text()
    assert "| an old | table |" not in text
    assert "| ICD-10-CM | 98,505 | 3.76 | 0.95 | yes | 492 |" in text
    assert "| source | concepts | load s | round trip s | identical | peak RSS MB |" in text
    # the run facts under the table
    assert "`python -m benchmarks taxonomy`" in text and "commit 0123456" in text and "2026-12-01" in text
    # the markers and everything outside the region stay
    assert text.startswith("# Title\n\nText before.\n\n<!-- BEGIN bench:taxonomy -->\n")
    assert text.endswith("<!-- END bench:taxonomy -->\n\nText after.\n")
    # a second run changes nothing
    assert tables(doc, "--results", results).returncode == 0
    assert doc.read_text() == text


def test_check_reports_a_stale_region_and_writes_nothing(tmp_path):
    results = tmp_path / "results"
    write_results(results)
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    assert tables(doc, "--results", results).returncode == 0
    fresh = tables(doc, "--results", results, "--check")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    filled = doc.read_text()
    write_results(results, icd={**ICD, "load_s": 4.5})  # a new run: the table in the file is now stale
    stale = tables(doc, "--results", results, "--check")
    assert stale.returncode == 1
    assert "bench:taxonomy is stale" in stale.stdout
    assert doc.read_text() == filled
    assert tables(doc, "--results", results).returncode == 0
    assert "| ICD-10-CM | 98,505 | 4.50 | 0.95 | yes | 492 |" in doc.read_text()


def test_figures_of_an_earlier_run_name_their_source(tmp_path):
    results = tmp_path / "results"
    earlier = {"provenance": {"command": "python benchmarks/bench_taxonomy.py", "source": "README of commit 02fa7c8"}}
    write_results(results, meta=earlier)
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    assert tables(doc, "--results", results).returncode == 0
    text = doc.read_text()
    assert "Measured in an earlier run" in text and "README of commit 02fa7c8" in text
    assert "`python benchmarks/bench_taxonomy.py`" in text


def test_unknown_table_and_missing_results_are_errors(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- BEGIN bench:nonesuch -->\n<!-- END bench:nonesuch -->\n")
    out = tables(doc, "--results", tmp_path)
    assert out.returncode == 2
    assert "bench:nonesuch is no known table" in out.stderr and "taxonomy" in out.stderr
    doc.write_text(DOC)
    out = tables(doc, "--results", tmp_path / "empty")
    assert out.returncode == 2
    assert "taxonomy.json does not exist" in out.stderr
    assert doc.read_text() == DOC


def test_every_benchmark_is_a_subcommand_with_its_own_options():
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in ("bulk", "footprint", "linker", "node2vec", "serve", "taxonomy", "textcat", "vectors", "tables"):
        assert f" {name} " in out.stdout, name
    # the options after the subcommand reach the benchmark's own parser
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "taxonomy", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m benchmarks taxonomy") and "--shared" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "taxonomy", "--no-such-option"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 2 and "unrecognized arguments: --no-such-option" in out.stderr


def test_docs_tables_match_the_results():
    # README.md's headline and docs/benchmarks.md's tables are generated from
    # benchmarks/results/*.json: a figure edited by hand in either, or a results file
    # changed without regenerating, fails here (fix: python -m benchmarks tables)
    out = tables("--check")
    assert out.returncode == 0, out.stdout + out.stderr


def _bulk_run(docs_per_second, pss):
    return {
        "n_written": 10,
        "docs_per_second": docs_per_second,
        "words_per_second": 100 * docs_per_second,
        "n_spans": 5,
        "n_linked_spans": 4,
        "peak_tree_rss_mb": pss + 100,
        "peak_tree_pss_mb": pss,
        "peak_process_rss_mb": pss,
        "main_process_rss_mb": pss,
    }


def test_repeated_bulk_runs_report_the_median_speed_and_the_peak_memory(tmp_path):
    from benchmarks.bench_bulk import median_run, repeated

    runs = [_bulk_run(12.0, 800), _bulk_run(10.0, 900), _bulk_run(11.0, 850)]
    r = median_run(runs)
    assert r["docs_per_second"] == 11.0 and r["words_per_second"] == 1100.0
    assert r["docs_per_second_runs"] == [12.0, 10.0, 11.0]  # in the order they ran
    assert r["peak_tree_pss_mb"] == 900 and r["peak_tree_rss_mb"] == 1000
    assert median_run([_bulk_run(3.0, 1)]) == _bulk_run(3.0, 1)  # one run stays as it was
    assert repeated("linked n2") and not repeated("spark pair: linked n2") and not repeated("ruler+linker n1 rss@1000")
    results = tmp_path / "results"
    results.mkdir()
    (results / "bulk.json").write_text(
        json.dumps({"meta": META, "results": {"mentions n1": _bulk_run(20.0, 500), "linked n1": r}})
    )
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- BEGIN bench:bulk -->\n<!-- END bench:bulk -->\n")
    out = tables(doc, "--results", results)
    assert out.returncode == 0, out.stderr
    text = doc.read_text()
    assert "| contender | docs | docs/s | docs/s of each run | words/s |" in text
    assert "| linked n1 | 10 | 11.00 | 12.00 / 10.00 / 11.00 | 1,100 |" in text
    assert "| mentions n1 | 10 | 20.00 | - | 2,000 |" in text
