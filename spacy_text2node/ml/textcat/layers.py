"""LexicalDense's trainable layers: the hashed tables (sparse rows in, updated
touched row by touched row) and the output layer (softmax or sigmoid, with an
optional class-prior correction at prediction).

The linear path is such a table rather than thinc's `SparseLinear_v2`, which
does the same product but hashes each (already hashed) bucket again into two
rows, and leaves the update to the optimizer: a dense step over the whole table
every batch, with the dense layers' Adam settings. Compared on the same features
and seed (issue 18), SparseLinear_v2's update step was several times slower, its
prediction slower (the table is multiplied inside the feature kernel, without
building the sparse matrix), and its macro-F1 lower on the Davidson and Bengali
hate-speech sets (the same on BBC News), with Adam or with plain SGD.
"""

import math
from typing import Dict, List, Optional, Tuple, cast

import numpy as np
import scipy.sparse as sp
from thinc.api import Model
from thinc.shims import Shim
from thinc.types import Floats1d, Floats2d

from .util import _param, _set_param

LEXICAL_BAG = "text2node_lexical_bag"
SPARSE_LINEAR = "text2node_sparse_linear"
OUTPUT = "text2node_lexical_output"


def _output_init(model: Model, X=None, Y=None) -> Model:
    if not model.has_param("log_prior"):
        _set_param(model, "log_prior", np.zeros((model.get_dim("nO"),), dtype="float32"))
    return model


def _output_forward(model: Model, Z: np.ndarray, is_train: bool):
    """Softmax (or sigmoid) of the logits; its backprop passes the gradient through,
    as thinc's Softmax does (the textcat loss `scores - truths` is then the
    cross-entropy gradient of the logits)."""
    if model.attrs["exclusive"]:
        tau = model.attrs["prior_correction"]
        if tau and not is_train:
            Z = Z - tau * _param(model, "log_prior")
        Z = Z - Z.max(axis=1, keepdims=True)
        E = np.exp(Z)
        P = E / E.sum(axis=1, keepdims=True)
    else:
        P = 1.0 / (1.0 + np.exp(-Z))
    P = P.astype("float32", copy=False)

    def backprop(dP: Floats2d) -> Floats2d:
        return dP

    return P, backprop


# ---------------------------------------------------------------- sparse tables


class _SparseUpdate(Shim):
    """Updates the touched rows of a hashed table only.

    thinc's optimizer takes whole parameters, so a 262,144-row table would get a
    dense step (and two dense moment updates) every batch. The table layer records
    its row gradient here in backprop; `Model.finish_update` calls the shims of
    every node, and this one steps those rows: plain SGD with its own learning
    rate ("sgd"), or Adam with the optimizer's current learn_rate, b1, b2 and eps
    ("adam", lazy: only touched rows' moments move). Both clip the batch gradient
    to the optimizer's grad_clip and apply its L2 to the touched rows. Plain SGD
    fits these sparse linear features better than Adam, whose per-bucket step
    normalisation gives a bucket seen once as big a step as a frequent one. The
    Adam moments are training state and are not serialized; the tables are
    ordinary params and are.
    """

    def __init__(self, update: str = "sgd", lr: float = 1.0):
        super().__init__(None)
        self.update, self.lr = update, float(lr)
        self.pending: List[Tuple[Model, str, np.ndarray, np.ndarray]] = []
        self.state: Dict[Tuple[int, str], list] = {}

    def add(self, node: Model, name: str, rows: np.ndarray, grad: np.ndarray) -> None:
        self.pending.append((node, name, rows, grad))

    def finish_update(self, optimizer) -> None:
        pending, self.pending = self.pending, []
        for node, name, rows, g in pending:
            W = _param(node, name)
            lr = float(optimizer.learn_rate)
            L2 = float(getattr(optimizer, "L2", 0.0) or 0.0)
            decay = bool(getattr(optimizer, "L2_is_weight_decay", True))
            if L2 and not decay:
                g = g + L2 * W[rows]
            clip = getattr(optimizer, "grad_clip", 0.0)
            if clip:
                norm = float(np.sqrt((g * g).sum()))
                if norm > clip:
                    g = g * (clip / norm)
            b1, b2 = float(getattr(optimizer, "b1", 0.0)), float(getattr(optimizer, "b2", 0.0))
            if self.update == "sgd":
                lr = self.lr
                step = lr * g
            elif b1 > 0 and b2 > 0:
                key = (node.id, name)
                st = self.state.get(key)
                if st is None or st[0].shape != W.shape:
                    st = [np.zeros_like(W), np.zeros_like(W), 0]
                    self.state[key] = st
                m, v = st[0], st[1]
                st[2] += 1
                t = st[2]
                mr = b1 * m[rows] + (1.0 - b1) * g
                vr = b2 * v[rows] + (1.0 - b2) * (g * g)
                m[rows] = mr
                v[rows] = vr
                lr_t = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
                step = lr_t * mr / (np.sqrt(vr) + float(optimizer.eps))
            else:
                step = lr * g
            if L2 and decay:
                step = step + lr * L2 * W[rows]
            W[rows] -= step.astype(W.dtype, copy=False)

    def to_bytes(self):
        return b""

    def from_bytes(self, data):
        return self

    def to_device(self, device_type: str, device_id: int):
        if device_type != "cpu":
            raise ValueError("LexicalDense runs on the CPU only")

    def copy(self):
        return _SparseUpdate(self.update, self.lr)


def _sparse_table(
    name: str, n_buckets: int, nO: Optional[int], *, relu: bool, init_scale: float, update: str = "sgd", lr: float = 1.0
) -> Model:
    """CSR (docs x n_buckets) -> X @ T + b (ReLU'd if relu); T is updated sparsely."""
    return Model(
        name,
        _table_forward,
        init=_table_init,
        dims={"nO": nO, "nI": n_buckets},
        params={"T": None, "b": None},
        shims=[_SparseUpdate(update, lr)],
        attrs={"relu": relu, "init_scale": float(init_scale)},
    )


def _table_init(model: Model, X=None, Y=None) -> Model:
    nI, nO = model.get_dim("nI"), model.get_dim("nO")
    scale = model.attrs["init_scale"]
    if scale:
        T = np.random.default_rng(0).normal(0.0, scale, (nI, nO)).astype("float32")
    else:
        T = np.zeros((nI, nO), dtype="float32")
    _set_param(model, "T", T)
    # a positive bias keeps the ReLUs open at the start
    _set_param(model, "b", np.full((nO,), 0.1 if model.attrs["relu"] else 0.0, dtype="float32"))
    return model


def _table_forward(model: Model, X: sp.csr_matrix, is_train: bool):
    T = _param(model, "T")
    b = _param(model, "b")
    if is_train:
        uniq, compact = np.unique(X.indices, return_inverse=True)
        Xc = sp.csr_matrix((X.data, compact.reshape(-1), X.indptr), shape=(X.shape[0], len(uniq)))
        pre = np.asarray(Xc @ T[uniq]) + b
    else:
        pre = np.asarray(X @ T) + b
    relu = model.attrs["relu"]
    if relu:
        mask = pre > 0
        Y = pre * mask
    else:
        Y = pre
    Y = Y.astype("float32", copy=False)

    def backprop(dY: Floats2d) -> List:
        d = dY * mask if relu else dY
        model.inc_grad("b", cast(Floats1d, d.sum(axis=0).astype("float32")))
        if len(uniq):
            cast(_SparseUpdate, model.shims[0]).add(model, "T", uniq, np.asarray(Xc.T @ d, dtype="float32"))
        return []

    return Y, backprop
