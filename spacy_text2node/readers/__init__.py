"""Corpus readers (@readers) for spacy train / evaluate."""
