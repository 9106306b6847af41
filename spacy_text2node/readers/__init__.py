"""Corpus readers (@readers) for spacy train / evaluate."""

from . import classification, linking  # noqa: F401
