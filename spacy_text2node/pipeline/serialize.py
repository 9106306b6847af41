"""Saving and loading the linker: its cfg, taxonomy, index and model, with the manifest
that names a missing, changed or swapped file (`manifest`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Optional, Union

import srsly
from spacy import util
from spacy.vocab import Vocab
from thinc.api import Model

from ..index import NodeIndex
from ..ml.mapper import set_mapper_dims
from ..taxonomy import Taxonomy
from . import manifest as mf
from .settings import RUNTIME_SETTINGS
from .training import NegativeSampler


def part_loaders(owner: Any, *, on_disk: bool) -> Dict[str, Callable[[Any], None]]:
    """The readers of the parts the linker and Text2NodeKB both save, in their order: "cfg"
    (passed to `owner._load_cfg`), "taxonomy" and "index" (set on `owner`), each reading a path
    (`on_disk`) or the part's bytes."""
    read_cfg = srsly.read_json if on_disk else srsly.json_loads
    read_taxonomy = Taxonomy.from_disk if on_disk else Taxonomy.from_bytes
    read_index = NodeIndex.from_disk if on_disk else NodeIndex.from_bytes

    def load_taxonomy(data: Any) -> None:
        owner.taxonomy = read_taxonomy(data)

    def load_index(data: Any) -> None:
        owner.index = read_index(data)

    return {"cfg": lambda data: owner._load_cfg(read_cfg(data)), "taxonomy": load_taxonomy, "index": load_index}


class LinkerSerialization:
    """to_bytes / from_bytes / to_disk / from_disk of `Text2NodeLinker`."""

    name: str
    vocab: Vocab
    model: Model
    cfg: Dict[str, Any]
    taxonomy: Optional[Taxonomy]
    index: Optional[NodeIndex]
    _negatives: NegativeSampler
    _vectors_seen: Dict[Any, Dict[str, Any]]

    if TYPE_CHECKING:  # the component's, declared for the type checker only

        def require_ready(self) -> None: ...

        def results_changed(self) -> None: ...

        def fresh_strings(self) -> None: ...

    def _load_cfg(self, saved: Dict[str, Any]) -> None:
        """Take the saved settings, except the runtime ones (RUNTIME_SETTINGS): those keep
        the values this component was created with, i.e. the pipeline's config."""
        if not isinstance(saved, dict):
            raise ValueError(f"a JSON {type(saved).__name__}, not an object of settings")
        keep = {key: self.cfg[key] for key in RUNTIME_SETTINGS if key in self.cfg}
        self.cfg.pop(mf.VECTORS_KEY, None)  # a linker saved before vectors were recorded has none
        self.cfg.update(saved)
        self.cfg.update(keep)

    def check_vectors(self, vocab: Vocab) -> Dict[str, Any]:
        """Raise VectorsMismatchError unless `vocab`'s word vectors are the ones the linker
        was trained with (`manifest.check_vectors`); the fingerprint is computed once per table.
        RETURNS (Dict[str, Any]): the table's shape and fingerprint."""
        now = self.vectors_fingerprint(vocab)
        mf.check_vectors(self.cfg.get(mf.VECTORS_KEY), now, self.name)
        return now

    def vectors_fingerprint(self, vocab: Vocab) -> Dict[str, Any]:
        """`manifest.vectors_fingerprint` of `vocab`'s word vectors, computed once per table."""
        key = mf.vectors_identity(vocab.vectors)
        now = self._vectors_seen.get(key)
        if now is None:
            if len(self._vectors_seen) > 16:
                self._vectors_seen.clear()
            now = self._vectors_seen[key] = mf.vectors_fingerprint(vocab.vectors)
        return now

    def _loaded(self, manifest: Optional[Dict[str, Any]], source: Any) -> Any:
        if manifest is not None and self.taxonomy is not None:
            mf.check_taxonomy(self.taxonomy, manifest.get("taxonomy"), source)
        self.check_vectors(self.vocab)  # nlp.from_disk / from_bytes load the vocab first
        self._negatives = NegativeSampler(self.cfg.get("seed", 0))
        self.results_changed()
        return self

    def _restore_dims(self) -> None:
        set_mapper_dims(self.model, nI=self.cfg.get("nI"), nO=self.cfg.get("nO"))

    def _ready_parts(self) -> tuple:
        self.require_ready()
        self.fresh_strings()  # saved as the saved mapper maps them
        assert self.taxonomy is not None and self.index is not None
        return self.taxonomy, self.index

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        taxonomy, index = self._ready_parts()
        serialize = {
            "cfg": lambda: srsly.json_dumps(self.cfg),
            "taxonomy": lambda: taxonomy.to_bytes(),
            "index": lambda: index.to_bytes(),
            "model": lambda: self.model.to_bytes(),
        }
        return mf.pack_parts(serialize, exclude, taxonomy=mf.taxonomy_record(taxonomy))

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> Any:
        def load_model(b: bytes) -> None:
            self._restore_dims()
            self.model.from_bytes(b)

        deserialize = {**part_loaders(self, on_disk=False), "model": load_model}
        manifest = mf.unpack_parts(bytes_data, deserialize, exclude, self.name)
        return self._loaded(manifest, f"{self.name} (serialized bytes), part 'taxonomy'")

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        taxonomy, index = self._ready_parts()
        path = Path(path)
        serialize = {
            "cfg": lambda p: srsly.write_json(p, self.cfg),
            "taxonomy": lambda p: taxonomy.to_disk(p),
            "index": lambda p: index.to_disk(p),
            "model": lambda p: p.write_bytes(self.model.to_bytes()),
        }
        util.to_disk(path, serialize, exclude)
        mf.write_manifest(
            path, "text2node_linker", taxonomy=mf.taxonomy_record(taxonomy), vectors=self.cfg.get(mf.VECTORS_KEY)
        )

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> Any:
        path = Path(path)
        manifest = mf.read_manifest(path, self.name)
        if manifest is not None:  # before anything is read: names a missing, changed or swapped file
            mf.check_files(path, manifest, exclude)

        def load_model(p: Path) -> None:
            self._restore_dims()
            with p.open("rb") as f:
                self.model.from_bytes(f.read())

        deserialize = {**part_loaders(self, on_disk=True), "model": load_model}
        util.from_disk(path, mf.guarded(deserialize, self.name), exclude)
        return self._loaded(manifest, path / "taxonomy" / "taxonomy.msgpack")
