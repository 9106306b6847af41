"""Phrase mappers: thinc models that map a span's token vectors to a point in node space.

Every mapper takes `(docs, spans)` where `spans` is a list of `(doc_index, start, end)`
token offsets, and returns one row per span (`Floats2d`, width `nO` = node-space width).
The token vectors come from the pipeline's static vectors (default, no trainable
parameters) or from a `tok2vec` sub-model such as `spacy.Tok2VecListener.v1` or a
transformer listener (`Model[List[Doc], List[Floats2d]]`).
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, cast

import numpy as np
from spacy.attrs import IDS, ORTH
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import (
    Linear,
    Maxout,
    Model,
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

from .row_ops import RowBlockOps, batched_products, use_row_block_ops
from .static_vectors import (
    SpanOffsets,
    StaticInputCache,
    predict_static,
    spans_with_vectors,
    static_span_rows,
    static_table,
    unknown_token_inputs,
)

MapperInput = Tuple[List[Doc], SpanOffsets]
IDS_TO_NAMES = {v: k for k, v in IDS.items()}

# the row ops and the static-vector helpers are part of this module's API too
__all__ = [
    "MapperInput",
    "PackedBiLSTM",
    "PhraseMapperBiLSTM",
    "PhraseMapperCNN",
    "PhraseMapperMean",
    "RowBlockOps",
    "SpanEmbed",
    "SpanOffsets",
    "StaticInputCache",
    "batched_products",
    "docs_vector_width",
    "mapper_dims",
    "predict_static",
    "set_mapper_dims",
    "spans_with_vectors",
    "static_span_rows",
    "use_row_block_ops",
]


@registry.layers("spacy-text2node.SpanEmbed.v1")
def SpanEmbed(
    tok2vec: Optional[Model[List[Doc], List[Floats2d]]] = None,
    max_tokens: int = 32,
    embed: Optional[Model[List[Doc], List[Floats2d]]] = None,
) -> Model[MapperInput, Ragged]:
    """Gather the token vectors of each span into a Ragged array.

    tok2vec (Optional[Model]): token encoder (e.g. a listener of the pipeline's tok2vec
        or transformer): a token's row may depend on its context.
    max_tokens (int): spans longer than this are truncated for the mapper.
    embed (Optional[Model]): a context-free token embedding instead (e.g.
        `spacy.MultiHashEmbed.v2`): a token's row depends on the token alone, so the
        mapper maps a span the same in any doc and batch, as on static vectors (results
        cached by span text, the taxonomy's strings mapped for the reranker).
    Neither: the static vectors of the vocab (no trainable parameters).
    RETURNS (Model[MapperInput, Ragged]): the layer.
    """
    if tok2vec is not None and embed is not None:
        raise ValueError(
            "A phrase mapper takes a tok2vec (a contextual token encoder) or an embed (a context-free "
            "token embedding), not both: leave one of them out of [components.text2node_linker.model]."
        )
    layer = tok2vec if tok2vec is not None else embed
    return Model(
        "t2n_span_embed",
        _span_embed_forward,
        init=_span_embed_init,
        layers=[layer] if layer is not None else [],
        attrs={
            "max_tokens": max_tokens,
            "context_free": tok2vec is None,
            # spaCy's StaticVectors look tokens up by the table's `attr`, which is not saved
            "reads_table": embed is not None and any(n.name == "static_vectors" for n in embed.walk()),
        },
        dims={"nO": None},
    )


def context_free(model: Model) -> bool:
    """Whether a mapper maps each span from its own tokens alone (static vectors or a
    context-free `embed`), not from a contextual tok2vec."""
    emb = _find(model, "t2n_span_embed")
    return emb is not None and (not emb.layers or bool(emb.attrs.get("context_free", False)))


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


def check_table_lookup(vectors: Any) -> None:
    """An embed with static vectors (spaCy's StaticVectors) looks tokens up by the table's
    `attr`, which spaCy does not save: a table built in code with attr LOWER is looked up
    by exact form once the pipeline is saved and loaded, and the mapper would map otherwise
    after loading than it did when trained. Refuse such a table."""
    attr = getattr(vectors, "attr", ORTH)
    if attr != ORTH and getattr(vectors, "mode", "default") == "default":
        raise ValueError(
            f"The mapper's embed reads the static vectors, and the vocab's table looks tokens up by "
            f"{IDS_TO_NAMES.get(attr, attr)}, which spaCy does not save: after nlp.to_disk and spacy.load it "
            "would look them up by exact form and map spans differently. Key the table by exact forms "
            "(spacy_text2node.vectors.make_vectors_table(..., lowercase=False), then add_case_variants for "
            "capitalised forms), or load the vectors from disk (a loaded table is keyed by exact form)."
        )


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
            table = static_table(docs)
            ok = rows >= 0
            out[ok, :width] = table[rows[ok]]
            out[ok, width] = 0.0
        unknown = np.flatnonzero(rows < 0)
        if len(unknown):
            out[unknown] = unknown_token_inputs(docs, spans, max_tokens, unknown, width)
        ragged = Ragged(model.ops.asarray2f(cast(Floats2d, out)), model.ops.asarray1i(cast(Ints1d, lengths)))

        def backprop_static(dY: Ragged) -> MapperInput:
            return X

        return ragged, backprop_static

    tok2vec = model.layers[0]
    if model.attrs.get("reads_table") and docs:
        check_table_lookup(docs[0].vocab.vectors)
    if model.attrs.get("context_free") and not any(len(doc) for doc in docs):
        # nothing to embed (empty docs): thinc's layers fail on a batch without tokens
        tokvecs = [model.ops.alloc2f(0, model.get_dim("nO")) for _ in docs]
        bp_tok2vec: Any = lambda d_tokvecs: []  # noqa: E731
    else:
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
    embed: Optional[Model[List[Doc], List[Floats2d]]] = None,
) -> Model[MapperInput, Floats2d]:
    """Baseline mapper: mean of the token vectors, then a hidden ReLU layer and a linear output.

    width (int): hidden width.
    nO (Optional[int]): output width (the node-space width; set at initialize).
    max_tokens (int): spans are truncated to this many tokens.
    tok2vec (Optional[Model]): contextual token encoder; None uses the static vectors.
    embed (Optional[Model]): context-free token embedding instead of tok2vec (see SpanEmbed).
    RETURNS (Model[MapperInput, Floats2d]): the mapper.
    """
    model: Model[MapperInput, Floats2d] = chain(
        SpanEmbed(tok2vec, max_tokens, embed),
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
    embed: Optional[Model[List[Doc], List[Floats2d]]] = None,
) -> Model[MapperInput, Floats2d]:
    """Text2Node's CNN mapper: a projection, `depth` residual convolution blocks
    (window of `window` tokens on each side, maxout with 2 pieces), then max and mean pooling over the
    span and a linear layer into node space.

    width (int): hidden width.
    depth (int): number of convolution blocks.
    window (int): tokens on each side of the convolution window.
    nO (Optional[int]): output width (set at initialize).
    max_tokens (int): spans are truncated to this many tokens.
    tok2vec (Optional[Model]): contextual token encoder; None uses the static vectors.
    embed (Optional[Model]): context-free token embedding instead of tok2vec (see SpanEmbed).
    RETURNS (Model[MapperInput, Floats2d]): the mapper.
    """
    conv = [
        residual(chain(expand_window(window_size=window), with_array(Maxout(nO=width, nP=2, normalize=True))))
        for _ in range(depth)
    ]
    model: Model[MapperInput, Floats2d] = chain(
        SpanEmbed(tok2vec, max_tokens, embed),
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
    embed: Optional[Model[List[Doc], List[Floats2d]]] = None,
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
    tok2vec (Optional[Model]): contextual token encoder; None uses the static vectors.
    embed (Optional[Model]): context-free token embedding instead of tok2vec (see SpanEmbed).
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
        SpanEmbed(tok2vec, max_tokens, embed),
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
