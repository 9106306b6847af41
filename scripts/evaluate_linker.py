"""Evaluate trained linkers on the GEM settings beside the two peers (project step `evaluate`).

For each setting (P3, P1, Z) it loads `TRAINING/<setting>/<MODEL_NAME>`, links every
test query of `GEM_DIR/<setting>/test.jsonl`, and runs the TF-IDF character 3-gram
and MiniLM peers on the same queries over the same candidates (`--candidates leaves`:
the concepts without children, ICD-10-CM's billable codes, which is what GEM maps to;
`all`: every concept). The linker must use the same setting (its `candidates`). Speed is
the best of `--speed-passes` passes over the first `--speed-queries` queries, the systems
taking turns in each pass; the last pass's rankings count towards the accuracy, with the
rest of the queries ranked after. Writes `OUT/linker.json` (metrics, speed) and `OUT/predictions.jsonl`
(top-10 per query and system, for the report) and prints the headline table.
"""

import json
import time
from pathlib import Path
from typing import Dict, List

import spacy
import typer
from wasabi import msg

from spacy_text2node import Taxonomy
from spacy_text2node.linker_api import link_phrases
from spacy_text2node.scoring import ranking_scores


def read_queries(path: Path) -> List[Dict]:
    rows = [json.loads(line) for line in path.open(encoding="utf8") if line.strip()]
    if not rows:
        raise ValueError(f"{path}: no test queries. Run the `corpus` step first.")
    return rows


def main(
    gem_dir: Path = typer.Argument(..., help="Output of `text2node data gem`."),
    training_dir: Path = typer.Argument(..., help="Folder with <setting>/model-best pipelines."),
    out_dir: Path = typer.Argument(..., help="Where to write linker.json and predictions.jsonl."),
    settings: str = typer.Option("P3,P1,Z", "--settings"),
    peers: str = typer.Option("tfidf,minilm", "--peers", help="Comma-separated peers to run ('' for none)."),
    cache_dir: Path = typer.Option(Path("assets/cache"), "--cache-dir", help="MiniLM index embeddings cache."),
    k: int = typer.Option(10, "--k"),
    candidates: str = typer.Option(
        "leaves", "--candidates", help="'leaves' or 'all': the peers' candidate concepts (must match the linker's)."
    ),
    model_name: str = typer.Option(
        "model-calibrated", "--model-name", help="Pipeline folder inside TRAINING/<setting>."
    ),
    speed_queries: int = typer.Option(
        2000, "--speed-queries", help="Speed is timed on the first N test queries of each setting..."
    ),
    speed_passes: int = typer.Option(
        3,
        "--speed-passes",
        help="...in this many passes per system, the best one reported (a single pass here varied by up to 30%).",
    ),
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    taxonomy = Taxonomy.from_disk(gem_dir / "taxonomy")
    peer_names = [p for p in peers.split(",") if p]
    peer_objs = {}
    if "tfidf" in peer_names:
        from spacy_text2node.baselines import TfidfLinker

        with msg.loading("Indexing the TF-IDF peer..."):
            peer_objs["tfidf"] = TfidfLinker(taxonomy, candidates=candidates)
    if "minilm" in peer_names:
        from spacy_text2node.baselines import MiniLMLinker

        msg.info("Encoding the MiniLM peer's index (cached after the first run)...")
        peer_objs["minilm"] = MiniLMLinker(taxonomy, cache_dir=cache_dir, progress=True, candidates=candidates)
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    with (out_dir / "predictions.jsonl").open("w", encoding="utf8") as pred_file:
        for setting in [s for s in settings.split(",") if s]:
            queries = read_queries(gem_dir / setting / "test.jsonl")
            texts = [q["text"] for q in queries]
            gold = [q.get("gold") or [q["concept"]] for q in queries]
            systems = {}
            model_dir = training_dir / setting / model_name
            t0 = time.perf_counter()
            nlp = spacy.load(model_dir)
            load_s = time.perf_counter() - t0
            own = nlp.get_pipe("text2node_linker").cfg.get("candidates", "all")
            if own != candidates:
                raise ValueError(
                    f"{model_dir}: the linker links to {own!r} concepts but the peers were asked for "
                    f"{candidates!r}; pass --candidates {own}."
                )
            nlp.get_pipe("text2node_linker").cfg["cache_size"] = 0  # no repeated-text cache: the peers have none
            link_phrases(nlp, texts[:64], k=k)  # warm-up
            # speed: every system on the same queries, the same number of passes, in turn
            timed = texts[: max(1, speed_queries)]
            runners = {"text2node": lambda texts, nlp=nlp: link_phrases(nlp, texts, k=k)}
            runners.update({name: (lambda texts, p=peer: p.rank(texts, k=k)) for name, peer in peer_objs.items()})
            passes: Dict[str, List[float]] = {name: [] for name in runners}
            for _ in range(max(1, speed_passes)):
                for name, run in runners.items():
                    t0 = time.perf_counter()
                    systems[name] = run(timed)
                    passes[name].append(len(timed) / (time.perf_counter() - t0))
            speed = {name: max(v) for name, v in passes.items()}
            # the last timed pass ranked the first queries; the rest are ranked untimed
            rest = texts[len(timed) :]
            if rest:
                for name, run in runners.items():
                    systems[name] = list(systems[name]) + list(run(rest))
            results[setting] = {}
            for name, ranked in systems.items():
                ids = [[c for c, _ in r] for r in ranked]
                scores = ranking_scores(ids, gold, ks=(1, 2, 3, 5, 10), taxonomy=taxonomy)
                scores["phrases_per_s"] = speed[name]
                scores["phrases_per_s_passes"] = passes[name]
                scores["speed_queries"] = len(timed)
                if name == "text2node":
                    scores["load_s"] = load_s
                    scores["calibrated"] = bool(nlp.get_pipe("text2node_linker").cfg.get("calibrated", False))
                scores["candidates"] = candidates
                results[setting][name] = scores
                for q, r in zip(queries, ranked):
                    pred_file.write(
                        json.dumps(
                            {
                                "setting": setting,
                                "system": name,
                                "text": q["text"],
                                "gold": q.get("gold") or [q["concept"]],
                                "ranked": [c for c, _ in r],
                                "scores": [round(float(s), 4) for _, s in r],
                            }
                        )
                        + "\n"
                    )
    (out_dir / "linker.json").write_text(json.dumps(results, indent=2))
    rows = []
    for setting, by_sys in results.items():
        for name, s in by_sys.items():
            rows.append(
                (
                    setting,
                    name,
                    int(s["n"]),
                    f"{s['acc@1']:.3f}",
                    f"{s['acc@5']:.3f}",
                    f"{s['mrr']:.3f}",
                    f"{s['tree_distance']:.2f}",
                    f"{s['phrases_per_s']:.0f}",
                )
            )
    msg.table(rows, header=("setting", "system", "n", "Acc@1", "Acc@5", "MRR", "tree dist", "phrases/s"), divider=True)
    msg.good(
        "Headline: "
        + "; ".join(
            f"{st} Acc@1 {r['text2node']['acc@1']:.3f} Acc@5 {r['text2node']['acc@5']:.3f}" for st, r in results.items()
        )
    )


if __name__ == "__main__":
    typer.run(main)
