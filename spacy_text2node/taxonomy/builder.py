"""TaxonomyBuilder: collects concepts and is-a edges from a source, checks them and builds a Taxonomy."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from .concepts import Problem, Synonym, TaxonomyError
from .core import Taxonomy

logger = logging.getLogger("spacy_text2node")


@dataclass
class _Row:
    id: str
    label: str
    synonyms: List[Synonym] = field(default_factory=list)
    definition: Optional[str] = None
    parents: List[str] = field(default_factory=list)
    xrefs: List[str] = field(default_factory=list)
    line: Optional[int] = None


class TaxonomyBuilder:
    """Collects concepts and is-a edges from a source and checks them.

    Every problem names the source file and line. With `on_error="raise"` the first
    problem raises a `TaxonomyError`; with `on_error="skip"` the bad row or edge is
    left out and counted, and `build()` logs how many were skipped and the first few.

    source (str): the file or folder the rows come from, for messages.
    on_error (str): "raise" or "skip".
    name (str): the taxonomy's name.
    """

    def __init__(self, source: str, *, on_error: str = "raise", name: str = "taxonomy"):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}.")
        self.source = str(source)
        self.on_error = on_error
        self.name = name
        self.rows: Dict[str, _Row] = {}
        self.problems: List[Problem] = []
        self.dropped: Counter = Counter()

    def problem(self, line: Optional[int], message: str) -> None:
        """Report a problem: raise, or count it when skipping."""
        p = Problem(self.source, line, message)
        if self.on_error == "raise":
            raise TaxonomyError(
                f"{p} (to leave such rows out and report them, use --on-error skip; in Python on_error='skip')"
            )
        self.problems.append(p)

    def add(
        self,
        id: str,
        label: str,
        *,
        synonyms: Iterable[Union[str, Synonym, Tuple[str, str]]] = (),
        definition: Optional[str] = None,
        parents: Iterable[str] = (),
        xrefs: Iterable[str] = (),
        line: Optional[int] = None,
    ) -> bool:
        """Add a concept. Returns False if it was skipped as bad."""
        id = (id or "").strip()
        label = (label or "").strip()
        if not id:
            self.problem(line, "empty concept id")
            return False
        if not label:
            self.problem(line, f"concept {id!r} has an empty label")
            return False
        if id in self.rows:
            first = self.rows[id].line
            where = f" (first defined on line {first})" if first is not None else ""
            self.problem(line, f"duplicate concept id {id!r}{where}")
            return False
        syns: List[Synonym] = []
        seen = {label}
        for s in synonyms:
            if isinstance(s, Synonym):
                syn = s
            elif isinstance(s, tuple):
                syn = Synonym(str(s[0]).strip(), str(s[1]))
            else:
                syn = Synonym(str(s).strip())
            if syn.text and syn.text not in seen:
                seen.add(syn.text)
                syns.append(syn)
        pars: List[str] = []
        for p in parents:
            p = p.strip()
            if p and p not in pars:
                pars.append(p)
        self.rows[id] = _Row(
            id=id,
            label=label,
            synonyms=syns,
            definition=(definition or None),
            parents=pars,
            xrefs=[x.strip() for x in xrefs if x and x.strip()],
            line=line,
        )
        return True

    def build(self) -> Taxonomy:
        """Check parents and cycles and return the Taxonomy."""
        if not self.rows:
            self.problem(None, "no concepts found: is this the right file and format?")
            raise TaxonomyError(f"{self.source}: no concepts found.")
        ids = list(self.rows)
        index = {cid: i for i, cid in enumerate(ids)}
        parents: List[List[int]] = []
        for cid in ids:
            row = self.rows[cid]
            ps = []
            for p in row.parents:
                j = index.get(p)
                if j is None:
                    self.problem(row.line, f"concept {cid!r} has parent {p!r}, which is not defined in this source")
                    continue
                if j == index[cid]:
                    self.problem(row.line, f"concept {cid!r} is its own parent")
                    continue
                ps.append(j)
            parents.append(ps)
        self._break_cycles(ids, parents)
        xref_map: Dict[str, str] = {}
        for cid in ids:
            for x in self.rows[cid].xrefs:
                if x not in index and x not in xref_map:
                    xref_map[x] = cid
        tax = Taxonomy._from_arrays(
            name=self.name,
            ids=ids,
            labels=[self.rows[c].label for c in ids],
            synonyms=[self.rows[c].synonyms for c in ids],
            definitions=[self.rows[c].definition for c in ids],
            parents=parents,
            xrefs=xref_map,
        )
        tax.meta["source"] = self.source
        tax.meta["skipped"] = len(self.problems)
        tax.meta["skipped_examples"] = [str(p) for p in self.problems[:10]]
        tax.meta.update({f"dropped_{k}": v for k, v in self.dropped.items()})
        if self.problems:
            logger.warning(
                "%s: skipped %d bad rows or edges; first: %s",
                self.source,
                len(self.problems),
                "; ".join(str(p) for p in self.problems[:5]),
            )
        return tax

    def _break_cycles(self, ids: List[str], parents: List[List[int]]) -> None:
        """Find is-a cycles (iterative DFS); raise naming the nodes, or drop an edge."""
        n = len(ids)
        state = np.zeros(n, dtype=np.int8)  # 0 new, 1 on stack, 2 done
        for start in range(n):
            if state[start]:
                continue
            stack = [(start, 0)]
            path = [start]
            state[start] = 1
            while stack:
                node, k = stack[-1]
                if k < len(parents[node]):
                    stack[-1] = (node, k + 1)
                    nxt = parents[node][k]
                    if state[nxt] == 0:
                        state[nxt] = 1
                        stack.append((nxt, 0))
                        path.append(nxt)
                    elif state[nxt] == 1:
                        cyc = path[path.index(nxt) :] + [nxt]
                        names = " -> ".join(ids[i] for i in cyc)
                        line = self.rows[ids[node]].line
                        self.problem(line, f"is-a cycle: {names}")
                        # skipping: drop the edge that closes the cycle
                        parents[node].remove(nxt)
                        stack[-1] = (node, k)
                else:
                    state[node] = 2
                    stack.pop()
                    path.pop()
