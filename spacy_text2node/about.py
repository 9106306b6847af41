__title__ = "spacy-text2node"
__version__ = "0.1.0"
