"""Text helpers of the lexical channel: words, light stemming, character n-grams (`char_wb`),
the normalised key of the exact-match table, and row normalisation."""

from __future__ import annotations

import re
from typing import List, Tuple

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


def normalize_text(text: str) -> str:
    """Lower-cased words joined by one space: the key of the exact-match table."""
    return " ".join(words(text))


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-normalised float32 copy (zero rows stay zero)."""
    x = np.asarray(x, dtype="float32")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype("float32")


def quantize_rows(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Rows as int8 with a float32 scale each (row ~= int8 row * scale): symmetric, the
    row's largest magnitude at 127; a zero row gets scale 0."""
    x = np.asarray(x, dtype="float32")
    top = np.abs(x).max(axis=1) if x.size else np.zeros(len(x), dtype="float32")
    scale = (top / 127.0).astype("float32")
    safe = np.where(scale > 0, scale, 1.0)[:, None]
    return np.clip(np.rint(x / safe), -127, 127).astype("int8"), scale


def words(text: str) -> List[str]:
    """Lower-cased word tokens (unicode \\w+) used by the lexical channel."""
    return _WORD.findall(text.lower())


def stem(word: str) -> str:
    """A light plural stemmer for word matching ("fractures" -> "fracture", "injuries" -> "injury")."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def word_set(text: str) -> List[str]:
    """Sorted distinct stemmed lower-cased words of a string (the word-level channel)."""
    return sorted({stem(w) for w in words(text)})


def word_ngrams(word: str, n: int = 3) -> List[str]:
    """Character n-grams of one word padded with spaces (the word itself if it is short)."""
    w = f" {word} "
    if len(w) <= n:
        return [w]
    return [w[i : i + n] for i in range(len(w) - n + 1)]


def char_ngrams(text: str, n: int = 3) -> List[str]:
    """Character n-grams of each word padded with spaces (scikit-learn's `char_wb`)."""
    out: List[str] = []
    for w in words(text):
        out.extend(word_ngrams(w, n))
    return out
