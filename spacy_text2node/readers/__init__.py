"""Corpus readers (@readers) for spacy train / evaluate."""
from . import linking  # noqa: F401
