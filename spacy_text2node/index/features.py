"""The features of (query, candidate node) pairs that the lexical channel and the node index
compute and the reranker scores: one value (or one sparse row) per pair."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Union

import numpy as np
import scipy.sparse as sp


@dataclass(eq=False)  # fields are arrays: no element-wise == to misuse
class LexicalFeatures:
    """Lexical features of (query, node) pairs, from the node's string with the best
    lexical cosine (`LexicalIndex.pair_features`).

    lexical (np.ndarray): the best cosine of the char n-gram TF-IDF rows (float32).
    recall (np.ndarray): IDF of the shared words over the query's word IDF (float32).
    precision (np.ndarray): IDF of the shared words over the string's word IDF (float32).
    label_only (sp.csr_matrix): (pairs, words), the string's words missing from the query.
    query_only (sp.csr_matrix): (pairs, words), the query's words missing from the string.
    siamese (np.ndarray): the largest cosine between the query and the node's strings as
        the mapper maps them (float32; 0 where the index holds no mapped strings).
    """

    lexical: np.ndarray
    recall: np.ndarray
    precision: np.ndarray
    label_only: sp.csr_matrix
    query_only: sp.csr_matrix
    siamese: np.ndarray


@dataclass(eq=False)  # fields are arrays: no element-wise == to misuse
class PairFeatures(LexicalFeatures):
    """Candidates of a batch of queries and their features (`NodeIndex.pair_table`).

    qi (np.ndarray), ni (np.ndarray): query and node of each pair (int64); the pairs of a
        query are contiguous, queries in order, nodes ascending within a query.
    bounds (np.ndarray): the pairs of query i are bounds[i]:bounds[i + 1] (int64, queries + 1).
    exact (np.ndarray): bool per pair, the node has a string equal to the query (normalised).
    fused (np.ndarray): the fixed fusion score (float32).
    node (np.ndarray): the cosine in node space (float32).
    leaf (np.ndarray): 1.0 for a leaf node (float32).
    memory (np.ndarray): the lexical cosine to the node's training phrases (float32).
    """

    qi: np.ndarray
    ni: np.ndarray
    bounds: np.ndarray
    exact: np.ndarray
    fused: np.ndarray
    node: np.ndarray
    leaf: np.ndarray
    memory: np.ndarray


# features as the reranker reads them: the dataclasses, or a mapping of the same names
Features = Union[LexicalFeatures, Mapping[str, Any]]


def feature(feats: Features, name: str) -> Any:
    """One feature by name, from the dataclasses or a mapping of the same names."""
    return feats[name] if isinstance(feats, Mapping) else getattr(feats, name)


def take_rows(value: Any, rows: np.ndarray) -> Any:
    """Rows of a per-pair array or sparse matrix."""
    if sp.issparse(value):
        return sp.csr_matrix(value)[rows]
    return np.asarray(value)[rows]


def take_pairs(feats: Features, rows: np.ndarray, n_pairs: int, bounds: np.ndarray) -> Features:
    """The features of some of the n_pairs pairs only (rows: their positions, in the new
    order), with the new query bounds. A mapping keeps only its per-pair entries."""
    if isinstance(feats, Mapping):
        out = {k: take_rows(v, rows) for k, v in feats.items() if k != "bounds" and _per_pair(v, n_pairs)}
        out["bounds"] = bounds
        return out
    changes = {f.name: take_rows(getattr(feats, f.name), rows) for f in fields(feats) if f.name != "bounds"}
    if isinstance(feats, PairFeatures):
        changes["bounds"] = bounds
    return replace(feats, **changes)


def _per_pair(value: Any, n_pairs: int) -> bool:
    if sp.issparse(value):
        return value.shape[0] == n_pairs
    return isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == n_pairs
