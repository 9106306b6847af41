"""Node space, the nearest-neighbour index over it, the lexical character 3-gram channel and their fusion.

* `node_space`: `build_node_space` (node2vec rows, optionally concatenated with a text
  vector of each concept's label and synonyms; cosine = (1 - w) cos_node2vec + w cos_text),
  `principal_components`, `node_text_vectors`.
* `lexical`: `LexicalIndex`, TF-IDF over character 3-grams of words (`char_wb`) of all
  label/synonym strings, the word channel and the exact-match table (`tfidf`: fitting them;
  `kernels`: its numba loops).
* `features`: `PairFeatures`, the features of (query, candidate) pairs.
* `rerank`: `Reranker`, the learned score of (query, candidate) pairs.
* `dictionary`: `PhraseDictionary`, the phrases annotated training data always linked to one concept.
* `ann`: `NodeIndex`, the neighbour index over node space fused with the lexical channel.
* `neighbours`: the neighbour indexes, an HNSW graph (usearch, the default) or annoy's trees.
* `text`: words, stemming, n-grams, normalisation.
"""

from .ann import EXACT_BONUS, PAIR_BLOCK, NodeIndex
from .dictionary import PhraseDictionary
from .features import LexicalFeatures, PairFeatures
from .lexical import MIN_DF_CAP, RETRIEVAL_POOL, LexicalIndex
from .node_space import build_node_space, node_text_vectors, principal_components
from .rerank import Reranker, acc_at_1, take_queries
from .serialize import npy_bytes, npy_load
from .text import char_ngrams, l2_normalize, normalize_text, stem, word_ngrams, word_set, words

__all__ = [
    "EXACT_BONUS",
    "MIN_DF_CAP",
    "PAIR_BLOCK",
    "RETRIEVAL_POOL",
    "LexicalFeatures",
    "LexicalIndex",
    "NodeIndex",
    "PairFeatures",
    "PhraseDictionary",
    "Reranker",
    "acc_at_1",
    "build_node_space",
    "char_ngrams",
    "l2_normalize",
    "node_text_vectors",
    "normalize_text",
    "npy_bytes",
    "npy_load",
    "principal_components",
    "stem",
    "take_queries",
    "word_ngrams",
    "word_set",
    "words",
]
