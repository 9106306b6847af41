"""Train word vectors with gensim (Word2Vec, FastText) on text files, JSONL or a
taxonomy's own labels, synonyms and definitions, and export them for spaCy
(a default table, or floret vectors that keep FastText's subword information).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from spacy.vectors import Vectors

from ..util import open_binary
from .io import VectorsError
from .subwords import fit_floret_table, floret_hasher

logger = logging.getLogger("spacy_text2node")

PathLike = Union[str, Path]


def _tokenizer():
    import spacy

    return spacy.blank("en").tokenizer


def _file_lines(path: Path) -> Iterator[Tuple[int, str]]:
    if not path.exists():
        raise VectorsError(f"{path}: no such corpus file. Check the path.")
    if path.is_dir():
        raise VectorsError(f"{path}: is a folder, expected a text or JSONL file.")
    raw = open_binary(path)
    with raw:
        for line_no, b in enumerate(raw, 1):
            if line_no == 1 and b.startswith(b"\xef\xbb\xbf"):
                b = b[3:]
            try:
                yield line_no, b.decode("utf-8")
            except UnicodeDecodeError as e:
                raise VectorsError(
                    f"{path}, line {line_no}: not valid UTF-8 ({e.reason} at byte {e.start}). "
                    "Re-encode the file as UTF-8."
                ) from None


def iter_corpus_texts(
    paths: Sequence[PathLike] = (),
    *,
    taxonomy=None,
    text_field: str = "text",
    definitions: bool = True,
) -> Iterator[str]:
    """Texts of a corpus: each non-empty line of a text file, field `text_field` of
    each line of a `.jsonl` file, and a taxonomy's labels, synonyms (and definitions).

    paths (Sequence[str / Path]): text or JSONL files (optionally gzipped).
    taxonomy (Optional[Taxonomy]): a taxonomy whose own text joins the corpus.
    text_field (str): the JSONL field holding the text.
    definitions (bool): include the taxonomy's definitions.
    YIELDS (str): one text at a time.
    """
    for p in paths:
        path = Path(p)
        is_jsonl = path.name.endswith((".jsonl", ".jsonl.gz", ".ndjson"))
        for line_no, line in _file_lines(path):
            if not line.strip():
                continue
            if is_jsonl:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise VectorsError(f"{path}, line {line_no}: not valid JSON ({e.msg}). Fix the line.") from None
                if not isinstance(rec, dict) or not isinstance(rec.get(text_field), str):
                    raise VectorsError(
                        f"{path}, line {line_no}: no string field {text_field!r}. "
                        "Set text_field to the field that holds the text."
                    )
                yield rec[text_field]
            else:
                yield line.rstrip("\r\n")
    if taxonomy is not None:
        for _cid, text in taxonomy.iter_texts(definitions=definitions):
            yield text


def tokenize_corpus(texts: Iterable[str], *, lowercase: bool = True, batch_size: int = 1000) -> List[List[str]]:
    """Split texts with spaCy's English tokenizer (the same one that reads text at
    inference), dropping spaces and punctuation."""
    tok = _tokenizer()
    out: List[List[str]] = []
    for doc in tok.pipe(texts, batch_size=batch_size):
        words = [(t.lower_ if lowercase else t.text) for t in doc if not (t.is_space or t.is_punct)]
        if words:
            out.append(words)
    return out


def build_corpus(
    paths: Sequence[PathLike] = (),
    *,
    taxonomy=None,
    text_field: str = "text",
    definitions: bool = True,
    lowercase: bool = True,
) -> List[List[str]]:
    """Tokenized sentences from files and/or a taxonomy; an empty corpus is an error."""
    sents = tokenize_corpus(
        iter_corpus_texts(paths, taxonomy=taxonomy, text_field=text_field, definitions=definitions),
        lowercase=lowercase,
    )
    if not sents:
        where = ", ".join(str(p) for p in paths) or "(no files)"
        if taxonomy is not None:
            where += f" and taxonomy {taxonomy.name!r}"
        raise VectorsError(f"The corpus is empty: no words in {where}. Give files with text, or a taxonomy.")
    return sents


def train_gensim(
    sentences: List[List[str]],
    *,
    algorithm: str = "fasttext",
    dim: int = 100,
    window: int = 5,
    min_count: int = 1,
    epochs: int = 10,
    sg: bool = True,
    minn: int = 3,
    maxn: int = 6,
    bucket: int = 200_000,
    workers: int = 2,
    seed: int = 0,
):
    """Train a gensim Word2Vec or FastText model (returns the gensim model)."""
    from gensim.models import FastText, Word2Vec

    if algorithm not in ("word2vec", "fasttext"):
        raise VectorsError(f"Unknown algorithm {algorithm!r}: choose 'word2vec' or 'fasttext'.")
    common = dict(
        vector_size=dim, window=window, min_count=min_count, epochs=epochs, sg=int(sg), workers=workers, seed=seed
    )
    n_tokens = sum(len(s) for s in sentences)
    logger.info("training %s on %d sentences, %d tokens", algorithm, len(sentences), n_tokens)
    if algorithm == "word2vec":
        model = Word2Vec(sentences=sentences, **common)
    else:
        model = FastText(sentences=sentences, min_n=minn, max_n=maxn, bucket=bucket, **common)
    if len(model.wv) == 0:
        raise VectorsError(
            f"Training left no words: a minimum count of {min_count} is too high for this corpus; lower it "
            f"(CLI: --min-count N, Python: min_count=N)."
        )
    return model


def gensim_prior(model, hasher: Vectors, n_buckets: int) -> np.ndarray:
    """Place gensim FastText's n-gram vectors into spaCy floret buckets (mean over
    the n-grams that fall into a bucket): the fit's starting table."""
    from gensim.models.fasttext_inner import ft_hash_bytes

    wv = model.wv
    dim = wv.vector_size
    ngrams = set()
    for w in wv.index_to_key:
        ngrams.update(hasher._get_ngrams(w))
    src = np.empty(len(ngrams), dtype=np.int64)
    rows: List[int] = []
    owners: List[int] = []
    for j, ng in enumerate(ngrams):
        src[j] = ft_hash_bytes(ng.encode("utf-8")) % wv.bucket
        for h in hasher._get_ngram_hashes(ng):
            rows.append(h % n_buckets)
            owners.append(j)
    rows_a = np.asarray(rows, dtype=np.int64)
    vecs = np.asarray(wv.vectors_ngrams, dtype=np.float32)[src[np.asarray(owners, dtype=np.int64)]]
    prior = np.zeros((n_buckets, dim), dtype=np.float32)
    np.add.at(prior, rows_a, vecs)
    counts = np.bincount(rows_a, minlength=n_buckets).astype(np.float32)
    prior /= np.maximum(counts, 1)[:, None]
    return prior


