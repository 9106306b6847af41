"""Load a pipeline with a vector table in a fresh process; print load time and the RSS it added as JSON.

    python -m benchmarks._children.vectors_load PIPELINE_DIR

Run by `python -m benchmarks vectors` once per vector source (and for a blank pipeline).
"""

import json
import sys
import time
from typing import Any, Dict


def measure(path: str) -> Dict[str, Any]:
    import psutil

    proc = psutil.Process()
    import spacy

    import spacy_text2node.vectors  # noqa: F401  (registers the subword component)

    base = proc.memory_info().rss
    t0 = time.perf_counter()
    nlp = spacy.load(path)
    doc = nlp("Patient with cholecystitis and hyperlipidaemia.")
    load = time.perf_counter() - t0
    rss = proc.memory_info().rss
    return {
        "load_s": load,
        "rss_added_mb": (rss - base) / 2**20,
        "rss_after_mb": rss / 2**20,
        "all_tokens_have_vectors": all(t.has_vector for t in doc),
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
