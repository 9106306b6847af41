"""Phrase mappers: thinc models that map a span's token vectors to a point in node space.

Every mapper takes `(docs, spans)` where `spans` is a list of `(doc_index, start, end)`
token offsets, and returns one row per span (`Floats2d`, width `nO` = node-space width).
The token vectors come from the pipeline's static vectors (default, no trainable
parameters) or from a `tok2vec` sub-model such as `spacy.Tok2VecListener.v1` or a
transformer listener (`Model[List[Doc], List[Floats2d]]`).
"""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, cast

import numpy as np
from spacy.attrs import LOWER, ORTH
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import (
    Linear,
    Maxout,
    Model,
    NumpyOps,
    Relu,
    chain,
    concatenate,
    expand_window,
    reduce_max,
    reduce_mean,
    residual,
    with_array,
    with_padded,
)
from thinc.types import Floats2d, Floats3d, Ints1d, Ragged

SpanOffsets = List[Tuple[int, int, int]]
MapperInput = Tuple[List[Doc], SpanOffsets]


def static_span_rows(docs: Sequence[Doc], spans: SpanOffsets, max_tokens: int) -> Tuple[np.ndarray, np.ndarray]:
    """Rows of the static vectors table for the tokens of each span.

    Lookup is by lower-case form first, then by the exact form. Unknown tokens get row -1
    (a zero vector). Each span keeps at most `max_tokens` tokens and at least one row (an
    empty span gets a single zero row, so pooling never divides by zero).

    docs (Sequence[Doc]): the documents.
    spans (SpanOffsets): `(doc_index, start, end)` per span.
    max_tokens (int): truncation length.
    RETURNS (Tuple[np.ndarray, np.ndarray]): the rows (int64, -1 = unknown) and the
        number of rows per span (int32).
    """
    lengths = np.zeros(len(spans), dtype="int32")
    parts: List[np.ndarray] = []
    arrays: Dict[int, np.ndarray] = {}  # (LOWER, ORTH) per token, one array per doc
    empty = np.zeros((1, 2), dtype="uint64")  # an empty span: one unknown row
    for j, (i, start, end) in enumerate(spans):
        end = min(end, start + max_tokens)
        part = empty
        if end > start:
            a = arrays.get(i)
            if a is None:
                a = arrays[i] = docs[i].to_array([LOWER, ORTH]).reshape((-1, 2))
            seg = a[start:end]
            if len(seg):
                part = seg
        parts.append(part)
        lengths[j] = len(part)
    ids = np.concatenate(parts) if parts else np.zeros((0, 2), dtype="uint64")
    return _find_rows(docs, ids[:, 0], ids[:, 1]), lengths


def _hooked_tokens(docs: Sequence[Doc], spans: SpanOffsets, max_tokens: int) -> List[Any]:
    """Token per row (None for padding) when a doc has a token vector hook (e.g. the
    `text2node_vectors` subword component), else an empty list."""
    # only the spans' own docs: a chunk of 64 spans of a 1,024-doc batch asked all 1,024
    # (twice per chunk; 3% of linking P1's phrases)
    if not any("vector" in docs[i].user_token_hooks for i in {i for i, _, _ in spans}):
        return []
    out: List[Any] = []
    for i, start, end in spans:
        end = min(end, start + max_tokens)
        toks = list(docs[i][start:end]) if end > start else []
        out.extend(toks if toks else [None])
    return out


def _unknown_token_inputs(
    docs: Sequence[Doc], spans: SpanOffsets, max_tokens: int, positions: np.ndarray, width: int
) -> np.ndarray:
    """SpanEmbed's input rows (vector, then the indicator column) of the tokens at positions,
    none of which has a row in the static table: the vector of the docs' token vector hook
    (e.g. the `text2node_vectors` subwords) where it gives a non-zero one, else zeros with
    the indicator 1."""
    out = np.zeros((len(positions), width + 1), dtype="float32")
    out[:, width] = 1.0
    hooked = _hooked_tokens(docs, spans, max_tokens)
    for j, pos in enumerate(positions if hooked else ()):
        tok = hooked[pos]
        if tok is not None:
            v = np.asarray(tok.vector, dtype="float32")
            if v.shape == (width,) and v.any():
                out[j, :width] = v
                out[j, width] = 0.0
    return out


