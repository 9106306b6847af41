"""Text classification architectures for spaCy's `textcat` and `textcat_multilabel`.

Two registered thinc models (`architectures`):

* `spacy-text2node.StaticVectorsMLR.v1`: pooled static word vectors (mean or
  SIF-weighted) into a linear softmax, the multinomial logistic regression ("MLR")
  of the Bengali and Marathi hate-speech papers.
* `spacy-text2node.LexicalDense.v1`: hashed word and character n-gram TF-IDF
  features (`features`, `kernels`) into a small ReLU network, in the manner of
  Luxical. The first layer is an embedding bag: a sparse (docs x buckets) TF-IDF
  matrix times a dense table (`layers`).

Corpus statistics (the IDF vector of LexicalDense, the word frequencies of SIF
pooling) and the optional distillation from a sentence-transformer teacher
(`distill`) are fitted on the whole training corpus by the
`[initialize.after_init]` callback `spacy-text2node.TextcatInit.v1` (`fitting`).
Without that callback, LexicalDense keeps a running document-frequency count
during training (like batch-norm's running statistics) and SIF pooling falls back
to a Zipf estimate from the vector rows (GloVe, word2vec and FastText tables are
sorted by frequency).

Importing this package registers the architectures and the callback.
"""

from .architectures import LEXICAL_DENSE, POOLED_VECTORS, build_lexical_dense, build_static_vectors_mlr
from .distill import distill, teacher_embeddings
from .features import (
    _BIGRAM_SEED,
    _CHAR_SEED,
    _WORD_SEED,
    LEXICAL_FEATURES,
    _doc_freq,
    _hash_keys,
    _tfidf_matrix,
    _word_table,
    _WordTable,
    lexical_features,
)
from .fitting import fit_idf, fit_sif, make_textcat_init
from .layers import LEXICAL_BAG, OUTPUT, SPARSE_LINEAR, _SparseUpdate
from .util import _find_node

__all__ = [
    "LEXICAL_BAG",
    "LEXICAL_DENSE",
    "LEXICAL_FEATURES",
    "OUTPUT",
    "POOLED_VECTORS",
    "SPARSE_LINEAR",
    "_BIGRAM_SEED",
    "_CHAR_SEED",
    "_SparseUpdate",
    "_WORD_SEED",
    "_WordTable",
    "_doc_freq",
    "_find_node",
    "_hash_keys",
    "_tfidf_matrix",
    "_word_table",
    "build_lexical_dense",
    "build_static_vectors_mlr",
    "distill",
    "fit_idf",
    "fit_sif",
    "lexical_features",
    "make_textcat_init",
    "teacher_embeddings",
]
