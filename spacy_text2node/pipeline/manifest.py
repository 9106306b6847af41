"""Consistency checks of saved components: manifests, taxonomy and word-vector fingerprints.

`to_disk` of the linker and of `text2node_vectors` writes `manifest.json` into the
component's folder: every file's size and sha256, and what the files must agree with (the
taxonomy's fingerprint and node order, the word vectors the linker was trained with).
`from_disk` checks it before it reads anything, so a file that was deleted, changed or
swapped is an error naming the file, not wrong concept ids. Hashing runs at about 1 GB/s:
0.2 s for a 200 MB component, a small part of its load time (see `check_files`).
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple

import numpy as np
import srsly

from ..about import __version__
from ..errors import VectorsMismatchError

logger = logging.getLogger("spacy_text2node")

MANIFEST = "manifest.json"
FORMAT = 1
FIX = "re-save the pipeline with nlp.to_disk, or restore the file from the original package"
BYTES_FIX = "serialize it again with nlp.to_bytes from the original pipeline"
MANIFEST_PART = "manifest"  # the part of a component's bytes that holds its manifest
VECTORS_KEY = "vectors"  # the linker's cfg entry: shape and fingerprint of the word vectors
SAMPLE_ROWS = 1024  # rows of the vector table hashed by `vectors_fingerprint`
ANNOY_HEADER = 12  # bytes of an angular annoy node before its vector (n_descendants, children[2])


class PipelineFileError(ValueError):
    """A file of a saved pipeline is missing, changed or cannot be read."""


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file.

    path (Path): the file.
    RETURNS (str): the digest.
    """
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_entries(folder: Path) -> Dict[str, Dict[str, Any]]:
    """Size and sha256 of every file under `folder` (but the manifest), by path relative to it.

    folder (Path): the component folder.
    RETURNS (Dict[str, Dict[str, Any]]): relative POSIX path -> {"size", "sha256"}.
    """
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST:
            out[p.relative_to(folder).as_posix()] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return out


def write_manifest(folder: Path, component: str, **info: Any) -> Dict[str, Any]:
    """Write `manifest.json` for the files now in `folder`.

    folder (Path): the component folder, after the component wrote its files.
    component (str): the component's factory name.
    **info: what the files must agree with (e.g. taxonomy, vectors).
    RETURNS (Dict[str, Any]): the manifest.
    """
    manifest = {"format": FORMAT, "component": component, "version": __version__, "files": file_entries(folder), **info}
    srsly.write_json(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: Path, name: str) -> Optional[Dict[str, Any]]:
    """The manifest of a saved component; None (and a warning) for a folder saved before
    manifests existed.

    folder (Path): the component folder.
    name (str): the component name, for messages.
    RETURNS (Optional[Dict[str, Any]]): the manifest.
    """
    path = folder / MANIFEST
    if not path.exists():
        logger.warning(
            "%s: %s has no %s (saved by an older version): its files are not checked for damage; "
            "re-save the pipeline with nlp.to_disk to add one.",
            name,
            folder,
            MANIFEST,
        )
        return None
    with load_step(path, "the manifest"):
        manifest = srsly.read_json(path)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise ValueError("no 'files' table")
    return manifest


def check_files(folder: Path, manifest: Dict[str, Any], exclude: Iterable[str] = ()) -> None:
    """Check that every file of the manifest is there with its size and sha256.

    Every file is hashed: sha256 runs at about 1 GB/s, i.e. 0.2 s for a 200 MB linker,
    against several seconds to load it, and it is the one check that finds a file of the
    right size with other content (a zeroed annoy index).

    folder (Path): the component folder.
    manifest (Dict[str, Any]): from `read_manifest`.
    exclude (Iterable[str]): top-level names not being loaded (not checked).
    """
    exclude = set(exclude)
    for rel, want in manifest["files"].items():
        if rel.split("/")[0].split(".")[0] in exclude:
            continue
        p = folder / rel
        if not p.is_file():
            raise PipelineFileError(
                f"{p} is missing: {folder / MANIFEST} lists it as part of the saved component. "
                f"The pipeline folder is incomplete: {FIX}."
            )
        size = p.stat().st_size
        if size != want.get("size"):
            raise PipelineFileError(
                f"{p} has {size} bytes but was saved with {want.get('size')} "
                f"({folder / MANIFEST}): "
                f"the file was changed or truncated after the pipeline was saved; {FIX}."
            )
        if want.get("sha256") and sha256_file(p) != want["sha256"]:
            raise PipelineFileError(
                f"{p}: its content differs from the file that was saved "
                f"(sha256 in {folder / MANIFEST}): "
                f"it was changed or replaced after the pipeline was saved; {FIX}."
            )


def _as_bytes(value: Any) -> bytes:
    return value.encode("utf8") if isinstance(value, str) else bytes(value)


