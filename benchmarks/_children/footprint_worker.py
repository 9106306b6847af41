"""One contender of the footprint benchmark, in a fresh process (its RSS figures are its own).

    python -m benchmarks._children.footprint_worker SPEC_JSON RESULT_JSON

SPEC_JSON's "kind" is `blank` (`spacy.blank("en")`), `ours` (a trained linker pipeline) or
`peer` (MiniLM or TF-IDF over the pipeline's taxonomy); see `python -m benchmarks footprint --help`.
Run by the footprint benchmark, possibly under a torch-free interpreter: this module imports
only the standard library and benchmarks._common at start.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

from benchmarks._common import peak_rss_mb, rss_mb

K = 5
WARMUP = 64


def dir_mb(path: Path) -> float:
    """Sum of the sizes of the files under path (or of the file itself), in MB."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size / 2**20
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.stat(os.path.join(root, f)).st_size
    return total / 2**20


def _runtime_info(spec: Dict[str, Any]) -> Dict[str, Any]:
    info: Dict[str, Any] = {"python": sys.executable, "torch_imported": "torch" in sys.modules}
    if info["torch_imported"]:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    return info


def _set_torch_threads(spec: Dict[str, Any]) -> None:
    if spec.get("threads", 0) > 0 and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(spec["threads"])


def work_blank(spec: Dict[str, Any]) -> Dict[str, Any]:
    t0 = time.perf_counter()
    import spacy

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    nlp = spacy.blank("en")
    nlp("warm up the tokenizer")
    load_s = time.perf_counter() - t0
    return {
        "import_s": import_s,
        "load_s": load_s,
        "rss_after_load_mb": rss_mb(),
        "peak_rss_after_load_mb": peak_rss_mb(),
        "spacy_version": spacy.__version__,
    }


def work_ours(spec: Dict[str, Any]) -> Dict[str, Any]:
    t0 = time.perf_counter()
    import spacy

    from spacy_text2node.linker_api import link_phrases
    from spacy_text2node.scoring import ranking_scores

    import_s = time.perf_counter() - t0
    model_dir = Path(spec["model_dir"])
    t0 = time.perf_counter()
    nlp = spacy.load(model_dir)
    load_s = time.perf_counter() - t0
    rss_load, peak_load = rss_mb(), peak_rss_mb()
    if spec["pipe"] not in nlp.pipe_names:
        raise SystemExit(f"{model_dir}: no {spec['pipe']} component after loading (components: {nlp.pipe_names}).")
    linker: Any = nlp.get_pipe(spec["pipe"])
    linker.cfg["cache_size"] = 0  # no result cache: a repeated text costs a full search
    if spec.get("threads", 0) > 0:
        linker.cfg["n_threads"] = spec["threads"]
    scores, timing = rank_queries(spec, lambda texts: link_phrases(nlp, texts, k=K), ranking_scores)
    return {
        **scores,
        "import_s": import_s,
        "load_s": load_s,
        "rss_after_load_mb": rss_load,
        "peak_rss_after_load_mb": peak_load,
        **timing,
        "n_threads": linker.cfg.get("n_threads"),
        "candidates": linker.cfg.get("candidates", "all"),
        "calibrated": bool(linker.cfg.get("calibrated", False)),
        "concepts": len(linker.taxonomy),
        "spacy_version": spacy.__version__,
    }


def work_peer(spec: Dict[str, Any]) -> Dict[str, Any]:
    t0 = time.perf_counter()
    from spacy_text2node import Taxonomy
    from spacy_text2node.baselines import MiniLMLinker, TfidfLinker, index_strings, minilm_path, strings_key
    from spacy_text2node.scoring import ranking_scores

    import_s = time.perf_counter() - t0
    tax_dir = Path(spec["model_dir"]) / spec["pipe"] / "taxonomy"
    t0 = time.perf_counter()
    tax = Taxonomy.from_disk(tax_dir)
    taxonomy_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    extra: Dict[str, Any] = {}
    disk = {"taxonomy": dir_mb(tax_dir)}
    peer: Any
    if spec["peer"] == "minilm":
        peer = MiniLMLinker(tax, cache_dir=spec["cache_dir"], candidates=spec["candidates"])
        build_s = time.perf_counter() - t0
        cache_file = Path(spec["cache_dir"]) / f"minilm-{strings_key(index_strings(tax)[1])}.npy"
        disk["model"] = dir_mb(minilm_path())
        disk["encodings"] = dir_mb(cache_file) if cache_file.exists() else 0.0
        extra = {
            "index_from_cache": peer.from_cache,
            "index_encode_s": peer.encode_seconds,
            "encodings_file": str(cache_file),
        }
    else:
        peer = TfidfLinker(tax, candidates=spec["candidates"])
        build_s = time.perf_counter() - t0
    rss_load, peak_load = rss_mb(), peak_rss_mb()
    scores, timing = rank_queries(spec, lambda texts: peer.rank(texts, k=K), ranking_scores)
    return {
        **scores,
        **extra,
        "import_s": import_s,
        "taxonomy_load_s": taxonomy_s,
        "build_s": build_s,
        "load_s": taxonomy_s + build_s,
        "rss_after_load_mb": rss_load,
        "peak_rss_after_load_mb": peak_load,
        **timing,
        "candidates": spec["candidates"],
        "index_strings": peer.n_strings,
        "disk_mb": sum(disk.values()),
        "disk_parts_mb": disk,
    }


def rank_queries(
    spec: Dict[str, Any], rank: Callable[[List[str]], Any], ranking_scores: Callable[..., Dict[str, float]]
) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """Rank the spec's queries as every contender does (torch threads set, a warm-up on the first
    WARMUP queries, then `spec["passes"]` timed passes): (ranking scores of the last pass, timing)."""
    _set_torch_threads(spec)
    texts = [q["text"] for q in spec["queries"]]
    gold = [q["gold"] for q in spec["queries"]]
    rank(texts[:WARMUP])
    ranked, passes_s = timed_passes(lambda: rank(texts), spec["passes"])
    rank_s = min(passes_s)
    scores = ranking_scores([[c for c, _ in r] for r in ranked], gold, ks=(1, 5))
    return scores, {"rank_s": rank_s, "passes_s": passes_s, "phrases_per_s": len(texts) / rank_s}


def timed_passes(run: Any, passes: int) -> Any:
    """Run `run()` `passes` times: (the last result, seconds of each pass)."""
    seconds: List[float] = []
    out = None
    for _ in range(max(1, passes)):
        t0 = time.perf_counter()
        out = run()
        seconds.append(time.perf_counter() - t0)
    return out, seconds


WORKERS = {"blank": work_blank, "ours": work_ours, "peer": work_peer}


def worker(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text(encoding="utf8"))
    res = WORKERS[spec["kind"]](spec)
    res.update(_runtime_info(spec))
    res["peak_rss_mb"] = peak_rss_mb()
    Path(out_path).write_text(json.dumps(res), encoding="utf8")


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2])
