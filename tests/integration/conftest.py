"""Fixtures shared by the scenario modules; each module supplies its own `formation`."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from harness import LocalFormation
from test_callbacks import Writer


@pytest.fixture
def writer(formation: LocalFormation) -> Iterator[Writer]:
    """A write load through the coordinator for the length of one test."""
    load = Writer(formation)
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    yield load
    load.stop.set()
    thread.join(10)