def pack_parts(getters: Dict[str, Callable[[], Any]], exclude: Iterable[str], **info: Any) -> bytes:
    """A component's bytes (`spacy.util.to_bytes`'s format) with a "manifest" part: the
    sha256 of every part and what they must agree with.

    getters (Dict[str, Callable[[], Any]]): part name -> serializer.
    exclude (Iterable[str]): parts to leave out.
    **info: what the parts must agree with (e.g. taxonomy, vectors).
    RETURNS (bytes): the serialized component.
    """
    parts = {key: get() for key, get in getters.items() if key not in exclude}
    digests = {key: hashlib.sha256(_as_bytes(value)).hexdigest() for key, value in parts.items()}
    parts[MANIFEST_PART] = srsly.json_dumps({"format": FORMAT, "version": __version__, "sha256": digests, **info})
    return srsly.msgpack_dumps(parts)


def unpack_parts(
    data: bytes, setters: Dict[str, Callable[[Any], None]], exclude: Iterable[str], name: str
) -> Optional[Dict[str, Any]]:
    """Check a component's bytes against their manifest part (when they have one), then
    call each setter on its part, naming the part in any error.

    data (bytes): from `pack_parts` (or `spacy.util.to_bytes`: no manifest, unchecked).
    setters (Dict[str, Callable[[Any], None]]): part name -> deserializer.
    exclude (Iterable[str]): parts to leave out.
    name (str): the component name, for messages.
    RETURNS (Optional[Dict[str, Any]]): the manifest.
    """
    exclude = set(exclude)
    source = f"{name} (serialized bytes)"
    with load_step(source, "the component", fix=BYTES_FIX):
        msg = srsly.msgpack_loads(data)
        if not isinstance(msg, dict):
            raise ValueError(f"a {type(msg).__name__}, not a table of parts")
    manifest = None
    if MANIFEST_PART in msg:
        with load_step(source, "its manifest", fix=BYTES_FIX):
            manifest = srsly.json_loads(msg[MANIFEST_PART])
        for key, want in manifest.get("sha256", {}).items():
            if key in exclude:
                continue
            if key not in msg or hashlib.sha256(_as_bytes(msg[key])).hexdigest() != want:
                raise PipelineFileError(
                    f"{source}: the '{key}' part is missing or damaged (its sha256 differs from "
                    f"the one recorded when it was serialized); {BYTES_FIX}."
                )
    for key, setter in setters.items():
        if key not in exclude and key in msg:
            with load_step(f"{source}, part '{key}'", f"the {key}", fix=BYTES_FIX):
                setter(msg[key])
    return manifest


def guarded(readers: Dict[str, Callable[[Path], None]], name: str) -> Dict[str, Callable[[Path], None]]:
    """The `from_disk` readers of a component, each turning an error into a
    PipelineFileError that names its file.

    readers (Dict[str, Callable[[Path], None]]): file name -> reader.
    name (str): the component name, for messages.
    RETURNS (Dict[str, Callable[[Path], None]]): the guarded readers.
    """

    def wrap(key: str, read: Callable[[Path], None]) -> Callable[[Path], None]:
        def guarded_read(p: Path) -> None:
            with load_step(p, f"the {name}'s {key}"):
                read(p)

        return guarded_read

    return {key: wrap(key, read) for key, read in readers.items()}


