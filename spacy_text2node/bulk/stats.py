"""What a bulk run reports: its counts (`BulkStats`) and its warnings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence


@dataclass
class BulkStats:
    """What a bulk run did.

    n_in (int): input records seen by this run, not counting those skipped on resume.
    n_written (int): records written to the output by this run.
    n_errors (int): records written to the errors file by this run.
    n_skipped (int): records skipped because an earlier run finished them (--resume).
    n_tokens (int): tokens in the written documents.
    n_chars (int): characters in the written documents.
    n_spans (int): spans in the written documents.
    seconds (float): wall time of the run.
    total_written (int): records in the output after the run.
    total_errors (int): entries in the errors file after the run.
    output (str): the output path.
    errors_path (str): the errors file.
    reasons (Dict[str, int]): errors by kind of reason.
    warnings (List[str]): what the run warned about (e.g. no spans found at all).
    """

    n_in: int = 0
    n_written: int = 0
    n_errors: int = 0
    n_skipped: int = 0
    n_tokens: int = 0
    n_chars: int = 0
    n_spans: int = 0
    seconds: float = 0.0
    total_written: int = 0
    total_errors: int = 0
    output: str = ""
    errors_path: str = ""
    reasons: Dict[str, int] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        """True when every input record is in the output or the errors file."""
        return (
            self.n_in == self.n_written + self.n_errors
            and self.n_in + self.n_skipped == self.total_written + self.total_errors
        )

    @property
    def docs_per_second(self) -> float:
        return self.n_written / self.seconds if self.seconds else 0.0

    @property
    def words_per_second(self) -> float:
        return self.n_tokens / self.seconds if self.seconds else 0.0

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.update(balanced=self.balanced, docs_per_second=self.docs_per_second, words_per_second=self.words_per_second)
        return d

    def summary(self) -> str:
        """One line: in = written + errors, for this run and in total."""
        s = f"documents in {self.n_in:,} = written {self.n_written:,} + errors {self.n_errors:,}"
        if self.n_skipped:
            s += (
                f"; with {self.n_skipped:,} done by earlier runs: input {self.n_in + self.n_skipped:,} = "
                f"output {self.total_written:,} + errors file {self.total_errors:,}"
            )
        return s + ("" if self.balanced else "  (MISMATCH)")


class BulkWarning(UserWarning):
    """A bulk run's output is probably not what was meant (e.g. no spans found at all)."""


def no_spans_message(n_docs: int, span_keys: Optional[Sequence[str]] = None) -> str:
    """The warning of a run that found no spans in its first `n_docs` documents.

    n_docs (int): documents written so far.
    span_keys (Optional[Sequence[str]]): the span sources read, when known.
    RETURNS (str): the message, saying what to change.
    """
    keys = f" (span sources read: {', '.join(span_keys)})" if span_keys else ""
    return (
        f"No spans were found in the first {n_docs} documents{keys}: the pipeline has no mention finder in front "
        f"of the linker, or the linker links `spans` of a kind the pipeline does not produce. Use --mentions "
        f"ner|ruler|noun_chunks, or configs/clinical.cfg, or check --span-key."
    )
