"""Fixtures shared by the scenario modules; each module supplies its own `formation`."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest
from harness import RUNNING, LocalFormation, diagnostics
from write_load import write_load

from patroni_citus import patroni_dcs
from patroni_citus.drill import Load


@pytest.fixture
def writer(formation: LocalFormation) -> Iterator[Load]:
    """A write load through the coordinator for the length of one test (write_load.write_load)."""
    load = write_load(formation)
    load.start()
    try:
        yield load
    finally:
        load.stop()


@pytest.fixture(autouse=True, scope="module")
def _dcs_clients_closed() -> Iterator[None]:
    """A module's formation is gone after it: Patroni's clients in this process must not outlive it."""
    yield
    patroni_dcs.close_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    """A failed scenario's report carries the formation's DCS keys and log tails: CI keeps nothing else."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and RUNNING:
        report.sections.append(("formation at failure", diagnostics(RUNNING[-1])))
