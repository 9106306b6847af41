"""The docs: the README front page, the generated reference pages, the benchmark regions and
the MkDocs site (`mkdocs build --strict` checks every link and anchor between the pages)."""

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BENCHMARK_MODULES = ["bulk", "documents", "footprint", "linker", "node2vec", "serve", "taxonomy", "textcat", "vectors"]


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, **kwargs)


def n_tables(text: str) -> int:
    """How many markdown tables a text holds (one header separator line each)."""
    return len(re.findall(r"^\|(?:\s*:?-+:?\s*\|)+\s*$", text, re.M))


def regions(text: str) -> dict:
    """{name: body} of every `<!-- BEGIN bench:NAME -->` ... `<!-- END bench:NAME -->` region."""
    found = {}
    for match in re.finditer(r"<!-- BEGIN bench:([\w-]+) -->\n(.*?)<!-- END bench:\1 -->", text, re.S):
        assert match.group(1) not in found, f"region {match.group(1)} appears twice"
        found[match.group(1)] = match.group(2)
    return found


def test_reference_pages_are_current():
    result = run(sys.executable, "scripts/gen_reference.py", "--check", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_reference_lists_every_declared_entry_point():
    # a name declared in setup.cfg but not registered when the package is imported would be
    # missing from the page (and from spaCy's registry in a process that imports the package)
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    page = (ROOT / "docs" / "reference" / "registry.md").read_text(encoding="utf-8")
    names = []
    for group, value in cfg["options.entry_points"].items():
        if group.startswith("spacy_"):
            names += [line.split("=")[0].strip() for line in value.strip().splitlines() if "=" in line]
    assert names
    missing = [name for name in names if f"### `{name}`" not in page]
    assert not missing, f"declared in setup.cfg, missing from docs/reference/registry.md: {missing}"


def test_readme_is_a_front_page_that_starts_with_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail to docs/"
    assert lines[0].startswith("# ")
    assert lines[1:3] == ["", "```bash"]
    commands = [line.split("#")[0].strip() for line in lines[3:5]]
    assert lines[5] == "```"
    assert commands == [
        "bash scripts/install.sh && python3 -m spacy project run all",
        "bash scripts/install.sh && bash scripts/test.sh",
    ]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == commands[1], ".ci/run must run the README's test command"


def test_readme_links_resolve():
    text = README.read_text(encoding="utf-8")
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t]
    assert targets
    missing = [t for t in targets if t and not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_benchmark_regions():
    readme = regions(README.read_text(encoding="utf-8"))
    assert list(readme) == ["headline"], "the README has one generated table, the headline"
    assert n_tables(readme["headline"]) == 1
    # docs/benchmarks.md: one table per region, named after its module (`vectors-icd`: bench_vectors.py)
    bench = regions((ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8"))
    modules = {name.split("-")[0] for name in bench}
    assert sorted(modules) == BENCHMARK_MODULES
    for name, body in bench.items():
        assert (ROOT / "benchmarks" / f"bench_{name.split('-')[0]}.py").exists(), f"no benchmark module for {name}"
        assert n_tables(body) == 1, f"region {name} should hold one table"


def test_mkdocs_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e '.[docs]')")
    result = run(sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "registry" / "index.html").exists()
