"""Loading the pipeline of a bulk run: a package, a folder, a config or a Language, with an
optional mention finder put in front of the linker."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import spacy
from spacy.language import Language

logger = logging.getLogger("spacy_text2node")

DEFAULT_MAX_CHARS = 1_000_000
# documents per nlp.pipe batch in a bulk run: a worker's memory grows with the batch of long
# notes, so the default keeps each extra worker small (docs/bulk.md, Memory and workers)
DEFAULT_BATCH_SIZE = 8


def _register_components() -> None:
    """Import the package's components so their factories exist in this process
    (also in Spark executors and spawned workers, where entry points may be absent)."""
    import importlib

    for mod in ("spacy_text2node.pipeline.linker", "spacy_text2node.vectors.component"):
        try:
            importlib.import_module(mod)
        except ImportError as e:  # a layer not installed: pipelines that need it fail with spaCy's E002
            logger.debug("could not import %s: %s", mod, e)


def load_pipeline(
    model: Union[str, Path, Language],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    exclude: Sequence[str] = (),
    overrides: Optional[Dict[str, Any]] = None,
    mentions: Optional[str] = None,
) -> Language:
    """Load a pipeline for bulk linking.

    model (Union[str, Path, Language]): an installed package name, a pipeline folder
        (written by `nlp.to_disk`), a `.cfg` config file, or a Language (used as is).
        A config is built and initialized: components with `source` keep their
        weights, the others are initialized from its [initialize] section; a
        component whose `source` is null (an unset path such as `paths.linker`) is
        left out with a warning.
    max_chars (int): raise `nlp.max_length` to at least this.
    exclude (Sequence[str]): components not to load.
    overrides (Optional[Dict[str, Any]]): config overrides ({"paths.linker": "..."}).
    mentions (Optional[str]): "noun_chunks", "ruler" or "ner": treat MODEL as a
        linker pipeline and put that mention finder in front of it
        (`build_clinical_pipeline`).
    RETURNS (Language): the pipeline.
    """
    from . import clinical  # noqa: F401  (registers the mention components and pattern builder)
    from .clinical import LINKER

    _register_components()
    if isinstance(model, Language):
        nlp = model
    elif str(model).endswith(".cfg"):
        from spacy.util import get_sourced_components, load_config, load_model_from_config

        path = Path(model)
        if not path.exists():
            raise ValueError(f"Config {path} does not exist.")
        config = load_config(path, overrides=dict(overrides or {}), interpolate=True)
        left_out = []
        for name in list(config["nlp"]["pipeline"]):
            comp = config["components"].get(name, {})
            if "source" in comp and comp["source"] in (None, "", "null"):
                logger.warning("%s: component %r has no source (an unset path): leaving it out", path, name)
                left_out.append(name)
        for name in list(config["nlp"]["pipeline"]):
            comp = config["components"].get(name, {})
            if comp.get("factory") == "text2node_coordinations" and comp.get("linker", LINKER) in left_out:
                logger.warning("%s: component %r reads the names of the left-out linker: leaving it out", path, name)
                left_out.append(name)
        config["nlp"]["pipeline"] = [n for n in config["nlp"]["pipeline"] if n not in left_out]
        for name in left_out:
            del config["components"][name]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            nlp = load_model_from_config(config, auto_fill=True, exclude=list(exclude))
            sourced = set(get_sourced_components(config))
            with nlp.select_pipes(disable=[n for n in nlp.pipe_names if n in sourced]):
                nlp.initialize()
        _check_sourced_vectors(nlp, config, path, caught)
        _configure_sourced_linker(nlp, config, path)
    else:
        try:
            nlp = spacy.load(model, exclude=list(exclude), config=dict(overrides or {}))
        except OSError as e:
            raise ValueError(
                f"Cannot load the pipeline {model!r}: {e}. Give an installed pipeline package, "
                f"a folder written by nlp.to_disk, or a .cfg config file."
            ) from None
    if mentions:
        nlp = clinical.build_clinical_pipeline(nlp, mentions=mentions)
    elif not isinstance(model, Language):
        _warn_whole_doc_linking(nlp)
    nlp.max_length = max(nlp.max_length, max_chars + 1)
    return nlp


def _check_sourced_vectors(nlp: Language, config: Any, path: Path, caught: List[Any]) -> None:
    """spaCy warns (W113) about sourced components whose source's vector table is not
    byte-identical to the pipeline's, also while the pipeline's own table is still empty
    and also for equal tables whose keys were added in another order. Compare the tables'
    contents once the pipeline is initialized instead (`vectors_fingerprint`), and warn,
    naming the component and the fix, only where they differ."""
    from spacy.vocab import Vocab

    from ..pipeline.manifest import vectors_fingerprint

    for w in caught:
        if "[W113]" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not any("[W113]" in str(w.message) for w in caught):
        return
    mine = vectors_fingerprint(nlp.vocab.vectors)
    seen: Dict[str, Dict[str, Any]] = {}
    for name in nlp.pipe_names:
        source = config["components"].get(name, {}).get("source")
        if not isinstance(source, str) or not (Path(source) / "vocab").is_dir():
            continue
        if source not in seen:
            vocab = Vocab().from_disk(Path(source) / "vocab")
            seen[source] = vectors_fingerprint(vocab.vectors) if vocab.vectors.shape[0] else mine
        if seen[source] != mine:
            warnings.warn(
                f"{path}: component {name!r} comes from {source}, whose word vectors "
                f"{tuple(seen[source]['shape'])} differ from the pipeline's {tuple(mine['shape'])} "
                "([initialize] vectors): it will see other vectors than it was trained with. Point "
                "[initialize] vectors at the pipeline the components were trained with.",
                UserWarning,
                stacklevel=3,
            )


def _configure_sourced_linker(nlp: Language, config: Any, path: Path) -> None:
    """A linker sourced by a config keeps the settings it was saved with: apply the
    `spans` and the search settings (`composite`, `abbreviations`, `k`, `threshold`, ...)
    the config gives beside `source`, and refuse a linker that would link whole
    documents behind components that find mentions (it would overwrite them)."""
    import dataclasses

    from ..pipeline.settings import SearchSettings, settings_block
    from .clinical import LINKER, link_mentions, mention_finders

    if LINKER not in nlp.pipe_names or "source" not in config["components"].get(LINKER, {}):
        return
    block = config["components"][LINKER]
    known = {f.name for f in dataclasses.fields(SearchSettings)}
    given = {k: v for k, v in block.items() if k in known}
    unknown = sorted(set(block) - known - {"source", "component", "spans", "replace_listeners"})
    if unknown:
        raise ValueError(
            f"{path}: [components.{LINKER}] sets {', '.join(unknown)} beside `source`; a sourced linker takes "
            f"`spans` and its search settings ({', '.join(sorted(known))})."
        )
    if given:
        linker_: Any = nlp.get_pipe(LINKER)
        current = {k: linker_.cfg.get(k, getattr(SearchSettings(), k)) for k in known}
        checked = settings_block("search", {**current, **given}, SearchSettings)
        linker_.cfg.update(dataclasses.asdict(checked))
        linker_.results_changed()
        # the config keeps the source's [search] block: make it say what the linker does
        search = nlp.get_pipe_config(LINKER).setdefault("search", {})
        search.update({k: getattr(checked, k) for k in given})
    spans = block.get("spans")
    if spans is not None:
        link_mentions(nlp, spans)
        return
    finders = mention_finders(nlp)
    linker: Any = nlp.get_pipe(LINKER)
    if finders and linker.cfg.get("spans") == "doc":
        raise ValueError(
            f"{path}: the {LINKER} sourced from {config['components'][LINKER]['source']} links each whole "
            f'document as one span (spans="doc": it was trained on phrases), which would replace the mentions '
            f'found by {", ".join(finders)}. Add `spans = "ents"` under [components.{LINKER}] beside `source`.'
        )


def _warn_whole_doc_linking(nlp: Language) -> None:
    from .clinical import LINKER, mention_finders

    linker: Any = nlp.get_pipe(LINKER) if LINKER in nlp.pipe_names else None
    if linker is not None and linker.cfg.get("spans") == "doc" and not mention_finders(nlp):
        logger.warning(
            "%s links each whole record as one phrase (spans='doc'): right for a file of phrases. "
            "For notes, put a mention finder in front: --mentions ner|ruler|noun_chunks "
            "(API: mentions=...), or run configs/clinical.cfg with --paths.ner (an NER trained on the linker's "
            "vectors) and --paths.linker, or configs/clinical_noun_chunks.cfg with --paths.linker.",
            LINKER,
        )
