"""`python -m benchmarks <name> ...`: run a benchmark, or `tables` to fill the docs' tables."""

from benchmarks.cli import app

if __name__ == "__main__":
    app(prog_name="python -m benchmarks")
