"""The reranker: a learned score of (query, candidate) pairs, and the choice of its word
penalty by cross-validation or on held-out pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.sparse as sp

from .features import Features, feature, take_pairs
from .serialize import npy_bytes, npy_load, parts_from_disk, parts_to_disk


class Reranker:
    """Learned scoring of (query, candidate) pairs, fitted on development pairs.

    score = w . [lexical, node, recall, precision, leaf, memory, siamese,
                 lexical*node, lexical^2, node^2, memory*node, recall*precision]
            + sum of a weight per word of the candidate's string missing from the query
            + sum of a weight per word of the query missing from the candidate's string

    The word weights (over the lexical index's stemmed word vocabulary) learn a
    taxonomy's conventions, e.g. which qualifiers a coder assumes when the text does not
    say ("unspecified", "initial encounter"). Fitted as a softmax over each query's
    candidates with L2 penalties (`Reranker.fit`).
    """

    FEATURES = ("lexical", "node", "recall", "precision", "leaf", "memory", "siamese")
    # pairwise products: a linear score cannot say "trust the node channel more when the
    # lexical match is weak" without them (they raised test Acc@1 on GEM P1)
    PRODUCTS = (
        ("lexical", "node"),
        ("lexical", "lexical"),
        ("node", "node"),
        ("memory", "node"),
        ("recall", "precision"),
    )
    N_DENSE = len(FEATURES) + len(PRODUCTS)

    def __init__(self, dense: np.ndarray, label_words: np.ndarray, query_words: np.ndarray):
        dense = np.asarray(dense, dtype="float32")
        # saved before "siamese" (the last feature), and maybe before the products: a weight
        # of 0 for what is missing gives the same scores
        n_old = len(self.FEATURES) - 1
        if dense.shape in ((n_old,), (n_old + len(self.PRODUCTS),)):
            products = dense[n_old:] if len(dense) > n_old else np.zeros(len(self.PRODUCTS), dtype="float32")
            dense = np.concatenate([dense[:n_old], np.zeros(1, dtype="float32"), products])
        self.dense = dense
        self.label_words = np.asarray(label_words, dtype="float32")
        self.query_words = np.asarray(query_words, dtype="float32")
        if self.dense.shape != (self.N_DENSE,):
            raise ValueError(f"Reranker: {self.N_DENSE} dense weights expected, got shape {self.dense.shape}.")
        if self.label_words.shape != self.query_words.shape:
            raise ValueError(
                f"Reranker: word weights for {len(self.label_words)} words of the candidates' strings but "
                f"{len(self.query_words)} of the queries; both are over one word vocabulary."
            )

    @staticmethod
    def dense_features(feats: Features) -> np.ndarray:
        cols = [np.asarray(feature(feats, k), dtype="float32") for k in Reranker.FEATURES]
        named = dict(zip(Reranker.FEATURES, cols))
        cols += [named[a] * named[b] for a, b in Reranker.PRODUCTS]
        return np.stack(cols, axis=1)

    @classmethod
    def dense_names(cls) -> List[str]:
        """Names of the dense weights, in order."""
        return list(cls.FEATURES) + [f"{a}*{b}" for a, b in cls.PRODUCTS]

    @classmethod
    def initial_dense(cls, fusion_weight: float) -> np.ndarray:
        """Dense weights that reproduce the fixed fusion (the fit's starting point)."""
        x = np.zeros(cls.N_DENSE)
        x[0], x[1] = 1.0 - fusion_weight, fusion_weight
        return x

    def score(self, feats: Features) -> np.ndarray:
        F = self.dense_features(feats)
        out = F @ self.dense
        if not len(self.label_words):  # no word weights
            return np.asarray(out, dtype="float32")
        lo, qo = feature(feats, "label_only"), feature(feats, "query_only")
        if lo.shape[1] != len(self.label_words):
            raise ValueError(
                f"Reranker.score: the pairs have {lo.shape[1]} word columns but the reranker has "
                f"{len(self.label_words)} word weights: it was fitted on another lexical index; recalibrate."
            )
        return np.asarray(out + lo @ self.label_words + qo @ self.query_words, dtype="float32")

    @classmethod
    def fit(
        cls,
        feats: Features,
        bounds: np.ndarray,
        gold: np.ndarray,
        *,
        l2_dense: float = 1e-3,
        l2_words: float = 0.05,
        init: Optional[np.ndarray] = None,
        max_iter: int = 300,
    ) -> "Reranker":
        """Fit on candidate lists: softmax over each query's candidates, maximising the
        probability of its gold candidates.

        feats (PairFeatures): `NodeIndex.pair_table` features of all pairs, queries contiguous.
        bounds (np.ndarray): pairs of query i are bounds[i]:bounds[i+1].
        gold (np.ndarray): bool per pair, True for a right candidate. Queries without a
            right candidate in their list carry no signal and are skipped.
        l2_dense, l2_words (float): L2 penalties (per query) on the dense and word weights.
        RETURNS (Reranker): the fitted reranker.
        """
        from scipy.optimize import minimize

        nq = len(bounds) - 1
        q_of = np.repeat(np.arange(nq), np.diff(bounds))
        has_gold = np.bincount(q_of, weights=gold.astype("float64"), minlength=nq) > 0
        keep = has_gold[q_of]
        if not has_gold.any():
            raise ValueError("Reranker.fit: no query has a right candidate in its list; nothing to learn from.")
        F = cls.dense_features(feats)[keep].astype("float64")
        LO = sp.csr_matrix(feature(feats, "label_only"))[keep].astype("float64")
        QO = sp.csr_matrix(feature(feats, "query_only"))[keep].astype("float64")
        g = gold[keep]
        _, q_idx = np.unique(q_of[keep], return_inverse=True)
        n_q = int(q_idx.max()) + 1
        d, V = F.shape[1], LO.shape[1]
        x0 = np.zeros(d + 2 * V)
        x0[:d] = init if init is not None else cls.initial_dense(0.5)

        def fun(x: np.ndarray) -> Tuple[float, np.ndarray]:
            w, a, b = x[:d], x[d : d + V], x[d + V :]
            z = F @ w + LO @ a + QO @ b
            zmax = np.full(n_q, -np.inf)
            np.maximum.at(zmax, q_idx, z)
            e = np.exp(z - zmax[q_idx])
            tot = np.bincount(q_idx, weights=e, minlength=n_q)
            pos = np.bincount(q_idx, weights=e * g, minlength=n_q)
            loss = -np.sum(np.log(pos / tot + 1e-300)) / n_q
            # d loss / d z = p - p_gold_normalised
            dz = (e / tot[q_idx] - g * e / pos[q_idx]) / n_q
            grad = np.concatenate([F.T @ dz, LO.T @ dz, QO.T @ dz])
            loss += 0.5 * l2_dense * np.sum(w**2) + 0.5 * l2_words * (np.sum(a**2) + np.sum(b**2))
            grad[:d] += l2_dense * w
            grad[d:] += l2_words * x[d:]
            return float(loss), grad

        res = minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
        x = res.x
        return cls(x[:d], x[d : d + V], x[d + V :])

    L2_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)

    @classmethod
    def select_l2(
        cls,
        feats: Features,
        bounds: np.ndarray,
        gold: np.ndarray,
        *,
        grid: Sequence[float] = L2_GRID,
        init: Optional[np.ndarray] = None,
        seed: int = 0,
    ) -> Tuple[float, Dict[float, float]]:
        """The per-word L2 penalty with the best 2-fold cross-validated acc@1 over the
        queries (a seeded split; ties go to the larger penalty).

        RETURNS (Tuple[float, Dict[float, float]]): the penalty and the CV acc@1 of each.
        """
        nq = len(bounds) - 1
        if nq < 4:
            raise ValueError(f"Reranker.select_l2: {nq} queries are too few to cross-validate; pass l2_words.")
        folds = np.zeros(nq, dtype=bool)
        folds[np.random.default_rng(seed).permutation(nq)[: nq // 2]] = True
        parts = [take_queries(feats, bounds, gold, np.flatnonzero(folds == f)) for f in (True, False)]
        scores: Dict[float, float] = {}
        for l2 in sorted(grid):
            hits = 0.0
            for (ftr, btr, gtr), (fte, bte, gte) in ((parts[0], parts[1]), (parts[1], parts[0])):
                if not gtr.any():
                    continue
                r = cls.fit(ftr, btr, gtr, l2_words=l2, init=init)
                hits += acc_at_1(r.score(fte), feature(fte, "ni"), bte, gte) * (len(bte) - 1)
            scores[float(l2)] = hits / nq
        return _largest_best(scores), scores

    @classmethod
    def select_l2_on(
        cls,
        feats: Features,
        bounds: np.ndarray,
        gold: np.ndarray,
        val_feats: Features,
        val_bounds: np.ndarray,
        val_gold: np.ndarray,
        *,
        grid: Sequence[float] = L2_GRID,
        init: Optional[np.ndarray] = None,
    ) -> Tuple[float, Dict[float, float]]:
        """The per-word L2 penalty whose reranker, fitted on all of (feats, bounds, gold),
        has the best acc@1 over the validation queries (ties go to the larger penalty).

        RETURNS (Tuple[float, Dict[float, float]]): the penalty and the validation acc@1 of each.
        """
        if len(val_bounds) < 2:
            raise ValueError("Reranker.select_l2_on: no validation queries.")
        scores = {
            float(l2): acc_at_1(
                cls.fit(feats, bounds, gold, l2_words=l2, init=init).score(val_feats),
                feature(val_feats, "ni"),
                val_bounds,
                val_gold,
            )
            for l2 in sorted(grid)
        }
        return _largest_best(scores), scores

    # serialization: three .npy parts, a map inside the node index's bytes, a file each on disk
    PARTS = ("dense", "label_words", "query_words")

    def _getters(self) -> Dict[str, Callable[[], bytes]]:
        return {
            "dense": lambda: npy_bytes(self.dense),
            "label_words": lambda: npy_bytes(self.label_words),
            "query_words": lambda: npy_bytes(self.query_words),
        }

    def to_dict(self) -> Dict[str, bytes]:
        """The parts as bytes (`PARTS`)."""
        return {name: get() for name, get in self._getters().items()}

    @classmethod
    def from_dict(cls, msg: Dict[str, bytes]) -> "Reranker":
        return cls(npy_load(msg["dense"]), npy_load(msg["label_words"]), npy_load(msg["query_words"]))

    def to_disk(self, path: Union[str, Path]) -> None:
        """One file per part in the folder `path`."""
        parts_to_disk(Path(path), self._getters())

    @classmethod
    def from_disk(cls, path: Union[str, Path]) -> "Reranker":
        return cls.from_dict(parts_from_disk(Path(path), cls.PARTS))


def take_queries(
    feats: Features, bounds: np.ndarray, gold: np.ndarray, queries: np.ndarray
) -> Tuple[Features, np.ndarray, np.ndarray]:
    """The pair features, bounds and gold of some queries only (pairs stay contiguous)."""
    rows = np.concatenate(
        [np.arange(bounds[i], bounds[i + 1]) for i in queries] or [np.zeros(0, dtype="int64")]
    ).astype("int64")
    sizes = np.asarray([bounds[i + 1] - bounds[i] for i in queries], dtype="int64")
    new_bounds = np.concatenate([[0], np.cumsum(sizes)]).astype("int64")
    return take_pairs(feats, rows, int(bounds[-1]), new_bounds), new_bounds, gold[rows]


def _largest_best(scores: Dict[float, float]) -> float:
    """The largest penalty among those with the best score."""
    best = max(scores.values())
    return max(l2 for l2, v in scores.items() if v == best)


def acc_at_1(score: np.ndarray, ni: np.ndarray, bounds: np.ndarray, gold: np.ndarray) -> float:
    """Share of queries whose best-scored candidate (ties: lower node index) is right."""
    nq = len(bounds) - 1
    hits = 0
    for i in range(nq):
        a, e = bounds[i], bounds[i + 1]
        if e > a:
            hits += bool(gold[a + int(np.lexsort((ni[a:e], -score[a:e]))[0])])
    return hits / max(nq, 1)
