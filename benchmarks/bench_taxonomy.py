"""Taxonomy loading and serialization speed on the real sources.

    python -m benchmarks taxonomy [--shared ../shared/data]

Loads ICD-10-CM (from simple-icd-10-cm) and, when ../shared/data is present, CTD
MEDIC and HPO; times a to_disk/from_disk round trip and checks it is identical.
Each source is measured in a fresh subprocess (benchmarks/_children/taxonomy_load.py)
so peak RSS is its own. Targets (foundation issue): ICD-10-CM load < 10 s, round trip < 2 s.
Writes benchmarks/results/taxonomy.json.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

if not __package__:  # run as `python benchmarks/bench_taxonomy.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO, RESULTS, child_command, run_meta, script_prog, write_results  # noqa: E402

NAME = "taxonomy"


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    prog = prog or script_prog(__file__)
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", type=Path, default=RESULTS / "taxonomy.json")
    args = ap.parse_args(argv)
    shared = Path(args.shared)
    sources = [("ICD-10-CM", "icd10cm", "-")]
    if (shared / "ctd_medic/CTD_diseases.tsv.gz").exists():
        sources.append(("CTD MEDIC", "ctd-medic", str(shared / "ctd_medic/CTD_diseases.tsv.gz")))
    if (shared / "hpo_2013/hp.obo").exists():
        sources.append(("HPO 2013", "obo", str(shared / "hpo_2013/hp.obo")))
    results: Dict[str, Dict[str, Any]] = {}
    print(f"{'source':<10} {'concepts':>9} {'load s':>7} {'round trip s':>13} {'identical':>9} {'peak RSS MB':>11}")
    for name, fmt, path in sources:
        out = subprocess.run(
            child_command("taxonomy_load", fmt, path), capture_output=True, text=True, check=True, cwd=REPO
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results[name] = r
        print(
            f"{name:<10} {r['concepts']:>9,} {r['load_s']:>7.2f} {r['round_trip_s']:>13.2f} "
            f"{str(r['identical']):>9} {r['peak_rss_mb']:>11.0f}"
        )
    icd = results["ICD-10-CM"]
    load_ok = icd["load_s"] < 10
    trip_ok = icd["round_trip_s"] < 2 and icd["identical"]
    print(
        f"\nICD-10-CM load {icd['load_s']:.2f} s (target < 10 s): {'OK' if load_ok else 'MISSED'}; "
        f"round trip {icd['round_trip_s']:.2f} s (target < 2 s): {'OK' if trip_ok else 'MISSED'}"
    )
    print(f"-> {write_results(args.out, {'meta': run_meta(prog, argv), 'results': results})}")


if __name__ == "__main__":
    main()