@contextmanager
def load_step(path: Any, what: str, fix: str = FIX) -> Iterator[None]:
    """Turn any error while reading one file of a saved component into a ValueError
    naming the file (raised from the original error).

    path (Any): the file or folder being read (or a description, for bytes).
    what (str): what it holds, e.g. "the lexical index".
    fix (str): what to do.
    """
    try:
        yield
    except (PipelineFileError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as e:
        damaged = "The serialized pipeline is damaged" if fix == BYTES_FIX else "The pipeline folder is damaged"
        raise PipelineFileError(f"{path}: cannot read {what} ({type(e).__name__}: {e}). {damaged}: {fix}.") from e


# taxonomy ---------------------------------------------------------------------------------
def taxonomy_record(taxonomy: Any) -> Dict[str, Any]:
    """The taxonomy's fingerprint (its concept ids and edges, whatever their order), its
    node-order hash (the ids in index order: the linker's rows follow it) and size.

    taxonomy (Taxonomy): the taxonomy.
    RETURNS (Dict[str, Any]): {"fingerprint", "node_order", "concepts"}.
    """
    ids = list(taxonomy.ids)
    edges = sorted(f"{ids[p]}\t{c}" for i, c in enumerate(ids) for p in taxonomy.parent_indices(i))
    fp = hashlib.sha256("\n".join(sorted(ids)).encode("utf8") + b"\n\n" + "\n".join(edges).encode("utf8"))
    order = hashlib.sha256("\n".join(ids).encode("utf8"))
    return {"fingerprint": fp.hexdigest(), "node_order": order.hexdigest(), "concepts": len(ids)}


def check_taxonomy(taxonomy: Any, recorded: Optional[Dict[str, Any]], source: Any) -> None:
    """Raise when a loaded taxonomy is not the one the component was saved with.

    taxonomy (Taxonomy): the loaded taxonomy.
    recorded (Optional[Dict[str, Any]]): `taxonomy_record` at save time (None: unchecked).
    source (Any): the taxonomy's file, for messages.
    """
    if not recorded:
        return
    now = taxonomy_record(taxonomy)
    if now["fingerprint"] != recorded.get("fingerprint"):
        raise PipelineFileError(
            f"{source}: this taxonomy ({now['concepts']} concepts) is not the one the linker was saved with "
            f"({recorded.get('concepts')} concepts, other concept ids or edges): its concept ids would be wrong. {FIX}."
        )
    if now["node_order"] != recorded.get("node_order"):
        raise PipelineFileError(
            f"{source}: the taxonomy's concepts are in another order than when the linker was saved: every "
            f"concept id would be wrong. {FIX}."
        )


# word vectors ------------------------------------------------------------------------------
def vectors_identity(vectors: Any) -> Tuple[int, Tuple[int, ...], int]:
    """A cheap key of a vector table as it is now (object, shape, rows in use)."""
    return id(vectors), tuple(int(x) for x in vectors.shape), len(vectors.key2row) if vectors.mode == "default" else -1


def vectors_fingerprint(vectors: Any) -> Dict[str, Any]:
    """Shape and fingerprint of a spaCy vector table: sha256 over its keys and their rows
    and over SAMPLE_ROWS evenly spaced rows of values (cheap even for large tables).

    vectors (Vectors): the table.
    RETURNS (Dict[str, Any]): {"shape": [rows, width], "fingerprint": str}.
    """
    h = hashlib.sha256(f"{vectors.mode}:{tuple(vectors.shape)}".encode("utf8"))
    if vectors.mode == "default":
        k2r = vectors.key2row
        keys = np.fromiter(k2r.keys(), dtype="uint64", count=len(k2r))
        rows = np.fromiter(k2r.values(), dtype="int64", count=len(k2r))
        order = np.argsort(keys, kind="stable")
        h.update(keys[order].tobytes())
        h.update(rows[order].tobytes())
    else:
        h.update(srsly.json_dumps(vectors._get_cfg(), sort_keys=True).encode("utf8"))
    n = int(vectors.shape[0])
    if n and int(vectors.shape[1]):
        data = vectors.data if isinstance(vectors.data, np.ndarray) else vectors.data.get()
        sample = np.unique(np.linspace(0, n - 1, min(n, SAMPLE_ROWS)).astype("int64"))
        h.update(np.ascontiguousarray(data[sample], dtype="float32").tobytes())
    return {"shape": [int(x) for x in vectors.shape], "fingerprint": h.hexdigest()}


def check_vectors(recorded: Optional[Dict[str, Any]], now: Dict[str, Any], name: str) -> None:
    """Raise when a pipeline's word vectors are not the ones the linker was trained with.

    recorded (Optional[Dict[str, Any]]): `vectors_fingerprint` at initialize (None: saved
        before it was recorded, or trained without word vectors: unchecked).
    now (Dict[str, Any]): `vectors_fingerprint` of the pipeline's vectors.
    name (str): the component name.
    """
    if not recorded or not recorded.get("shape") or not recorded["shape"][0]:
        return
    if now["fingerprint"] == recorded.get("fingerprint"):
        return
    same = "same shape, other words or values" if list(now["shape"]) == list(recorded["shape"]) else "shape"
    raise VectorsMismatchError(
        f"{name}: the pipeline's word vectors are not the ones this linker was trained with "
        f"({same}: {tuple(now['shape'])} vs {tuple(recorded['shape'])}); it would link with wrong or zero vectors. "
        "Bring the linker's vectors along: in a config set `[initialize] vectors = PATH_TO_LINKER_PIPELINE`, or "
        "`spacy.load` the linker pipeline and add your mention finders in front of the linker "
        "(e.g. spacy_text2node.bulk.clinical.build_clinical_pipeline)."
    )


# annoy --------------------------------------------------------------------------------------
def check_annoy_size(source: Any, size: int, dim: int, items: int, expected: Optional[int] = None) -> None:
    """Check an angular annoy file's size before annoy maps it (annoy crashes the process
    on some damaged files).

    source (Any): the file, for messages.
    size (int): its size in bytes.
    dim (int): vector width.
    items (int): vectors the index holds.
    expected (Optional[int]): the size recorded when it was saved.
    """
    node = ANNOY_HEADER + 4 * int(dim)
    if expected is not None and size != expected:
        raise PipelineFileError(
            f"{source} has {size} bytes but was saved with {expected}: the annoy index is damaged; {FIX}."
        )
    if size == 0 or size % node or size // node < items:
        raise PipelineFileError(
            f"{source} has {size} bytes, not a whole number of at least {items} annoy nodes of "
            f"{node} bytes ({dim}-d): the annoy index is damaged; {FIX}."
        )


def check_annoy_loaded(source: Any, annoy: Any, items: int) -> None:
    """Check a loaded annoy index holds the items it should (a zeroed or garbage file
    loads with 0 or millions of items, and searching it returns nothing or crashes).

    source (Any): the file, for messages.
    annoy (AnnoyIndex): the loaded index.
    items (int): vectors it must hold.
    """
    n = annoy.get_n_items()
    if n != items:
        annoy.unload()
        raise PipelineFileError(f"{source}: the annoy index holds {n} items, not {items}: the file is damaged; {FIX}.")
