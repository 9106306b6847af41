"""Keep PyTorch out of a linking process whose pipeline does not need it.

thinc imports torch whenever it is installed, so `import spacy` alone loads it (hundreds of
MB of address space and seconds per process) in every bulk worker, although the CNN and
mean mappers, the index and the mention finders run on numpy. Training needs torch (the
Bi-LSTM mapper, distillation), so the full install keeps it; linking does not.

This module imports nothing outside the standard library: it runs first in the package's
`__init__`, before spaCy. The policy, from the environment variable SPACY_TEXT2NODE_TORCH:

* "0": torch is left out of this process (and, through the environment, its children:
  bulk workers, Spark's Python workers);
* "1": torch is imported as usual;
* unset ("auto"): left out only for the `text2node link` console command when no config
  of its pipeline (MODEL, sourced pipelines, override paths) names an architecture that
  needs torch (`TORCH_ARCHITECTURES`), or when one cannot be read (then kept).

Leaving torch out means `sys.modules["torch"] = None`: Python's documented way to make an
import fail, which thinc handles as "torch is not installed".
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

ENV = "SPACY_TEXT2NODE_TORCH"
# architecture and factory names whose code imports torch
TORCH_ARCHITECTURES = re.compile(r"BiLSTM|PyTorch|Transformer|transformer|Torch")
_LEFT_OUT = ("torch",)


_STATE = {"left_out": False}


def torch_left_out() -> bool:
    """Whether this process left torch out (the policy above, not a missing install)."""
    return _STATE["left_out"] and "torch" in sys.modules and sys.modules["torch"] is None


def leave_out_torch() -> bool:
    """Make `import torch` fail in this process and its children, unless torch is already
    imported. RETURNS (bool): whether torch is left out now."""
    if sys.modules.get("torch") is not None:
        return False
    for name in _LEFT_OUT:
        sys.modules[name] = None  # type: ignore[assignment]
    os.environ[ENV] = "0"
    _STATE["left_out"] = True
    return True


def _pipeline_config(ref: str) -> Optional[Path]:
    """The config.cfg of a pipeline folder, a .cfg file or an installed pipeline package."""
    path = Path(ref)
    if path.is_dir():
        cfg = path / "config.cfg"
        return cfg if cfg.exists() else None
    if path.suffix == ".cfg" and path.is_file():
        return path
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ref):  # a dotted name would import its parents
        return None
    try:
        spec = importlib.util.find_spec(ref)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*/config.cfg"))
        if found:
            return found[0]
    return None


def _referenced(text: str) -> List[str]:
    """The quoted values of a config that may name another pipeline (`source`, `vectors`, paths)."""
    return re.findall(r'^\s*\w+\s*=\s*"([^"$]+)"\s*$', text, flags=re.M)


def needs_torch(refs: Iterable[str]) -> Optional[bool]:
    """Whether the pipelines `refs` (folders, .cfg files, package names) and those their
    configs name need torch. RETURNS (Optional[bool]): None when MODEL's config cannot be read."""
    todo = list(refs)
    seen = set()
    first = True
    while todo:
        ref = todo.pop(0)
        cfg = _pipeline_config(ref)
        if cfg is None:
            if first:
                return None
            first = False
            continue
        first = False
        if cfg in seen:
            continue
        seen.add(cfg)
        text = cfg.read_text(encoding="utf8", errors="replace")
        if TORCH_ARCHITECTURES.search(text):
            return True
        todo.extend(_referenced(text))
    return False


def _link_refs(argv: Sequence[str]) -> Optional[List[str]]:
    """MODEL and the override values of a `text2node link ...` command line, or None."""
    if len(argv) < 3 or Path(argv[0]).name != "text2node" or argv[1] != "link":
        return None
    args = list(argv[2:])
    positional = [
        a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or not args[i - 1].startswith("-"))
    ]
    if not positional:
        return None
    overrides = [args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--") and "." in a and "=" not in a]
    overrides += [a.split("=", 1)[1] for a in args if a.startswith("--") and "." in a.split("=", 1)[0] and "=" in a]
    return [positional[0], *overrides]


def apply_torch_policy(argv: Optional[Sequence[str]] = None) -> bool:
    """Apply SPACY_TEXT2NODE_TORCH (see the module's docstring) before spaCy is imported.

    argv (Optional[Sequence[str]]): the command line (default: sys.argv).
    RETURNS (bool): whether torch is left out of this process.
    """
    policy = os.environ.get(ENV, "").strip().lower()
    if policy in ("1", "true", "yes"):
        return False
    if policy in ("0", "false", "no"):
        return leave_out_torch()
    refs = _link_refs(sys.argv if argv is None else argv)
    if refs is None or "thinc" in sys.modules:
        return False
    if needs_torch(refs) is False:
        return leave_out_torch()
    return False


TORCH_HINT = (
    f"PyTorch was left out of this process ({ENV}=0, or `text2node link` found no torch architecture "
    f"in the pipeline's config): set {ENV}=1 to import it."
)
