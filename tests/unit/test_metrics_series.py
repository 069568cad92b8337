"""The exporter's series, rendered from formation snapshots (pure: no DCS, no PostgreSQL, no HTTP)."""

from __future__ import annotations

import ast
import inspect
import threading
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime

from formation_snapshots import C0, W1, W2, healthy
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from patroni_citus import health
from patroni_citus.callback_state import CallbackOutcome, CallbackState
from patroni_citus.metrics import (
    ROLES,
    FormationCollector,
    Reading,
    callback_families,
    formation_families,
)
from patroni_citus.planner import GroupLeader, NodeRow
from patroni_citus.status import StatusResult
from patroni_citus.topology import FormationSnapshot

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
BOUNDED_LABELS = {"group", "member", "role", "kind", "part", "version", "event", "result"}


class Families:
    """A fixed list of families as a collector, to render them exactly as a scrape would."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def scrape(families: Iterable[Metric]) -> Samples:
    """Render through prometheus_client's text format and parse it back: what Prometheus would store."""
    registry = CollectorRegistry()
    registry.register(Families(families))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((f"patroni_citus_{name}", tuple(sorted(labels.items()))))


def reading_of(snapshot: FormationSnapshot) -> Reading:
    result = StatusResult(snapshot, health.find_problems(snapshot), datetime.now(UTC))
    timings = {"dcs": 0.01, "members": 0.02, "metadata": 0.015, "total": 0.04}
    return Reading(result, None, timings)


def render(snapshot: FormationSnapshot, outages: dict[int, float] | None = None) -> Samples:
    return scrape(formation_families(reading_of(snapshot), outages or {}, failures_total=0))


def test_a_healthy_formation() -> None:
    samples = render(healthy())
    assert value(samples, "up") == 1 and value(samples, "metadata_up") == 1
    for group in ("0", "1"):
        assert value(samples, "group_leader_present", group=group) == 1
        assert value(samples, "group_primary_row_at_leader", group=group) == 1
        assert value(samples, "group_primary_row_not_at_leader_seconds", group=group) == 0
    assert value(samples, "worker_metadata_synced", group="1") == 1
    assert value(samples, "worker_metadata_synced", group="0") is None  # the coordinator is no worker
    assert value(samples, "member_role", group="1", member="w1", role="leader") == 1
    assert value(samples, "member_role", group="1", member="w2", role="replica") == 1
    assert value(samples, "member_role", group="1", member="w2", role="leader") == 0
    assert value(samples, "member_replication_lag_bytes", group="1", member="w2") == 0
    assert value(samples, "member_replication_lag_bytes", group="1", member="w1") is None
    assert value(samples, "read_duration_seconds", part="dcs") == 0.01
    assert all(value(samples, "problems", kind=kind) == 0 for kind in health.KINDS)


def test_a_row_pointing_elsewhere_and_its_outage() -> None:
    snapshot = replace(healthy(), rows=[NodeRow(1, 0, C0, shouldhaveshards=False), NodeRow(2, 1, W2)])
    samples = render(snapshot, outages={1: 12.5})
    assert value(samples, "group_primary_row_at_leader", group="1") == 0
    assert value(samples, "group_primary_row_present", group="1") == 1
    assert value(samples, "group_primary_row_not_at_leader_seconds", group="1") == 12.5
    assert value(samples, "problems", kind="row_not_at_leader") == 1


def test_a_group_without_a_leader() -> None:
    snapshot = replace(healthy(), leaders=[GroupLeader(0, C0)], leaderless_groups=[1])
    samples = render(snapshot)
    assert value(samples, "group_leader_present", group="1") == 0
    assert value(samples, "group_primary_row_at_leader", group="1") == 0
    assert value(samples, "problems", kind="no_leader") == 1


def test_unsynced_metadata_and_secondaries_that_do_not_match() -> None:
    snapshot = replace(
        healthy(),
        leaders=[GroupLeader(0, C0), GroupLeader(1, W1, frozenset({W2}))],
        rows=[NodeRow(1, 0, C0, shouldhaveshards=False), NodeRow(2, 1, W1, metadatasynced=False)],
    )
    samples = render(snapshot)
    assert value(samples, "worker_metadata_synced", group="1") == 0
    assert value(samples, "group_secondary_rows", group="1") == 0
    assert value(samples, "group_secondary_rows_expected", group="1") == 1
    assert value(samples, "group_secondary_rows_match", group="1") == 0
    assert value(samples, "problems", kind="metadata_not_synced") == 1
    matched = replace(snapshot, rows=[*(snapshot.rows or []), NodeRow(3, 1, W2, noderole="secondary")])
    assert value(render(matched), "group_secondary_rows_match", group="1") == 1


def test_an_unreadable_coordinator_leaves_row_series_out_rather_than_zero() -> None:
    samples = render(replace(healthy(), rows=None, coordinator_error="refused"))
    assert value(samples, "up") == 1 and value(samples, "metadata_up") == 0
    assert value(samples, "group_leader_present", group="1") == 1
    assert value(samples, "group_primary_row_at_leader", group="1") is None
    assert value(samples, "problems", kind="coordinator_unreachable") == 1


