"""A mapper's static word vectors of spans: the table rows of a span's tokens, the rows of
tokens the table lacks (the docs' vector hook), whether a span has any vector, and the
mapper's input layer kept per table row (`StaticInputCache`, `predict_static`) or, after a
context-free `embed`, per token form (`TokenInputCache`, `predict_embedded`)."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

import numpy as np
from spacy.attrs import LOWER, NORM, ORTH
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d, Ints1d, Ragged

from .row_ops import RowBlockOps

SpanOffsets = List[Tuple[int, int, int]]


def static_table(docs: Sequence[Doc]) -> np.ndarray:
    vectors = docs[0].vocab.vectors
    data = vectors.data
    if not isinstance(data, np.ndarray):  # pragma: no cover - cupy
        data = data.get()
    return data


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
    ids, lengths = _span_token_ids(docs, spans, max_tokens, (LOWER, ORTH))
    return _find_rows(docs, ids[:, 0], ids[:, 1]), lengths


def _span_token_ids(
    docs: Sequence[Doc], spans: SpanOffsets, max_tokens: int, attrs: Tuple[int, ...]
) -> Tuple[np.ndarray, np.ndarray]:
    """Attributes of each span's tokens, in the rows SpanEmbed gives them: at most
    `max_tokens` per span, an empty span one row of zeros ((n, len(attrs)) uint64), and the
    rows per span."""
    width = len(attrs)
    lengths = np.zeros(len(spans), dtype="int32")
    parts: List[np.ndarray] = []
    arrays: Dict[int, np.ndarray] = {}  # the attributes per token, one array per doc
    empty = np.zeros((1, width), dtype="uint64")
    for j, (i, start, end) in enumerate(spans):
        end = min(end, start + max_tokens)
        part = empty
        if end > start:
            a = arrays.get(i)
            if a is None:
                a = arrays[i] = docs[i].to_array(list(attrs)).reshape((-1, width))
            seg = a[start:end]
            if len(seg):
                part = seg
        parts.append(part)
        lengths[j] = len(part)
    return (np.concatenate(parts) if parts else np.zeros((0, width), dtype="uint64")), lengths


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


def unknown_token_inputs(
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


def _same_weights(weights: Sequence[np.ndarray], kept: Sequence[np.ndarray]) -> bool:
    """Whether a layer's weights are, bit for bit, the copies a cache kept with its rows."""
    return len(weights) == len(kept) and all(_same_bits(w, k) for w, k in zip(weights, kept))


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays hold the same bits (NaN equals NaN, -0.0 differs from 0.0)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    bits = np.dtype(f"u{a.itemsize}") if a.itemsize in (1, 2, 4, 8) else np.dtype("u1")
    return bool(np.array_equal(np.ascontiguousarray(a).view(bits), np.ascontiguousarray(b).view(bits)))


class StaticInputCache:
    """The outputs of a static mapper's input layer (`t2n_input`) for rows of the word
    vectors table, each computed the first time a span uses the row and then kept, so
    that linking does not repeat that product for every occurrence of a word.

    `RowBlockOps` computes each row of a product alone, so a kept row is bitwise the row a
    batch would compute, and mapping through the cache gives what `model.predict` gives
    (tested). The cache is emptied when the caller's key of the table or the layer's
    weights change (at every call the weights are compared, bit for bit, with a copy kept
    with the rows: training updates them in place; comparing costs a small fraction of
    hashing them). A table whose outputs would take more than `MAX_BYTES` (e.g. GloVe's
    400,000 words) is not cached. Threads may share one cache.
    """

    MAX_BYTES = 64 * 2**20

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Any = None
        self._weights: Tuple[np.ndarray, ...] = ()  # copies of the layer's W and b the rows were computed with
        self._out = np.zeros((0, 0), dtype="float32")
        self._done = np.zeros(0, dtype=bool)

    def fits(self, table: np.ndarray, layer: Model) -> bool:
        return table.shape[0] * layer.get_dim("nO") * 4 <= self.MAX_BYTES

    def rows(self, layer: Model, table: np.ndarray, table_key: Any, rows: np.ndarray) -> np.ndarray:
        """The layer's output for the table's rows `rows` (each with the indicator column 0).
        table_key: what identifies the table's contents (e.g. its `vectors_fingerprint`)."""
        key = (id(table), table.shape, table_key)
        weights = (np.asarray(layer.get_param("W")), np.asarray(layer.get_param("b")))
        with self._lock:
            if key != self._key or not _same_weights(weights, self._weights):
                self._weights = tuple(np.array(w, copy=True) for w in weights)
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
    table = static_table(docs)
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
        hidden[unknown] = inp.ops.to_numpy(inp.predict(unknown_token_inputs(docs, spans, max_tokens, unknown, width)))
    X: Any = Ragged(model.ops.asarray2f(cast(Floats2d, hidden)), model.ops.asarray1i(cast(Ints1d, lengths)))
    for layer in layers[2:]:
        X = layer.predict(X)
    return model.ops.to_numpy(X), _spans_with_vectors(docs, spans, max_tokens, rows, lengths)


