"""Taxonomy loading and serialization speed on the real sources.

Usage: python benchmarks/bench_taxonomy.py [--shared ../shared/data]

Loads ICD-10-CM (from simple-icd-10-cm) and, when ../shared/data is present, CTD
MEDIC and HPO; times a to_disk/from_disk round trip and checks it is identical.
Each source is measured in a fresh subprocess so peak RSS is its own.
Targets (foundation issue): ICD-10-CM load < 10 s, round trip < 2 s.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = r"""
import json, sys, time, tempfile, resource
from spacy_text2node import Taxonomy
fmt, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
tax = {"icd10cm": lambda: Taxonomy.from_icd10cm(), "ctd-medic": lambda: Taxonomy.from_ctd_medic(path),
       "obo": lambda: Taxonomy.from_obo(path)}[fmt]()
load = time.perf_counter() - t0
with tempfile.TemporaryDirectory() as d:
    t0 = time.perf_counter(); tax.to_disk(d); save = time.perf_counter() - t0
    t0 = time.perf_counter(); back = Taxonomy.from_disk(d); read = time.perf_counter() - t0
t0 = time.perf_counter(); tax.csr(); csr = time.perf_counter() - t0
print(json.dumps({"concepts": len(tax), "roots": len(tax.roots), "load_s": load, "to_disk_s": save,
    "from_disk_s": read, "round_trip_s": save + read, "identical": back == tax, "csr_s": csr,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
    args = ap.parse_args()
    shared = Path(args.shared)
    sources = [("ICD-10-CM", "icd10cm", "-")]
    if (shared / "ctd_medic/CTD_diseases.tsv.gz").exists():
        sources.append(("CTD MEDIC", "ctd-medic", str(shared / "ctd_medic/CTD_diseases.tsv.gz")))
    if (shared / "hpo_2013/hp.obo").exists():
        sources.append(("HPO 2013", "obo", str(shared / "hpo_2013/hp.obo")))
    results = {}
    print(f"{'source':<10} {'concepts':>9} {'load s':>7} {'round trip s':>13} {'identical':>9} {'peak RSS MB':>11}")
    for name, fmt, path in sources:
        out = subprocess.run([sys.executable, "-c", CHILD, fmt, path], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results[name] = r
        print(
            f"{name:<10} {r['concepts']:>9,} {r['load_s']:>7.2f} {r['round_trip_s']:>13.2f} {str(r['identical']):>9} {r['peak_rss_mb']:>11.0f}"
        )
    icd = results["ICD-10-CM"]
    print(
        f"\nICD-10-CM load {icd['load_s']:.2f} s (target < 10 s): {'OK' if icd['load_s'] < 10 else 'MISSED'}; "
        f"round trip {icd['round_trip_s']:.2f} s (target < 2 s): {'OK' if icd['round_trip_s'] < 2 and icd['identical'] else 'MISSED'}"
    )
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "taxonomy.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
