"""A member's last callback outcome, kept in a small JSON file beside its patroni.yml for the exporter.

Callbacks are short processes that Patroni may kill at any moment, and the exporter must not need a
database round trip per scrape to learn how they went: so each callback rewrites this file when it
ends (atomically: a temporary file, then a rename), and `patroni-citus metrics` reads it. A callback
killed before it ends records nothing; the file keeps the previous outcome and counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from patroni_citus.errors import PatroniCitusError

STATE_FILE = "patroni-citus-callbacks.json"
FORMAT_VERSION = 1
SUCCESS, FAILURE = "success", "failure"
RESULTS = (SUCCESS, FAILURE)
#: Error text is for people reading the file; keep it short (it never reaches a metric label).
MAX_ERROR_CHARS = 300


class CallbackStateError(PatroniCitusError):
    """A callback state file exists but cannot be read as one."""


@dataclass(frozen=True)
class CallbackOutcome:
    """How one callback run ended."""

    event: str  # on_start, on_role_change, on_stop, post_bootstrap
    role: str  # the role Patroni passed ("" for post_bootstrap)
    result: str  # SUCCESS or FAILURE (a step that gave up counts as a failure)
    duration_seconds: float
    attempts: int  # tries of the retried steps, all steps together
    steps: int  # retried steps run; attempts - steps are the retries
    finished_at: float  # Unix time
    error: str | None = None


@dataclass(frozen=True)
class CallbackState:
    """What the file holds: the last outcome and counters since the file was made."""

    member: str
    group: int | None = None  # the member's Citus group, so the series join a group's others
    last: CallbackOutcome | None = None
    last_success_at: float | None = None
    runs_total: int = 0
    failures_total: int = 0

    def recorded(self, outcome: CallbackOutcome) -> CallbackState:
        """The state after one more run (pure).

        >>> failed = CallbackOutcome("on_start", "primary", "failure", 1.5, 4, 2, 10.0)
        >>> first = CallbackState("m").recorded(failed)
        >>> (first.runs_total, first.failures_total, first.last_success_at)
        (1, 1, None)
        >>> first.recorded(CallbackOutcome("on_start", "primary", "success", 0.2, 2, 2, 20.0)).last_success_at
        20.0
        """
        failed = outcome.result != SUCCESS
        return replace(
            self,
            last=replace(outcome, error=None if outcome.error is None else outcome.error[:MAX_ERROR_CHARS]),
            last_success_at=self.last_success_at if failed else outcome.finished_at,
            runs_total=self.runs_total + 1,
            failures_total=self.failures_total + (1 if failed else 0),
        )

    def as_dict(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CallbackState:
        last = raw.get("last")
        return cls(
            member=str(raw["member"]),
            group=None if raw.get("group") is None else int(raw["group"]),
            last=None if last is None else CallbackOutcome(**last),
            last_success_at=None if raw.get("last_success_at") is None else float(raw["last_success_at"]),
            runs_total=int(raw.get("runs_total", 0)),
            failures_total=int(raw.get("failures_total", 0)),
        )


def state_path(config_path: Path) -> Path:
    """Where a member's callbacks record their outcome: beside its patroni.yml."""
    return config_path.parent / STATE_FILE


def load(path: Path) -> CallbackState | None:
    """The state in path; None if there is no file yet (no callback has finished there)."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CallbackStateError(f"callback state {path} is unreadable: {exc}") from None
    try:
        return CallbackState.from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise CallbackStateError(f"callback state {path} is damaged: {exc!r}") from None


def record(path: Path, member: str, group: int, outcome: CallbackOutcome) -> CallbackState:
    """Add outcome to the file in path (started afresh if missing or damaged) and write it atomically."""
    try:
        previous = load(path)
    except CallbackStateError:
        previous = None
    if previous is None or previous.member != member:
        previous = CallbackState(member, group)
    previous = replace(previous, group=group)
    state = previous.recorded(outcome)
    _write_atomically(path, json.dumps(state.as_dict(), indent=2, sort_keys=True) + "\n")
    return state


def _write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one (rename within one directory)."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # Nothing secret inside; the exporter may run as another user than Patroni.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
