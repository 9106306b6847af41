"""Node embeddings: node2vec walks and skip-gram over a Taxonomy; node-vector files."""

from .io import NodeVectors, make_node_vectors_loader
from .node2vec import Node2VecConfig, embed_nodes, make_node2vec, node2vec_csr
from .quality import parent_mrr, parent_ranks, parent_report
from .walks import random_walks

__all__ = [
    "NodeVectors",
    "Node2VecConfig",
    "embed_nodes",
    "make_node2vec",
    "make_node_vectors_loader",
    "node2vec_csr",
    "parent_mrr",
    "parent_ranks",
    "parent_report",
    "random_walks",
]
