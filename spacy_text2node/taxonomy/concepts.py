"""The small records a Taxonomy hands out (Concept, Synonym, Problem) and its error type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


class TaxonomyError(ValueError):
    """A problem in taxonomy input, naming the file, the line and what to do."""


@dataclass(frozen=True)
class Synonym:
    """A synonym of a concept.

    text (str): the synonym's text.
    type (str): the kind of synonym where the source says ("inclusion", "EXACT",
        "RELATED", "fsn", "synonym"...), else "synonym".
    """

    text: str
    type: str = "synonym"


@dataclass(frozen=True)
class Concept:
    """A read-only view of one node of a Taxonomy."""

    id: str
    label: str
    synonyms: Tuple[Synonym, ...]
    definition: Optional[str]
    parents: Tuple[str, ...]
    children: Tuple[str, ...]
    xrefs: Tuple[str, ...] = ()


@dataclass
class Problem:
    """One bad row or edge found while building a taxonomy."""

    source: str
    line: Optional[int]
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}, line {self.line}"
        return f"{where}: {self.message}"
