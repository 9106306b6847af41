"""Write reports/linker.md with figures from the `evaluate` step (project step `report`).

Figures (PNG, beside the markdown):
- acc_at_k.png: Acc@k (k = 1, 2, 3, 5, 10) for our linker and both peers, per setting;
- tree_distance.png: histogram of the tree distance of the top prediction (P3);
- node_space.png: a 2-D PCA projection of the linker's node space coloured by ICD-10-CM
  chapter, with some test phrases mapped into it by the trained mapper;
and example mappings: right, wrong but close (tree distance <= 2), wrong.
"""

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List

import numpy as np
import spacy
import typer

from spacy_text2node.linker_api import get_linker

KS = (1, 2, 3, 5, 10)


def _acc_at_k(rows: List[Dict], k: int) -> float:
    return float(np.mean([any(c in set(r["gold"]) for c in r["ranked"][:k]) for r in rows])) if rows else 0.0


def main(
    metrics_dir: Path = typer.Argument(..., help="Output of the evaluate step (linker.json, predictions.jsonl)."),
    model_dir: Path = typer.Argument(
        ..., help="A trained linker pipeline, for the node-space figure and tree distances."
    ),
    out_dir: Path = typer.Argument(..., help="Where to write linker.md and the PNGs."),
    n_nodes: int = typer.Option(6000, "--nodes", help="Nodes sampled for the node-space figure."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = json.loads((metrics_dir / "linker.json").read_text())
    preds: Dict[str, Dict[str, List[Dict]]] = defaultdict(lambda: defaultdict(list))
    with (metrics_dir / "predictions.jsonl").open(encoding="utf8") as f:
        for line in f:
            r = json.loads(line)
            preds[r["setting"]][r["system"]].append(r)
    nlp = spacy.load(model_dir)
    linker = get_linker(nlp)
    tax = linker.taxonomy
    settings = list(metrics)
    systems = list(next(iter(metrics.values())))

    # Acc@k curves
    fig, axes = plt.subplots(1, len(settings), figsize=(4.5 * len(settings), 3.6), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        for system in systems:
            ax.plot(KS, [_acc_at_k(preds[setting][system], k) for k in KS], marker="o", label=system)
        ax.set_title(f"{setting} (n={len(preds[setting][systems[0]])})")
        ax.set_xlabel("k")
        ax.set_ylabel("Acc@k")
        ax.set_xticks(KS)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(out_dir / "acc_at_k.png", dpi=110)
    plt.close(fig)

    # tree distance histogram of the top prediction
    first = settings[0]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    width = 0.8 / len(systems)
    dists_by_sys = {}
    for j, system in enumerate(systems):
        d = [min(tax.distance(r["ranked"][0], g) for g in r["gold"]) for r in preds[first][system] if r["ranked"]]
        dists_by_sys[system] = d
        c = Counter(min(x, 10) for x in d)
        xs = np.arange(0, 11)
        ax.bar(xs + j * width, [c.get(int(x), 0) for x in xs], width=width, label=system)
    ax.set_xlabel("tree distance of the top prediction to the nearest gold code (10 = 10+)")
    ax.set_ylabel("queries")
    ax.set_title(f"{first}: tree distance")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "tree_distance.png", dpi=110)
    plt.close(fig)

    # node space, coloured by chapter (the root above each node), with mapped phrases
    rng = np.random.default_rng(seed)
    space = linker.index.space
    idx = np.sort(rng.choice(len(tax), size=min(n_nodes, len(tax)), replace=False))
    # colour by chapter (the top ancestor); a single-chapter taxonomy is coloured by block
    level = 1 if len(tax.roots) == 1 else 0
    roots = []
    for i in idx:
        chain = [tax.id_at(int(i))] + tax.ancestors(tax.id_at(int(i)))
        chain = chain[::-1]  # root first
        roots.append(chain[min(level, len(chain) - 1)])
    pca = PCA(n_components=2, random_state=seed).fit(space[idx])
    xy = pca.transform(space[idx])
    ours = [r for r in preds[first]["text2node"] if r["ranked"]][:400]
    sample = [ours[i] for i in rng.choice(len(ours), size=min(8, len(ours)), replace=False)] if ours else []
    docs = [nlp.make_doc(r["text"]) for r in sample]
    fig, ax = plt.subplots(figsize=(8, 6.5))
    chapters = sorted(set(roots), key=lambda c: (len(c), c))
    cmap = plt.get_cmap("tab20", max(len(chapters), 1))
    for ci, ch in enumerate(chapters):
        m = np.array([r == ch for r in roots])
        ax.scatter(xy[m, 0], xy[m, 1], s=3, color=cmap(ci), label=f"{ch}", alpha=0.6)
    if docs:
        Y = np.asarray(
            linker.model.ops.to_numpy(linker.model.predict((docs, [(i, 0, len(d)) for i, d in enumerate(docs)]))),
            dtype="float32",
        )
        Y = Y / np.maximum(np.linalg.norm(Y, axis=1, keepdims=True), 1e-9)
        scale = np.linalg.norm(space[idx], axis=1).mean()
        pxy = pca.transform(Y * scale)
        ax.scatter(pxy[:, 0], pxy[:, 1], marker="*", s=160, color="black")
        for (x, y), r in zip(pxy, sample):
            ax.annotate(r["text"][:40], (x, y), fontsize=7)
    ax.set_title(f"Node space (PCA), coloured by {'block' if level else 'chapter'}; stars: mapped phrases")
    ax.legend(markerscale=4, fontsize=6, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(out_dir / "node_space.png", dpi=110)
    plt.close(fig)

    # examples
    right, close, wrong = [], [], []
    for r in preds[first]["text2node"]:
        if not r["ranked"]:
            continue
        top = r["ranked"][0]
        d = min(tax.distance(top, g) for g in r["gold"])
        row = (r["text"], top, tax.label(top), ", ".join(f"{g} {tax.label(g)}" for g in r["gold"][:2]), d)
        (right if d == 0 else close if d <= 2 else wrong).append(row)
    lines = ["# Text2Node linker: evaluation report", ""]
    lines.append(
        "ICD-9-CM descriptions mapped to ICD-10-CM (gold = CMS GEM targets); "
        "candidates: every concept of the taxonomy. "
        "Settings: P3 = trained on ICD-10-CM text only; P1 = plus the GEM pairs of 80% of the ICD-9-CM codes; "
        "Z = 10% of the leaves held out of training (zero-shot). "
        "Peers: TF-IDF character 3-grams and all-MiniLM-L6-v2, exact cosine."
    )
    lines += [
        "",
        "| setting | system | n | Acc@1 | Acc@5 | MRR | tree distance | phrases/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for setting, by_sys in metrics.items():
        for system, s in by_sys.items():
            lines.append(
                f"| {setting} | {system} | {int(s['n'])} | {s['acc@1']:.3f} | {s['acc@5']:.3f} | {s['mrr']:.3f} "
                f"| {s['tree_distance']:.2f} | {s['phrases_per_s']:.0f} |"
            )
    lines += [
        "",
        "![Acc@k](acc_at_k.png)",
        "",
        "![tree distance](tree_distance.png)",
        "",
        "![node space](node_space.png)",
        "",
    ]
    for title, rows in (("Right", right), ("Wrong but close (tree distance 1-2)", close), ("Wrong", wrong)):
        lines += [
            f"## {title} ({first}: {len(rows)} queries)",
            "",
            "| phrase | predicted | gold | distance |",
            "|---|---|---|---|",
        ]
        for text, top, label, gold, d in rows[:8]:
            lines.append(f"| {text} | {top} {label} | {gold} | {d} |")
        lines.append("")
    (out_dir / "linker.md").write_text("\n".join(lines), encoding="utf8")
    print(f"Wrote {out_dir / 'linker.md'} with acc_at_k.png, tree_distance.png, node_space.png")


if __name__ == "__main__":
    typer.run(main)
