"""Word vectors for Text2Node: load (GloVe, word2vec, fastText), train (gensim
Word2Vec / FastText, exported as spaCy floret vectors), distill (first-layer and
contextless MiniLM), and the `text2node_vectors` subword component."""

from .component import SubwordVectors, make_text2node_vectors
from .io import FORMATS, VectorsError, glove_6b_50d, read_text_vectors, read_vectors, read_word2vec_binary
from .pipeline import (
    build_vectors_pipeline,
    load_vectors,
    make_distilled_vectors,
    make_glove_vectors,
    make_trained_vectors,
    make_vectors_table,
    phrase_vectors,
)
from .subwords import WordPieceTokenizer, fit_floret_table, floret_vectors
from .train import build_corpus, export_floret, iter_corpus_texts, train_gensim

__all__ = [
    "FORMATS",
    "VectorsError",
    "glove_6b_50d",
    "read_vectors",
    "read_text_vectors",
    "read_word2vec_binary",
    "WordPieceTokenizer",
    "fit_floret_table",
    "floret_vectors",
    "build_corpus",
    "export_floret",
    "iter_corpus_texts",
    "train_gensim",
    "build_vectors_pipeline",
    "load_vectors",
    "make_distilled_vectors",
    "make_glove_vectors",
    "make_trained_vectors",
    "make_vectors_table",
    "phrase_vectors",
    "SubwordVectors",
    "make_text2node_vectors",
]