def export_floret(
    model,
    *,
    n_buckets: int = 50_000,
    hash_count: int = 2,
    hash_seed: int = 0,
    minn: Optional[int] = None,
    maxn: Optional[int] = None,
    max_iter: int = 60,
    show_progress: bool = True,
) -> Vectors:
    """Export a gensim FastText model to a spaCy floret `Vectors` table.

    spaCy hashes n-grams with MurmurHash3 (fastText uses FNV), so the gensim buckets
    cannot be copied row by row. Each spaCy bucket starts as the mean of the gensim
    n-gram vectors that hash into it, then the table is fitted (least squares) so that
    every training word's floret vector reproduces its gensim vector.

    model (gensim FastText): the trained model.
    n_buckets (int): rows of the floret table.
    hash_count (int): hashes per n-gram (1-4).
    RETURNS (Vectors): floret-mode vectors.
    """
    wv = model.wv
    minn = wv.min_n if minn is None else minn
    maxn = wv.max_n if maxn is None else maxn
    hasher = floret_hasher(n_buckets, minn, maxn, hash_count, hash_seed)
    prior = gensim_prior(model, hasher, n_buckets)
    return fit_floret_table(
        list(wv.index_to_key),
        np.asarray(wv.vectors, dtype=np.float32),
        n_buckets=n_buckets,
        minn=minn,
        maxn=maxn,
        hash_count=hash_count,
        hash_seed=hash_seed,
        prior=prior,
        max_iter=max_iter,
        show_progress=show_progress,
    )
