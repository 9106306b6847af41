"""The phrase dictionary: phrases that annotated training data always linked to one concept.

A query whose text, normalised (`normalize_text`), is such a phrase is linked to that
concept first (`LinkerSearch.rank`). A phrase annotated with different concepts, or with
several at once (a composite mention), is left out: the model decides those.

Its score is a mixture: with the probability `probability(n)` = (n + 1) / (n + 2) (Laplace's
rule of succession, after n annotations that all agree) the dictionary's concept, otherwise
the ranking the model gave. So the dictionary's concept always comes first, a phrase seen
once gets 2/3, and the model's other candidates keep their order.
"""

from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import srsly

from ..taxonomy import Taxonomy
from .text import normalize_text

FILE = "dictionary.json"


def probability(count: int) -> float:
    """The weight of a dictionary concept annotated `count` times, always the same."""
    return (count + 1.0) / (count + 2.0)


class PhraseDictionary:
    """Normalised phrase -> (node index, annotations), for phrases whose annotations agree.

    entries (Dict[str, Tuple[int, int]]): the phrases.
    """

    def __init__(self, entries: Mapping[str, Tuple[int, int]]):
        self.entries: Dict[str, Tuple[int, int]] = {k: (int(n), int(c)) for k, (n, c) in entries.items()}

    @classmethod
    def from_pairs(
        cls, pairs: Iterable[Mapping[str, Any]], taxonomy: Taxonomy, *, where: str = "dictionary pairs"
    ) -> Tuple["PhraseDictionary", Dict[str, int]]:
        """The dictionary of annotated pairs ({"text", "concept", "gold"?}, as `read_pairs`
        reads them): every phrase whose pairs all name the same single concept.

        pairs (Iterable[Mapping[str, Any]]): the pairs; ids are resolved in `taxonomy`.
        taxonomy (Taxonomy): the linker's taxonomy (an id outside it raises ValueError).
        where (str): what the pairs are, for the error messages (e.g. the file name).
        RETURNS (Tuple[PhraseDictionary, Dict[str, int]]): the dictionary, and counts: pairs,
            phrases kept, phrases left out as "conflicting" (different concepts) and
            "composite" (several concepts at once).
        """
        seen: Dict[str, List[Any]] = {}  # key -> [concept set, count, conflicting]
        n_pairs = 0
        for i, p in enumerate(pairs, 1):
            n_pairs += 1
            text = p.get("text")
            gold = p.get("gold") or [p.get("concept")]
            ids_ok = isinstance(gold, list) and all(isinstance(g, str) and g for g in gold)
            if not isinstance(text, str) or not ids_ok:
                raise ValueError(
                    f"{where}, pair {i}: needs a 'text' string and a 'concept' (or 'gold' list of) concept ids, "
                    f"found {dict(p)!r}."
                )
            for g in gold:
                if g not in taxonomy:
                    raise ValueError(
                        f"{where}, pair {i}: concept {g!r} is not in taxonomy {taxonomy.name!r} "
                        f"({len(taxonomy)} concepts). Is this the taxonomy the pairs were written for?"
                    )
            key = normalize_text(text)
            if not key:
                continue
            concepts = frozenset(taxonomy.resolve(g) for g in gold)
            entry = seen.setdefault(key, [concepts, 0, False])
            entry[1] += 1
            entry[2] = entry[2] or entry[0] != concepts
        entries: Dict[str, Tuple[int, int]] = {}
        counts = {"pairs": n_pairs, "phrases": 0, "conflicting": 0, "composite": 0}
        for key, (concepts, count, conflicting) in seen.items():
            if conflicting:
                counts["conflicting"] += 1
            elif len(concepts) > 1:
                counts["composite"] += 1
            else:
                (cid,) = concepts
                entries[key] = (taxonomy.index(cid), count)
        counts["phrases"] = len(entries)
        return cls(entries), counts

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, text: str) -> Optional[Tuple[int, int]]:
        """(node index, annotations) of a query text, or None."""
        return self.entries.get(normalize_text(text))

    # serialization: one JSON object {"phrases": {phrase: [node index, annotations]}}
    def to_bytes(self) -> bytes:
        return srsly.json_dumps({"phrases": {k: list(v) for k, v in sorted(self.entries.items())}}).encode("utf8")

    @classmethod
    def from_bytes(cls, data: bytes) -> "PhraseDictionary":
        msg = srsly.json_loads(data.decode("utf8"))
        if not isinstance(msg, dict) or not isinstance(msg.get("phrases"), dict):
            raise ValueError('the phrase dictionary is not a JSON object {"phrases": {...}}')
        try:
            return cls({k: (v[0], v[1]) for k, v in msg["phrases"].items()})
        except (TypeError, ValueError, IndexError, KeyError):
            raise ValueError("the phrase dictionary's entries are not [node index, count] pairs") from None

    def to_disk(self, path: Union[str, Path]) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def from_disk(cls, path: Union[str, Path]) -> "PhraseDictionary":
        return cls.from_bytes(Path(path).read_bytes())
