"""The callbacks' outcome file: counters, atomic replacement, damaged files, and what the callbacks write."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from patroni_citus import callback_state, callbacks
from patroni_citus.callback_state import CallbackOutcome, CallbackState, CallbackStateError

OK = CallbackOutcome("on_start", "primary", "success", 0.4, 3, 3, 1000.0)
FAILED = replace(OK, result="failure", finished_at=2000.0, error="registration: coordinator down " * 30)


def test_a_missing_file_is_no_state_yet(tmp_path: Path) -> None:
    assert callback_state.load(tmp_path / callback_state.STATE_FILE) is None


def test_outcomes_accumulate_and_the_last_success_stays(tmp_path: Path) -> None:
    path = tmp_path / callback_state.STATE_FILE
    callback_state.record(path, "w1", 1, OK)
    state = callback_state.record(path, "w1", 1, FAILED)
    assert state == callback_state.load(path)
    assert (state.runs_total, state.failures_total, state.last_success_at) == (2, 1, 1000.0)
    assert state.last is not None and state.last.result == "failure" and state.group == 1
    assert state.last.error is not None and len(state.last.error) == callback_state.MAX_ERROR_CHARS
    assert [p.name for p in tmp_path.iterdir()] == [callback_state.STATE_FILE]  # no temporary left
    assert json.loads(path.read_text())["version"] == callback_state.FORMAT_VERSION
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("content", ["{not json", '{"runs_total": 3}', '{"member": "w1", "last": {"x": 1}}'])
def test_a_damaged_file_is_reported_and_then_started_afresh(tmp_path: Path, content: str) -> None:
    path = tmp_path / callback_state.STATE_FILE
    path.write_text(content)
    with pytest.raises(CallbackStateError, match=str(path)):
        callback_state.load(path)
    assert callback_state.record(path, "w1", 1, OK).runs_total == 1


def test_another_members_file_is_not_continued(tmp_path: Path) -> None:
    path = tmp_path / callback_state.STATE_FILE
    callback_state.record(path, "old-name", 1, OK)
    assert callback_state.record(path, "w1", 1, OK) == CallbackState("w1", 1, OK, 1000.0, 1, 0)


def test_the_file_lives_beside_the_config() -> None:
    assert callback_state.state_path(Path("/etc/patroni/patroni.yml")) == Path(
        "/etc/patroni/patroni-citus-callbacks.json"
    )


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / callback_state.STATE_FILE
    callback_state.record(path, "w1", 1, OK)
    before = path.read_text()
    with pytest.raises(TypeError):  # not JSON-serialisable: the write fails before the rename
        callback_state.record(path, "w1", 1, replace(OK, role=object()))  # type: ignore[arg-type]
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == [callback_state.STATE_FILE]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_tally_counts_attempts_and_steps_that_gave_up() -> None:
    tally = callbacks.Tally()
    tries = iter([RuntimeError, None])

    def flaky() -> str:
        if next(tries) is not None:
            raise callbacks.convergence.StillConvergingError("not yet")
        return "done"

    assert tally.retried("step", flaky, timeout=30) == "done"
    tally.best_effort("doomed", lambda: tally.retried("doomed", _always_fails, timeout=0))
    assert (tally.attempts, tally.steps) == (3, 2)
    assert tally.failed == ["doomed: no coordinator"]


def _always_fails() -> None:
    raise callbacks.convergence.NotLeaderError("no coordinator")