class TokenInputCache:
    """The input layer's outputs after a context-free `embed` (see SpanEmbed: a token's
    row depends on the token's own form alone), per token form (ORTH and NORM), kept from
    the first chunk of spans that holds the form. A chunk whose forms are all kept is
    mapped without running the embed; any other chunk runs it whole and keeps its rows.

    As with `StaticInputCache`, `RowBlockOps` computes each row alone, so a kept row is
    bitwise the row a batch computes. The cache is emptied when the caller's key of the
    vectors table or the weights change: at each call the embed's and the input layer's
    weights are compared bit for bit with kept copies, except the hash tables
    (`hashembed`), which only an optimizer step changes, and every step also changes the
    embed's mixing layer, which reads every table at every step. At most `MAX_FORMS` forms
    are kept (25 MB at width 128; then the cache starts again). Threads may share one cache.
    """

    MAX_FORMS = 50_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Any = None
        self._weights: Tuple[np.ndarray, ...] = ()
        self._index: Dict[Tuple[int, int], int] = {}
        self._out = np.zeros((0, 0), dtype="float32")  # rows 0 .. len(self._index) in use, doubled when full

    @staticmethod
    def _compared(layers: Sequence[Model]) -> Tuple[np.ndarray, ...]:
        out = []
        for layer in layers:
            for node in layer.walk():
                for name in node.param_names:
                    if node.has_param(name) and not (node.name == "hashembed" and name == "E"):
                        out.append(np.asarray(node.get_param(name)))
        return tuple(out)

    def rows(
        self, layers: Sequence[Model], table_key: Any, forms: np.ndarray, compute: Callable[[], np.ndarray]
    ) -> np.ndarray:
        """The input layer's rows for the token forms `forms` ((ORTH, NORM) per row);
        compute() gives all of them when one is not kept. layers: the span embed and the
        input layer (whose weights key the rows)."""
        weights = self._compared(layers)
        keys = [(int(a), int(b)) for a, b in forms]
        with self._lock:
            same = _same_weights(weights, self._weights)
            if table_key != self._key or not same or len(self._index) + len(keys) > self.MAX_FORMS:
                self._weights = tuple(np.array(w, copy=True) for w in weights)
                self._key = table_key
                self._index = {}
                self._out = np.zeros((0, 0), dtype="float32")
            idx = [self._index.get(k, -1) for k in keys]
            if keys and min(idx) >= 0:
                return self._out[np.asarray(idx)]
        hidden = np.asarray(compute(), dtype="float32")
        with self._lock:
            if self._key == table_key and len(self._weights) == len(weights):
                new = {k: j for j, k in enumerate(keys) if k not in self._index}
                if new:
                    start, end = len(self._index), len(self._index) + len(new)
                    if end > len(self._out):
                        grown = np.zeros((max(end, 2 * len(self._out), 1024), hidden.shape[1]), dtype="float32")
                        if start:
                            grown[:start] = self._out[:start]
                        self._out = grown
                    self._out[start:end] = hidden[np.asarray(list(new.values()))]
                    for n, k in enumerate(new):
                        self._index[k] = start + n
        return hidden


def predict_embedded(
    model: Model, docs: Sequence[Doc], spans: SpanOffsets, cache: TokenInputCache, table_key: Any
) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """`predict_static` for a mapper whose SpanEmbed holds a context-free `embed`: the
    input layer's rows from `cache` by token form. None when the model is not of that
    shape or runs on other ops than `RowBlockOps`: call `model.predict` then."""
    layers = model.layers
    if len(layers) < 3 or layers[0].name != "t2n_span_embed" or not layers[0].layers or not docs:
        return None
    if not layers[0].attrs.get("context_free", False) or layers[1].name != "with_array(t2n_input)":
        return None
    if not all(isinstance(node.ops, RowBlockOps) for node in layers[1].walk()):
        return None
    max_tokens = layers[0].attrs["max_tokens"]
    # one walk over the tokens: (ORTH, NORM) key the kept rows, (LOWER, ORTH) find the table rows
    ids, lengths = _span_token_ids(docs, spans, max_tokens, (LOWER, ORTH, NORM))
    forms = ids[:, 1:]

    def compute() -> np.ndarray:
        return model.ops.to_numpy(layers[1].predict(layers[0].predict((list(docs), spans))).dataXd)

    hidden = cache.rows(layers[:2], table_key, forms, compute)
    X: Any = Ragged(model.ops.asarray2f(cast(Floats2d, hidden)), model.ops.asarray1i(cast(Ints1d, lengths)))
    for layer in layers[2:]:
        X = layer.predict(X)
    rows = _find_rows(docs, ids[:, 0], ids[:, 1])
    return model.ops.to_numpy(X), _spans_with_vectors(docs, spans, max_tokens, rows, lengths)