def _find_rows(docs: Sequence[Doc], lowers: np.ndarray, orths: np.ndarray) -> np.ndarray:
    if not docs:
        return np.zeros((0,), dtype="int64")
    vectors = docs[0].vocab.vectors
    if len(lowers) == 0 or vectors.shape[0] == 0 or vectors.shape[1] == 0:
        return np.full((len(lowers),), -1, dtype="int64")
    rows = np.asarray(vectors.find(keys=np.ascontiguousarray(lowers, dtype="uint64")), dtype="int64")
    miss = rows < 0
    if miss.any():
        rows2 = np.asarray(vectors.find(keys=np.ascontiguousarray(orths[miss], dtype="uint64")), dtype="int64")
        rows[miss] = rows2
    return rows


def spans_with_vectors(docs: Sequence[Doc], spans: SpanOffsets, max_tokens: int) -> np.ndarray:
    """Whether each span has at least one token with a word vector (static table or a
    token vector hook such as the `text2node_vectors` subword component's)."""
    rows, lengths = static_span_rows(docs, spans, max_tokens)
    return _spans_with_vectors(docs, spans, max_tokens, rows, lengths)


def _spans_with_vectors(
    docs: Sequence[Doc], spans: SpanOffsets, max_tokens: int, rows: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    known = rows >= 0
    if not known.all():
        hooked = _hooked_tokens(docs, spans, max_tokens)
        if hooked:
            for pos in np.flatnonzero(~known):
                tok = hooked[pos]
                if tok is not None and tok.has_vector:
                    known[pos] = True
    if len(lengths) == 0:
        return np.zeros(0, dtype=bool)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.logical_or.reduceat(known, starts) if known.size else np.zeros(len(lengths), dtype=bool)


def _digest(array: Any) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=16).digest()


class StaticInputCache:
    """The outputs of a static mapper's input layer (`t2n_input`) for rows of the word
    vectors table, each computed the first time a span uses the row and then kept, so
    that linking does not repeat that product for every occurrence of a word.

    `RowBlockOps` computes each row of a product alone, so a kept row is bitwise the row a
    batch would compute, and mapping through the cache gives what `model.predict` gives
    (tested). The cache is emptied when the caller's key of the table or the layer's
    weights change (a digest of the weights is checked per call: training updates them in
    place). A table whose outputs would take more than `MAX_BYTES` (e.g. GloVe's 400,000
    words) is not cached. Threads may share one cache.
    """

    MAX_BYTES = 64 * 2**20

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Any = None
        self._out = np.zeros((0, 0), dtype="float32")
        self._done = np.zeros(0, dtype=bool)

    def fits(self, table: np.ndarray, layer: Model) -> bool:
        return table.shape[0] * layer.get_dim("nO") * 4 <= self.MAX_BYTES

    def rows(self, layer: Model, table: np.ndarray, table_key: Any, rows: np.ndarray) -> np.ndarray:
        """The layer's output for the table's rows `rows` (each with the indicator column 0).
        table_key: what identifies the table's contents (e.g. its `vectors_fingerprint`)."""
        key = (id(table), table.shape, table_key, _digest(layer.get_param("W")), _digest(layer.get_param("b")))
        with self._lock:
            if key != self._key:
                self._out = np.zeros((table.shape[0], layer.get_dim("nO")), dtype="float32")
                self._done = np.zeros(table.shape[0], dtype=bool)
                self._key = key
            todo = np.unique(rows[~self._done[rows]])
            if len(todo):
                X = np.zeros((len(todo), table.shape[1] + 1), dtype="float32")
                X[:, :-1] = table[todo]
                self._out[todo] = layer.ops.to_numpy(layer.predict(X))
                self._done[todo] = True
            return self._out[rows]


