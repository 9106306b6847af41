"""`text2node ...` that also writes its own and its waited-for children's peak RSS at exit.

    python -m benchmarks._children.bulk_link RSS_JSON link MODEL INPUT OUTPUT [options]

Run by `python -m benchmarks bulk`, one contender per process.
"""

import atexit
import json
import resource
import sys


def _write_rss(path: str) -> None:
    with open(path, "w") as f:
        json.dump(
            {
                "self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            },
            f,
        )


if __name__ == "__main__":
    atexit.register(_write_rss, sys.argv.pop(1))
    sys.argv[0] = "text2node"  # before the import: the package applies `text2node link`'s torch policy
    import spacy_text2node.cli.link  # noqa: F401  (registers `link`)
    from spacy_text2node.cli import app

    app()
