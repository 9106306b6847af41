"""The node space: node2vec vectors, optionally concatenated with a text vector of each
concept's label and synonyms, and the PCA that shrinks the text part."""

from __future__ import annotations

from collections import Counter
from typing import Optional, Sequence

import numpy as np

from .text import l2_normalize, words


def build_node_space(
    node_vectors: Optional[np.ndarray],
    text_vectors: Optional[np.ndarray] = None,
    *,
    text_weight: float = 0.5,
) -> np.ndarray:
    """Node-space matrix: normalised node2vec rows, optionally concatenated with
    normalised text rows, weighted so that cosine = (1-w) cos_node + w cos_text.

    node_vectors (Optional[np.ndarray]): (n, d) node2vec vectors in taxonomy order, or None.
    text_vectors (Optional[np.ndarray]): (n, t) text vectors of the labels/synonyms, or None.
    text_weight (float): w in [0, 1].
    RETURNS (np.ndarray): (n, d [+ t]) float32, rows of unit norm (zero rows stay zero).
    """
    if node_vectors is None and text_vectors is None:
        raise ValueError("build_node_space needs node_vectors, text_vectors or both (got neither).")
    if not 0.0 <= text_weight <= 1.0:
        raise ValueError(f"text_weight must be in [0, 1] (got {text_weight}).")
    parts = []
    if node_vectors is not None:
        nw = 1.0 if text_vectors is None else 1.0 - text_weight
        parts.append(np.sqrt(nw) * l2_normalize(node_vectors))
    if text_vectors is not None:
        if node_vectors is not None and len(text_vectors) != len(node_vectors):
            raise ValueError(f"text_vectors has {len(text_vectors)} rows but node_vectors has {len(node_vectors)}.")
        tw = 1.0 if node_vectors is None else text_weight
        parts.append(np.sqrt(tw) * l2_normalize(text_vectors))
    return l2_normalize(np.concatenate(parts, axis=1))


def principal_components(vectors: np.ndarray, dim: int, *, unit_rows: bool = True) -> np.ndarray:
    """Rows projected on their `dim` leading principal components (after centring): the
    eigenvectors of the rows' scatter matrix (`numpy.linalg.eigh`, exact and the same on
    every run). All-zero rows (nodes without a known word) stay zero, and neither they
    nor the centring count in the components. A `dim` at or above the width returns the
    rows unchanged. Used for a smaller node space and for distilled word vectors.

    vectors (np.ndarray): (n, width).
    dim (int): components to keep (> 0).
    unit_rows (bool): project the L2-normalised rows (the node space compares text
        vectors by cosine), else the rows as they are.
    RETURNS (np.ndarray): (n, min(dim, width)) float32.
    """
    vectors = np.asarray(vectors, dtype="float32")
    if dim <= 0:
        raise ValueError(f"principal_components: dim must be positive (got {dim}).")
    if dim >= vectors.shape[1]:
        return vectors
    unit = l2_normalize(vectors) if unit_rows else vectors
    live = np.any(unit != 0, axis=1)
    if not live.any():
        return np.zeros((len(vectors), dim), dtype="float32")
    x = unit[live].astype("float64")
    mean = x.mean(0)
    x -= mean
    _, eigvecs = np.linalg.eigh(x.T @ x)  # ascending eigenvalues
    basis = eigvecs[:, ::-1][:, :dim]
    out = np.zeros((len(vectors), dim), dtype="float32")
    out[live] = (x @ basis).astype("float32")
    return out


def node_text_vectors(
    texts: Sequence[str],
    string_node: np.ndarray,
    n_nodes: int,
    vectors_table: np.ndarray,
    find_rows,
) -> np.ndarray:
    """Text vector of each node: IDF-weighted mean of the unit word vectors of all words
    of its label and synonyms (mean over its strings).

    texts (Sequence[str]): every label/synonym string.
    string_node (np.ndarray): node index of each string.
    n_nodes (int): number of nodes.
    vectors_table (np.ndarray): (rows, width) word-vector table.
    find_rows (Callable[[List[str]], np.ndarray]): words -> table rows (-1 unknown).
    RETURNS (np.ndarray): (n_nodes, width) float32.
    """
    width = vectors_table.shape[1]
    toks = [words(t) for t in texts]
    df = Counter(w for ws in toks for w in set(ws))
    vocab = list(df)
    rows = np.asarray(find_rows(vocab), dtype="int64") if vocab else np.zeros(0, dtype="int64")
    unit = l2_normalize(vectors_table)
    n = max(len(texts), 1)
    w_index = {w: i for i, w in enumerate(vocab)}
    idf = np.log((1 + n) / (1 + np.array([df[w] for w in vocab], dtype="float64"))) + 1.0
    out = np.zeros((n_nodes, width), dtype="float32")
    for s, ws in enumerate(toks):
        ids = [w_index[w] for w in ws]
        ids = [i for i in ids if rows[i] >= 0]
        if not ids:
            continue
        wts = idf[ids].astype("float32")
        v = (unit[rows[ids]] * wts[:, None]).sum(0) / wts.sum()
        out[string_node[s]] += l2_normalize(v[None])[0]
    return out