def predict_static(
    model: Model, docs: Sequence[Doc], spans: SpanOffsets, cache: StaticInputCache, table_key: Any
) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """`model.predict((docs, spans))` and `spans_with_vectors` of a mapper on static
    vectors whose first layers are SpanEmbed and the input layer (the CNN and BiLSTM
    mappers), with the input layer's rows of known words from `cache`; one lookup of the
    spans' table rows serves both (table_key: see `StaticInputCache.rows`). None when the
    model is not of that shape, runs on other ops than `RowBlockOps` (whose rows alone make a
    kept row exact) or the table is too large to cache: call `model.predict` then."""
    layers = model.layers
    if len(layers) < 3 or layers[0].name != "t2n_span_embed" or layers[0].layers:
        return None
    if layers[1].name != "with_array(t2n_input)" or not docs:
        return None
    inp = layers[1].layers[0]
    if not isinstance(inp.ops, RowBlockOps):
        return None
    table = _static_table(docs)
    width = layers[0].get_dim("nO") - 1
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] != width or not cache.fits(table, inp):
        return None
    max_tokens = layers[0].attrs["max_tokens"]
    rows, lengths = static_span_rows(docs, spans, max_tokens)
    hidden = np.zeros((len(rows), inp.get_dim("nO")), dtype="float32")
    known = rows >= 0
    if known.any():
        hidden[known] = cache.rows(inp, table, table_key, rows[known])
    unknown = np.flatnonzero(~known)
    if len(unknown):
        hidden[unknown] = inp.ops.to_numpy(inp.predict(_unknown_token_inputs(docs, spans, max_tokens, unknown, width)))
    X: Any = Ragged(model.ops.asarray2f(cast(Floats2d, hidden)), model.ops.asarray1i(cast(Ints1d, lengths)))
    for layer in layers[2:]:
        X = layer.predict(X)
    return model.ops.to_numpy(X), _spans_with_vectors(docs, spans, max_tokens, rows, lengths)


@registry.layers("spacy-text2node.SpanEmbed.v1")
def SpanEmbed(
    tok2vec: Optional[Model[List[Doc], List[Floats2d]]] = None, max_tokens: int = 32
) -> Model[MapperInput, Ragged]:
    """Gather the token vectors of each span into a Ragged array.

    tok2vec (Optional[Model]): token encoder; None uses the static vectors of the vocab
        (no trainable parameters).
    max_tokens (int): spans longer than this are truncated for the mapper.
    RETURNS (Model[MapperInput, Ragged]): the layer.
    """
    layers = [tok2vec] if tok2vec is not None else []
    return Model(
        "t2n_span_embed",
        _span_embed_forward,
        init=_span_embed_init,
        layers=layers,
        attrs={"max_tokens": max_tokens},
        dims={"nO": None},
    )


def _static_table(docs: Sequence[Doc]) -> np.ndarray:
    vectors = docs[0].vocab.vectors
    data = vectors.data
    if not isinstance(data, np.ndarray):  # pragma: no cover - cupy
        data = data.get()
    return data


def _span_embed_init(model: Model, X: Optional[MapperInput] = None, Y: Any = None) -> None:
    if model.layers:
        model.layers[0].initialize(X=X[0] if X is not None else None)
        if model.maybe_get_dim("nO") is None and model.layers[0].maybe_get_dim("nO") is not None:
            model.set_dim("nO", model.layers[0].get_dim("nO"))
    elif X is not None and X[0]:
        width = docs_vector_width(X[0]) + 1  # + the "no vector" indicator column
        if model.maybe_get_dim("nO") is not None and model.get_dim("nO") != width:
            raise ValueError(
                f"The mapper expects {model.get_dim('nO') - 1}-d word vectors but the pipeline's vectors "
                f"are {width - 1}-d. Use the word vectors the model was trained with."
            )
        model.set_dim("nO", width)


def docs_vector_width(docs: Sequence[Doc]) -> int:
    """Width of the static vectors table of the docs' vocab (raises if empty)."""
    width = int(docs[0].vocab.vectors.shape[1]) if docs else 0
    if width == 0:
        raise ValueError(
            "The pipeline has no static word vectors, so the phrase mapper has nothing to read. "
            "Load word vectors into nlp.vocab (e.g. GloVe) or give the mapper a tok2vec layer."
        )
    return width


