"""Child programs of the benchmarks, each run in a fresh process as `python -m benchmarks._children.<name>`
(from the repository root) so that its time and memory are its own."""
