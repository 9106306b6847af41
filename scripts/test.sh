#!/usr/bin/env bash
# The test command (README, .ci/run): lint, format, types and the docs site first (seconds),
# then the whole test suite with the slow end-to-end runs. Extra arguments go to pytest.
set -euo pipefail
PY=${PYTHON:-python3}
cd "$(dirname "$0")/.."
"$PY" -m ruff check spacy_text2node tests benchmarks scripts
"$PY" -m ruff format --check spacy_text2node tests benchmarks scripts
"$PY" -m mypy spacy_text2node benchmarks
export NO_MKDOCS_2_WARNING=1
site_dir=$(mktemp -d)
trap 'rm -rf "$site_dir"' EXIT
"$PY" -m mkdocs build --strict --quiet --site-dir "$site_dir"
# two workers (pytest-xdist), one per core of the CI machine; TEST_WORKERS=0 runs in one process.
# No test uses pytest-benchmark (the bench extra installs it), whose plugin warns under xdist.
"$PY" -m pytest --slow --durations=20 -n "${TEST_WORKERS:-2}" --dist loadgroup -p no:benchmark "$@"