def _span_embed_forward(model: Model, X: MapperInput, is_train: bool):
    docs, spans = X
    max_tokens = model.attrs["max_tokens"]
    if not model.layers:
        # static vectors plus an indicator column that is 1 for tokens without a vector
        # (so they never reach a normalisation layer as an all-zero row)
        width = model.get_dim("nO") - 1
        rows, lengths = static_span_rows(docs, spans, max_tokens)
        out = np.zeros((rows.shape[0], width + 1), dtype="float32")
        out[:, width] = 1.0
        if rows.size and docs and docs[0].vocab.vectors.shape[0]:
            table = _static_table(docs)
            ok = rows >= 0
            out[ok, :width] = table[rows[ok]]
            out[ok, width] = 0.0
        unknown = np.flatnonzero(rows < 0)
        if len(unknown):
            out[unknown] = _unknown_token_inputs(docs, spans, max_tokens, unknown, width)
        ragged = Ragged(model.ops.asarray2f(cast(Floats2d, out)), model.ops.asarray1i(cast(Ints1d, lengths)))

        def backprop_static(dY: Ragged) -> MapperInput:
            return X

        return ragged, backprop_static

    tok2vec = model.layers[0]
    tokvecs, bp_tok2vec = tok2vec(docs, is_train)
    width = tokvecs[0].shape[1] if tokvecs else model.get_dim("nO")
    pieces = []
    lengths = np.zeros(len(spans), dtype="int32")
    index: List[Tuple[int, int, int]] = []
    for j, (i, start, end) in enumerate(spans):
        end = min(end, start + max_tokens)
        if end > start:
            pieces.append(tokvecs[i][start:end])
            index.append((i, start, end))
            lengths[j] = end - start
        else:
            pieces.append(model.ops.alloc2f(1, width))
            index.append((i, -1, -1))
            lengths[j] = 1
    data = model.ops.xp.concatenate(pieces, axis=0) if pieces else model.ops.alloc2f(0, width)
    ragged = Ragged(data, model.ops.asarray1i(cast(Ints1d, lengths)))

    def backprop(dY: Ragged) -> MapperInput:
        d_tokvecs = [model.ops.alloc2f(*t.shape) for t in tokvecs]
        offset = 0
        for (i, start, end), n in zip(index, lengths):
            if start >= 0:
                d_tokvecs[i][start:end] += cast(Floats2d, dY.dataXd[offset : offset + n])
            offset += n
        bp_tok2vec(d_tokvecs)
        return X

    return ragged, backprop


def _output(nO: Optional[int]) -> Model[Floats2d, Floats2d]:
    out = Linear(nO=nO)
    out.name = "t2n_output"
    return out


def _input(width: int) -> Model:
    inp = Maxout(nO=width, nP=2, normalize=False)
    inp.name = "t2n_input"
    return inp


@registry.architectures("spacy-text2node.PhraseMapperMean.v1")
def PhraseMapperMean(
    width: int = 128,
    nO: Optional[int] = None,
    max_tokens: int = 32,
    tok2vec: Optional[Model[List[Doc], List[Floats2d]]] = None,
) -> Model[MapperInput, Floats2d]:
    """Baseline mapper: mean of the token vectors, then a hidden ReLU layer and a linear output.

    width (int): hidden width.
    nO (Optional[int]): output width (the node-space width; set at initialize).
    max_tokens (int): spans are truncated to this many tokens.
    tok2vec (Optional[Model]): token encoder; None uses the static vectors.
    RETURNS (Model[MapperInput, Floats2d]): the mapper.
    """
    model: Model[MapperInput, Floats2d] = chain(
        SpanEmbed(tok2vec, max_tokens),
        reduce_mean(),
        _input(width),
        Relu(nO=width, normalize=True),
        _output(nO),
    )
    return _finish(model, "mean")


