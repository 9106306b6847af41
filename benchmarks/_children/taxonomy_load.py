"""Load one taxonomy source, time a to_disk/from_disk round trip and csr(); print the figures as JSON.

    python -m benchmarks._children.taxonomy_load icd10cm|ctd-medic|obo PATH

(PATH is ignored for icd10cm.) Run by `python -m benchmarks taxonomy`, one source per process.
"""

import json
import resource
import sys
import tempfile
import time
from typing import Any, Callable, Dict


def measure(fmt: str, path: str) -> Dict[str, Any]:
    from spacy_text2node import Taxonomy

    loaders: Dict[str, Callable[[], Taxonomy]] = {
        "icd10cm": lambda: Taxonomy.from_icd10cm(),
        "ctd-medic": lambda: Taxonomy.from_ctd_medic(path),
        "obo": lambda: Taxonomy.from_obo(path),
    }
    t0 = time.perf_counter()
    tax = loaders[fmt]()
    load = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        tax.to_disk(d)
        save = time.perf_counter() - t0
        t0 = time.perf_counter()
        back = Taxonomy.from_disk(d)
        read = time.perf_counter() - t0
    t0 = time.perf_counter()
    tax.csr()
    csr = time.perf_counter() - t0
    return {
        "concepts": len(tax),
        "roots": len(tax.roots),
        "load_s": load,
        "to_disk_s": save,
        "from_disk_s": read,
        "round_trip_s": save + read,
        "identical": back == tax,
        "csr_s": csr,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2])))
