"""Benchmarks of spacy-text2node: `python -m benchmarks --help` lists them.

Each benchmark writes benchmarks/results/<name>.json (its figures, the command line, the
date, the machine and the git commit); `python -m benchmarks tables FILE.md ...` fills the
markdown tables of the docs from those files. This package imports nothing at import time:
its child programs (`benchmarks/_children/`) measure their own memory.
"""