@registry.architectures("spacy-text2node.PhraseMapperCNN.v1")
def PhraseMapperCNN(
    width: int = 128,
    depth: int = 2,
    window: int = 1,
    nO: Optional[int] = None,
    max_tokens: int = 32,
    tok2vec: Optional[Model[List[Doc], List[Floats2d]]] = None,
) -> Model[MapperInput, Floats2d]:
    """Text2Node's CNN mapper: a projection, `depth` residual convolution blocks
    (window of `window` tokens on each side, maxout with 2 pieces), then max and mean pooling over the
    span and a linear layer into node space.

    width (int): hidden width.
    depth (int): number of convolution blocks.
    window (int): tokens on each side of the convolution window.
    nO (Optional[int]): output width (set at initialize).
    max_tokens (int): spans are truncated to this many tokens.
    tok2vec (Optional[Model]): token encoder; None uses the static vectors.
    RETURNS (Model[MapperInput, Floats2d]): the mapper.
    """
    conv = [
        residual(chain(expand_window(window_size=window), with_array(Maxout(nO=width, nP=2, normalize=True))))
        for _ in range(depth)
    ]
    model: Model[MapperInput, Floats2d] = chain(
        SpanEmbed(tok2vec, max_tokens),
        with_array(_input(width)),
        *conv,
        concatenate(reduce_max(), reduce_mean()),
        Maxout(nO=width, nP=2, normalize=True),
        _output(nO),
    )
    return _finish(model, "cnn")


@registry.architectures("spacy-text2node.PhraseMapperBiLSTM.v1")
def PhraseMapperBiLSTM(
    width: int = 128,
    depth: int = 1,
    nO: Optional[int] = None,
    max_tokens: int = 32,
    dropout: float = 0.0,
    torch_threads: int = 1,
    tok2vec: Optional[Model[List[Doc], List[Floats2d]]] = None,
) -> Model[MapperInput, Floats2d]:
    """Text2Node's Bi-LSTM mapper (PyTorch LSTM through thinc), max and mean pooled,
    then a linear layer into node space.

    width (int): total width of both directions (each direction width // 2).
    depth (int): LSTM layers.
    nO (Optional[int]): output width (set at initialize).
    max_tokens (int): spans are truncated to this many tokens.
    dropout (float): dropout between LSTM layers.
    torch_threads (int): if > 0, call `torch.set_num_threads(torch_threads)` (process-wide):
        on a busy 2-core machine PyTorch's default thread pool made small LSTM batches
        ~100x slower than one thread. 0 leaves PyTorch's setting alone.
    tok2vec (Optional[Model]): token encoder; None uses the static vectors.
    RETURNS (Model[MapperInput, Floats2d]): the mapper.
    """
    if width % 2:
        raise ValueError(f"PhraseMapperBiLSTM width must be even (got {width}).")
    try:
        import torch
    except ImportError as e:
        from .._runtime import TORCH_HINT, torch_left_out

        if torch_left_out():
            raise ImportError(f"spacy-text2node.PhraseMapperBiLSTM.v1 needs PyTorch. {TORCH_HINT}") from e
        raise ImportError(
            "spacy-text2node.PhraseMapperBiLSTM.v1 needs PyTorch, which is optional: install the CPU build first "
            "(pip install torch==2.13.0, or pip install 'spacy-text2node[torch]'), or use PhraseMapperCNN.v1 / "
            "PhraseMapperMean.v1, which run on thinc alone."
        ) from e
    if torch_threads > 0:
        torch.set_num_threads(torch_threads)
    model: Model[MapperInput, Floats2d] = chain(
        SpanEmbed(tok2vec, max_tokens),
        with_array(_input(width)),
        with_padded(PackedBiLSTM(nO=width, nI=width, depth=depth, dropout=dropout)),
        concatenate(reduce_max(), reduce_mean()),
        Maxout(nO=width, nP=2, normalize=True),
        _output(nO),
    )
    return _finish(model, "bilstm")


_PACKED_LSTM_CLASS: Any = None


def _packed_lstm_class() -> Any:
    """A torch module: a bidirectional LSTM over packed sequences (built on first use, so
    importing this module does not import torch)."""
    global _PACKED_LSTM_CLASS
    if _PACKED_LSTM_CLASS is None:
        import torch

        class _PackedBiLSTMModule(torch.nn.Module):
            def __init__(self, nI: int, nH: int, depth: int, dropout: float):
                super().__init__()
                self.lstm = torch.nn.LSTM(nI, nH, depth, bidirectional=True, dropout=dropout)

            def forward(self, X: Any, lengths: Any) -> Tuple[Any, None]:
                rnn = torch.nn.utils.rnn
                packed = rnn.pack_padded_sequence(X, lengths, enforce_sorted=False)
                out, _ = self.lstm(packed)
                Y, _ = rnn.pad_packed_sequence(out, total_length=X.shape[0])
                return Y, None

        _PACKED_LSTM_CLASS = _PackedBiLSTMModule
    return _PACKED_LSTM_CLASS


