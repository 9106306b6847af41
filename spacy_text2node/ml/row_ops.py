"""`RowBlockOps`: the CPU ops of every mapper, whose products give a row the same result
alone or in any batch (see the class), and the switch to whole-batch products for training."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np
from thinc.api import Model, NumpyOps


class RowBlockOps(NumpyOps):
    """CPU ops whose forward matrix products run through numpy's BLAS (e.g. OpenBLAS with
    AVX kernels, several times faster here than thinc's default BLIS) one row at a time,
    in one batched `np.matmul` call.

    A row's result must not depend on the other rows of the batch, or a bulk run's scores
    would depend on its batch size and chunking. OpenBLAS does not promise that: its
    kernels round differently by matrix size, and on some processors by a row's position
    in the matrix (zero-padding every product to the same 64-row shape was not enough on
    an AMD EPYC). A batched product of (1 x k) rows computes each row alone, with the same
    shape every time. Products that sum over the batch (weight gradients, `trans1`) need
    no such care and run in one call, and so do all products of a training step
    (`batched_products`): a step's outputs are not a result anyone reads back.
    """

    # per thread: True inside `batched_products`
    _state = threading.local()

    def __init__(self) -> None:
        super().__init__(use_blis=False)

    def gemm(self, x, y, *, out=None, trans1: bool = False, trans2: bool = False):
        if (
            trans1
            or getattr(self._state, "batched", False)
            or x.ndim != 2
            or y.ndim != 2
            or x.dtype != np.float32
            or y.dtype != np.float32
        ):
            return super().gemm(x, y, out=out, trans1=trans1, trans2=trans2)
        b = y.T if trans2 else y
        res = np.matmul(x[:, None, :], b).reshape(x.shape[0], b.shape[1])
        if out is not None:
            out[...] = res
            return out
        return res


@contextmanager
def batched_products() -> Iterator[None]:
    """Inside this block, in this thread, `RowBlockOps` runs every product of a batch in one
    BLAS call: for a training step (forward and backward), where no output needs to be
    independent of the batch, and a row at a time costs about half the step. Other
    threads (e.g. the linker's search threads) keep computing a row at a time."""
    state = RowBlockOps._state
    before = getattr(state, "batched", False)
    state.batched = True
    try:
        yield
    finally:
        state.batched = before


def use_row_block_ops(model: Model) -> Model:
    """Give every CPU (NumpyOps) layer of a model the `RowBlockOps`; layers on another
    device (e.g. CupyOps) are left as they are."""
    ops = None
    for node in model.walk():
        if type(node.ops) is NumpyOps:
            ops = ops or RowBlockOps()
            node.ops = ops
    return model
