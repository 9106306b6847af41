"""The on-disk form of a Taxonomy: one msgpack message (`taxonomy.msgpack`) plus `meta.json`.

The message holds flat arrays: ids, labels and definitions in node order, synonyms as
(owner, text, type) columns, and the parents as per-node counts over one index list.
Reading checks every array against the others, so damaged data raises a TaxonomyError
naming the file instead of failing later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, TypedDict, Union

import numpy as np
import srsly

from .concepts import Synonym, TaxonomyError

FORMAT_VERSION = 1

_REBUILD = "Rebuild it with `text2node taxonomy build SOURCE DIR` (or `Taxonomy.to_disk`)."


class TaxonomyArrays(TypedDict):
    """What a serialized taxonomy holds, as the keyword arguments of `Taxonomy._from_arrays`."""

    name: str
    ids: List[str]
    labels: List[str]
    synonyms: List[List[Synonym]]
    definitions: List[Optional[str]]
    parents: List[List[int]]
    xrefs: Dict[str, str]


def _check_arrays(n, ids, labels, definitions, owners, type_idx, syn_text, types, counts, flat, xrefs) -> Optional[str]:
    """What is inconsistent in the arrays of a serialized taxonomy, or None."""
    if len(set(ids)) != n:
        return "duplicate concept ids"
    if len(labels) != n or len(definitions) != n or counts.size != n:
        return f"{n} ids but {len(labels)} labels, {len(definitions)} definitions and {counts.size} parent counts"
    if counts.size and (counts.min() < 0 or int(counts.sum()) != flat.size):
        return "the parent counts do not add up to the parent list"
    if flat.size and (flat.min() < 0 or flat.max() >= n):
        return "a parent index out of range"
    if not (owners.size == type_idx.size == len(syn_text)):
        return "synonym arrays of different lengths"
    if owners.size and (owners.min() < 0 or owners.max() >= n or type_idx.min() < 0 or type_idx.max() >= len(types)):
        return "a synonym index out of range"
    known = set(ids)
    if any(c not in known for c in xrefs.values()):
        return "an alternative id pointing to no concept"
    return None


def pack(
    *,
    name: str,
    meta: Dict[str, object],
    ids: List[str],
    labels: List[str],
    synonyms: Sequence[Sequence[Synonym]],
    definitions: List[Optional[str]],
    parents: Sequence[Sequence[int]],
    xrefs: Dict[str, str],
) -> Dict[str, object]:
    """The msgpack message for a taxonomy's arrays (the keys and their order are the format)."""
    syn_owner: List[int] = []
    syn_text: List[str] = []
    syn_type: List[str] = []
    for i, syns in enumerate(synonyms):
        for s in syns:
            syn_owner.append(i)
            syn_text.append(s.text)
            syn_type.append(s.type)
    types = sorted(set(syn_type))
    type_index = {t: k for k, t in enumerate(types)}
    par_counts = [len(p) for p in parents]
    return {
        "format": FORMAT_VERSION,
        "name": name,
        "meta": meta,
        "ids": ids,
        "labels": labels,
        "definitions": definitions,
        "syn_owner": np.asarray(syn_owner, dtype=np.int32),
        "syn_text": syn_text,
        "syn_types": types,
        "syn_type": np.asarray([type_index[t] for t in syn_type], dtype=np.int16),
        "parent_counts": np.asarray(par_counts, dtype=np.int32),
        "parent_indices": np.asarray([p for ps in parents for p in ps], dtype=np.int32),
        "xrefs": xrefs,
    }