def _convert_packed_inputs(model: Model, Xp: Any, is_train: bool) -> Tuple[Any, Any]:
    import torch
    from thinc.api import ArgsKwargs, PyTorchShim, torch2xp, xp2torch
    from thinc.types import Padded

    shim = cast(PyTorchShim, model.shims[0])

    def backward(d_inputs: Any) -> Any:
        return Padded(cast(Floats3d, torch2xp(d_inputs.args[0])), Xp.size_at_t, Xp.lengths, Xp.indices)

    lengths = torch.as_tensor(np.asarray(Xp.lengths, dtype="int64"))  # packing needs them on the CPU
    X = xp2torch(Xp.data, requires_grad=True, device=shim.device)
    return ArgsKwargs(args=(X, lengths), kwargs={}), backward


def PackedBiLSTM(nO: int, nI: int, depth: int = 1, dropout: float = 0.0) -> Model:
    """A bidirectional PyTorch LSTM (Padded -> Padded) that packs the sequences, so a
    span's output does not depend on how long the other spans of its batch are (thinc's
    PyTorchLSTM runs the backward direction over the padding too)."""
    from thinc.api import PyTorchWrapper
    from thinc.layers.pytorchwrapper import convert_rnn_outputs

    if nO % 2:
        raise ValueError(f"PackedBiLSTM nO must be even (got {nO}).")
    module = _packed_lstm_class()(nI, nO // 2, depth, dropout)
    model = PyTorchWrapper(module, convert_inputs=_convert_packed_inputs, convert_outputs=convert_rnn_outputs)
    model.set_dim("nO", nO)
    model.set_dim("nI", nI)
    return model


def _finish(model: Model, kind: str) -> Model:
    model.attrs["t2n_kind"] = kind
    use_row_block_ops(model)
    return model


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


def _find(model: Model, name: str) -> Optional[Model]:
    for node in model.walk():
        if node.name == name:
            return node
    return None


def mapper_dims(model: Model) -> Tuple[Optional[int], Optional[int]]:
    """The (input width, output width) of a mapper, None where unset."""
    emb = _find(model, "t2n_span_embed")
    out = _find(model, "t2n_output")
    nI = emb.maybe_get_dim("nO") if emb is not None else None
    nO = out.maybe_get_dim("nO") if out is not None else None
    return nI, nO


def set_mapper_dims(model: Model, nI: Optional[int] = None, nO: Optional[int] = None) -> None:
    """Set the input (word-vector) and output (node-space) widths of a mapper before it is
    initialized or deserialized.

    model (Model): a mapper built by one of the architectures above.
    nI (Optional[int]): width of the span embedding (static vectors: vector width + 1).
    nO (Optional[int]): node-space width.
    """
    emb = _find(model, "t2n_span_embed")
    out = _find(model, "t2n_output")
    if emb is None or out is None:
        raise ValueError(
            "The text2node_linker model is not a spacy-text2node PhraseMapper "
            "(no t2n_span_embed / t2n_output layer). Use PhraseMapperCNN.v1, PhraseMapperBiLSTM.v1 "
            "or PhraseMapperMean.v1."
        )
    if nI is not None:
        if "nO" in emb.dim_names and emb.maybe_get_dim("nO") is None:
            emb.set_dim("nO", nI)
        # the first dense layer reads the token vectors (pooled for the mean model)
        inp = _find(model, "t2n_input")
        if inp is not None and "nI" in inp.dim_names and inp.maybe_get_dim("nI") is None:
            inp.set_dim("nI", nI)
    if nO is not None and "nO" in out.dim_names and out.maybe_get_dim("nO") is None:
        out.set_dim("nO", nO)
