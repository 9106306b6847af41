"""The settings of `text2node serve`, and how they reach uvicorn's worker processes."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Optional, Tuple

ENV_VAR = "TEXT2NODE_SERVE_SETTINGS"


@dataclass
class ServeSettings:
    """What the service loads and the limits it enforces.

    model (str): the pipeline: an installed package, a folder from `nlp.to_disk` or a `.cfg` config.
    mentions (Optional[str]): "ruler", "noun_chunks" or "ner": put that mention finder in front of
        a linker pipeline (as `text2node link --mentions`).
    negation (bool): add negspacy's `negex` (en_clinical termsets) so spans say whether they are negated.
    span_keys (Tuple[str, ...]): span sources, "ents" or span group keys (as `--span-key`).
    top_k (Optional[int]): candidates kept per span (None: all the linker gives).
    max_chars (int): the longest text accepted, in characters.
    max_batch (int): the most texts in one request.
    max_body_bytes (int): the largest request body accepted.
    timeout (float): seconds a request may take (waiting and linking) before it is answered with 503.
    single_thread (bool): run the pipeline on one thread (set when several worker processes share the cores).
    """

    model: str = ""
    mentions: Optional[str] = None
    negation: bool = False
    span_keys: Tuple[str, ...] = ("ents",)
    top_k: Optional[int] = None
    max_chars: int = 100_000
    max_batch: int = 64
    max_body_bytes: int = 10_000_000
    timeout: float = 30.0
    single_thread: bool = False
    overrides: Dict[str, Any] = field(default_factory=dict)

    def check(self) -> "ServeSettings":
        """Raise ValueError naming the flag when a setting is out of range.

        RETURNS (ServeSettings): self.
        """
        for flag, value, least in (
            ("--max-chars", self.max_chars, 1),
            ("--max-batch", self.max_batch, 1),
            ("--max-body-bytes", self.max_body_bytes, 1),
            ("--top-k", self.top_k, 1),
        ):
            if value is not None and value < least:
                raise ValueError(f"{flag} must be at least {least}, not {value}.")
        if not self.timeout > 0:
            raise ValueError(f"--timeout must be a positive number of seconds, not {self.timeout}.")
        if not self.span_keys:
            raise ValueError("Give at least one --span-key ('ents' or a span group key).")
        return self

    def to_env(self) -> str:
        """The settings as the JSON string that `from_env` reads (for uvicorn's worker processes)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, environ: Optional[Dict[str, str]] = None) -> "ServeSettings":
        """Read the settings the `text2node serve` command left in the environment.

        environ (Optional[Dict[str, str]]): the environment (default: os.environ).
        RETURNS (ServeSettings): the settings.
        """
        raw = (environ if environ is not None else os.environ).get(ENV_VAR)
        if not raw:
            raise ValueError(
                f"{ENV_VAR} is not set: start the service with `text2node serve MODEL`, or build the app "
                f"with spacy_text2node.serve.create_app(ServeSettings(model=...))."
            )
        data = json.loads(raw)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{ENV_VAR} has unknown settings {unknown}: start the service with `text2node serve`.")
        data["span_keys"] = tuple(data.get("span_keys") or ("ents",))
        return cls(**data).check()