def unpack(msg: object, source: str) -> Tuple[TaxonomyArrays, Dict[str, object]]:
    """The arrays and the meta of a msgpack message written by `pack`, checked.

    msg (object): the decoded message.
    source (str): what the message comes from, for messages.
    RETURNS (Tuple[TaxonomyArrays, dict]): the arrays and the meta. Damaged data raises a TaxonomyError.
    """
    fmt = msg.get("format") if isinstance(msg, dict) else None
    if not isinstance(msg, dict) or fmt != FORMAT_VERSION:
        raise TaxonomyError(
            f"{source}: not a spacy-text2node taxonomy of format {FORMAT_VERSION} (found {fmt!r}). {_REBUILD}"
        )
    try:
        ids = [str(c) for c in msg["ids"]]
        n = len(ids)
        types = [str(t) for t in msg["syn_types"]]
        owners = np.asarray(msg["syn_owner"], dtype=np.int64).ravel()
        type_idx = np.asarray(msg["syn_type"], dtype=np.int64).ravel()
        syn_text = [str(t) for t in msg["syn_text"]]
        counts = np.asarray(msg["parent_counts"], dtype=np.int64).ravel()
        flat = np.asarray(msg["parent_indices"], dtype=np.int64).ravel()
        labels = [str(x) for x in msg["labels"]]
        definitions = [None if d is None else str(d) for d in msg["definitions"]]
        xrefs = {str(k): str(v) for k, v in dict(msg["xrefs"]).items()}
        meta = dict(msg.get("meta") or {})
        name = str(msg["name"])
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        detail = f"no {e.args[0]!r} entry" if isinstance(e, KeyError) else str(e)
        raise TaxonomyError(f"{source}: the taxonomy data is damaged ({detail}). {_REBUILD}") from None
    problem = _check_arrays(n, ids, labels, definitions, owners, type_idx, syn_text, types, counts, flat, xrefs)
    if problem:
        raise TaxonomyError(f"{source}: the taxonomy data is damaged ({problem}). {_REBUILD}")
    synonyms: List[List[Synonym]] = [[] for _ in range(n)]
    for owner, text, t in zip(owners.tolist(), syn_text, type_idx.tolist()):
        synonyms[owner].append(Synonym(text, types[t]))
    flat_list = flat.tolist()
    parents: List[List[int]] = []
    k = 0
    for c in counts.tolist():
        parents.append(flat_list[k : k + c])
        k += c
    arrays = TaxonomyArrays(
        name=name, ids=ids, labels=labels, synonyms=synonyms, definitions=definitions, parents=parents, xrefs=xrefs
    )
    return arrays, meta


def loads(data: bytes, source: str) -> object:
    """Decode msgpack bytes; anything that is not msgpack raises a TaxonomyError naming `source`."""
    try:
        return srsly.msgpack_loads(data)
    except Exception as e:  # msgpack raises ValueError subclasses, TypeError and its own errors
        raise TaxonomyError(
            f"{source}: not readable as a taxonomy (msgpack: {str(e) or type(e).__name__}); "
            f"the file is damaged or of another kind. {_REBUILD}"
        ) from None


def dumps(msg: Dict[str, object]) -> bytes:
    """Encode a message from `pack` as msgpack bytes (no pickle)."""
    return srsly.msgpack_dumps(msg)


def write_dir(path: Union[str, Path], data: bytes, *, name: str, concepts: int, meta: Dict[str, object]) -> None:
    """Write `taxonomy.msgpack` (the bytes) and `meta.json` (name, size, format and meta) to a directory."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "taxonomy.msgpack").write_bytes(data)
    srsly.write_json(
        path / "meta.json",
        {
            "name": name,
            "concepts": concepts,
            "format": FORMAT_VERSION,
            **{k: v for k, v in meta.items() if k != "skipped_examples"},
        },
    )


def read_dir(path: Union[str, Path]) -> Tuple[bytes, str]:
    """The bytes of a directory's `taxonomy.msgpack` and the file's name, for messages."""
    path = Path(path)
    if path.is_file():
        raise TaxonomyError(
            f"{path}: is a file; give the folder that holds it (a taxonomy directory holds taxonomy.msgpack "
            "and meta.json)."
        )
    f = path / "taxonomy.msgpack"
    if not f.exists():
        raise TaxonomyError(
            f"{path}: no taxonomy.msgpack here. Build one with `text2node taxonomy build SOURCE {path}`."
        )
    return f.read_bytes(), str(f)
