#!/usr/bin/env bash
# Install spacy-text2node with every extra into the current Python (use a venv if you like).
# torch is pinned first to the CPU build so nothing pulls a multi-GB CUDA build.
set -euo pipefail
PY=${PYTHON:-python3}
cd "$(dirname "$0")/.."
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  "$PY" -m pip install -q "torch==2.13.0"
fi
"$PY" -m pip install -q -e ".[all]"
# The review page's browser test drives Debian's Chromium through Playwright: no browser is ever
# downloaded (never `playwright install`). Installed where we may (root with apt), else that test skips.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/tmp/text2node-chromium.log 2>&1; then
    tail -20 /tmp/text2node-chromium.log >&2
    echo "install.sh: could not install Debian's chromium (needed only by the browser test)" >&2
    exit 1
  fi
fi
"$PY" -c "import spacy_text2node, spacy; print('spacy-text2node', spacy_text2node.__version__, 'installed; spaCy', spacy.__version__)"