def test_a_failed_read_says_so_and_nothing_else() -> None:
    samples = scrape(formation_families(Reading(None, "DCS down", {"dcs": 5.0}), {}, failures_total=3))
    assert value(samples, "up") == 0 and value(samples, "metadata_up") == 0
    assert value(samples, "read_failures_total") == 3
    assert not [key for key in samples if key[0].startswith("patroni_citus_group_")]


def test_names_and_labels_follow_prometheus_conventions() -> None:
    snapshot = replace(healthy(), leaders=[GroupLeader(0, C0), GroupLeader(1, W1, frozenset({W2}))])
    states = [CallbackState("w1", 1, outcome(), 10.0, 3, 1)]
    families = [*formation_families(reading_of(snapshot), {}, 0), *callback_families(states, 0)]
    for family in families:
        assert family.name.startswith("patroni_citus_"), family.name
        for sample in family.samples:
            assert set(sample.labels) <= BOUNDED_LABELS, (sample.name, sample.labels)
            assert not any(host in sample.labels.values() for host in ("10.0.0.1", "10.0.1.1"))
        if family.type == "counter":
            assert all(sample.name.endswith(("_total", "_created")) for sample in family.samples)
    roles = {s.labels["role"] for f in families if f.name.endswith("member_role") for s in f.samples}
    assert roles == set(ROLES)


def test_every_kind_health_reports_is_listed_in_kinds() -> None:
    """Parse health.py: every Problem("kind", ...) literal (and the UNSYNCED constant) is in KINDS."""
    tree = ast.parse(inspect.getsource(health))
    found = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "Problem"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert found and found | {health.UNSYNCED} <= set(health.KINDS)
    assert len(set(health.KINDS)) == len(health.KINDS)


def outcome(result: str = "success", **changes: object) -> CallbackOutcome:
    base = CallbackOutcome("on_role_change", "primary", result, 1.25, 3, 2, 1700000000.0)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_callback_series_per_member() -> None:
    states = [
        CallbackState("w1", 1, outcome(), 1700000000.0, 4, 1),
        CallbackState("w2", 1, outcome("failure", error="coordinator down"), None, 2, 2),
        CallbackState("c0", 0),
    ]
    samples = scrape(callback_families(states, unreadable=1))
    w1, w2 = {"group": "1", "member": "w1"}, {"group": "1", "member": "w2"}
    assert value(samples, "callback_last_success_timestamp_seconds", **w1) == 1700000000.0
    assert value(samples, "callback_last_success_timestamp_seconds", **w2) is None
    assert value(samples, "callback_failures_total", **w2) == 2
    assert value(samples, "callback_runs_total", **w1) == 4
    assert value(samples, "callback_duration_seconds", **w1) == 1.25
    assert value(samples, "callback_attempts", **w1) == 3 and value(samples, "callback_retries", **w1) == 1
    assert value(samples, "callback_last_run_success", **w2) == 0
    info = {**w2, "event": "on_role_change", "role": "primary", "result": "failure"}
    assert value(samples, "callback_last_run_info", **info) == 1
    assert value(samples, "callback_runs_total", group="0", member="c0") == 0
    assert value(samples, "callback_state_unreadable") == 1


def test_the_collector_tracks_outages_and_failures_across_scrapes() -> None:
    snapshot = replace(healthy(), rows=[NodeRow(1, 0, C0, shouldhaveshards=False), NodeRow(2, 1, W2)])
    readings = iter([reading_of(snapshot), Reading(None, "DCS down", {}), reading_of(snapshot)])
    now = iter([100.0, 107.0])
    collector = FormationCollector(lambda: next(readings), clock=lambda: next(now))
    try:
        first, second, third = (scrape(collector.collect()) for _ in range(3))
    finally:
        collector.close()
    assert value(first, "group_primary_row_not_at_leader_seconds", group="1") == 0
    assert value(second, "up") == 0 and value(second, "read_failures_total") == 1
    assert value(third, "group_primary_row_not_at_leader_seconds", group="1") == 7


def test_a_read_slower_than_the_timeout_answers_up_zero_and_is_shared() -> None:
    release = threading.Event()
    calls: list[int] = []

    def slow_read() -> Reading:
        calls.append(1)
        release.wait(10)
        return reading_of(healthy())

    collector = FormationCollector(slow_read, read_timeout=0.05)
    try:
        assert value(scrape(collector.collect()), "up") == 0
        assert value(scrape(collector.collect()), "up") == 0  # joins the read in flight
        release.set()
        collector_reading = FormationCollector(slow_read, read_timeout=5)
        try:
            assert value(scrape(collector_reading.collect()), "up") == 1
        finally:
            collector_reading.close()
    finally:
        release.set()
        collector.close()
    assert len(calls) == 2  # one per collector: the second scrape did not start another


def test_a_member_that_cannot_be_queried() -> None:
    snapshot = healthy()
    members = [replace(m, error="refused") if m.name == "w2" else m for m in snapshot.members]
    samples = render(replace(snapshot, members=members))
    assert value(samples, "member_reachable", group="1", member="w2") == 0
    assert value(samples, "member_reachable", group="1", member="w1") == 1
    assert value(samples, "problems", kind="member_unreachable") == 1
