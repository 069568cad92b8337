"""The formation as Prometheus metrics: status's own read and judgement, turned into series per scrape.

No cache: every scrape reads the formation anew through status.collect (the DCS, every member and
pg_dist_node), so a series is never older than the scrape that carries it. Scrapes that arrive
while a read is in flight wait for that read instead of starting another (two Prometheus servers
cost one read at a time, not two at once), and a read that outlasts --read-timeout answers with
``patroni_citus_up 0`` rather than letting Prometheus time the whole scrape out.

Label values are bounded by the formation itself (group numbers, member names) or by fixed tuples
here and in health.KINDS; nothing free-form (hosts, error text) becomes a label.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from patroni_citus import __version__, callback_state, health, status, topology
from patroni_citus.callback_state import CallbackState, CallbackStateError
from patroni_citus.dcs import RUNNING_STATES
from patroni_citus.errors import PatroniCitusError
from patroni_citus.planner import primary_rows, secondary_rows

log = logging.getLogger("patroni_citus")
PREFIX = "patroni_citus_"
#: A member's role as the role label says it; Patroni's other roles (standby_leader, demoted, ...)
#: are "other", so the label never takes a value a dashboard does not know.
ROLES = ("leader", "replica", "other")
TOTAL = "total"  # read_duration_seconds' part for the whole read


@dataclass(frozen=True)
class Reading:
    """One read of the formation, or why it failed, and the seconds each part took."""

    result: status.StatusResult | None
    error: str | None
    timings: dict[str, float]

    @property
    def metadata_read(self) -> bool:
        return self.result is not None and self.result.snapshot.rows is not None


def read(address: topology.FormationAddress) -> Reading:
    """Read and judge the formation exactly as `status` does (without its sync grace wait)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        result = status.collect(address, 0.0, lambda _line: None, timings)
        error = None
    except Exception as exc:  # the exporter must keep answering whatever one read ran into
        if not isinstance(exc, PatroniCitusError):
            log.exception("reading the formation failed unexpectedly")
        result, error = None, str(exc)
    timings[TOTAL] = time.perf_counter() - started
    return Reading(result, error, timings)


def member_role(is_leader: bool, role: str) -> str:
    """The bounded role label of a member.

    >>> member_role(True, "primary"), member_role(False, "replica"), member_role(False, "demoted")
    ('leader', 'replica', 'other')
    """
    if is_leader:
        return "leader"
    return "replica" if role == "replica" else "other"


@dataclass
class RowOutages:
    """Since when (exporter clock) each group's primary row has not pointed at its leader."""

    since: dict[int, float] = field(default_factory=dict)

    def observe(self, at_leader: dict[int, bool], now: float) -> dict[int, float]:
        """Seconds each group has been without its primary registered at its leader (0 when it is).

        >>> outages = RowOutages()
        >>> outages.observe({1: False, 2: True}, 100.0), outages.observe({1: False, 2: True}, 104.5)
        ({1: 0.0, 2: 0.0}, {1: 4.5, 2: 0.0})
        >>> outages.observe({1: True, 2: True}, 110.0)
        {1: 0.0, 2: 0.0}
        """
        for group, registered in at_leader.items():
            if registered:
                self.since.pop(group, None)
            else:
                self.since.setdefault(group, now)
        for gone in set(self.since) - set(at_leader):
            del self.since[gone]
        return {group: now - self.since[group] if group in self.since else 0.0 for group in at_leader}


def _gauge(name: str, documentation: str, labels: Sequence[str] = (), unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, labels=list(labels), unit=unit)


def primary_rows_at_leader(result: status.StatusResult) -> dict[int, bool]:
    """Per group: whether pg_dist_node's primary row points at the group's current leader."""
    snapshot = result.snapshot
    rows = primary_rows(snapshot.rows or [])
    leaders = {leader.group: leader.endpoint for leader in snapshot.leaders}
    return {
        group: group in rows and group in leaders and rows[group].endpoint == leaders[group]
        for group in snapshot.scopes_by_group
    }


def read_families(reading: Reading, failures_total: int) -> list[Metric]:
    """Whether the read worked, and what each part of it cost."""
    up = _gauge("up", "1 when the last read of the formation from the DCS worked, else 0.")
    up.add_metric([], 1.0 if reading.result is not None else 0.0)
    metadata_up = _gauge("metadata_up", "1 when the last read got the coordinator's pg_dist_node, else 0.")
    metadata_up.add_metric([], 1.0 if reading.metadata_read else 0.0)
    duration = _gauge(
        "read_duration_seconds", "Seconds the last read took, per part (total: the whole read).", ["part"]
    )
    for part in (*topology.READ_PARTS, TOTAL):
        if part in reading.timings:
            duration.add_metric([part], reading.timings[part])
    failures = CounterMetricFamily(
        PREFIX + "read_failures_total", "Reads of the formation that failed since the exporter started."
    )
    failures.add_metric([], float(failures_total))
    info = _gauge(
        "exporter_info", "Always 1; the version label says which patroni-citus answers.", ["version"]
    )
    info.add_metric([__version__], 1.0)
    return [up, metadata_up, duration, failures, info]


def member_families(result: status.StatusResult) -> list[Metric]:
    """Per member: role, running, reachable, replication lag, pending restart."""
    labels = ["group", "member"]
    role = _gauge(
        "member_role", "1 for the member's current role (leader, replica, other), else 0.", [*labels, "role"]
    )
    running = _gauge("member_running", "1 when Patroni reports the member's PostgreSQL running.", labels)
    reachable = _gauge("member_reachable", "1 when the exporter could query the member's PostgreSQL.", labels)
    lag_bytes = _gauge(
        "member_replication_lag", "Bytes a replica is behind its leader (DCS view).", labels, "bytes"
    )
    lag_seconds = _gauge(
        "member_replication_lag",
        "Seconds a replica's replay is behind (0 when caught up).",
        labels,
        "seconds",
    )
    pending = _gauge("member_pending_restart", "1 when Patroni flags a pending restart.", labels)
    for member in result.snapshot.members:
        values = [str(member.group), member.name]
        current = member_role(member.is_leader, member.role)
        for name in ROLES:
            role.add_metric([*values, name], 1.0 if name == current else 0.0)
        running.add_metric(values, 1.0 if member.state in RUNNING_STATES else 0.0)
        reachable.add_metric(values, 1.0 if member.error is None and member.endpoint is not None else 0.0)
        if member.lag is not None:
            lag_bytes.add_metric(values, float(member.lag))
        if member.replay_lag_seconds is not None:
            lag_seconds.add_metric(values, member.replay_lag_seconds)
        pending.add_metric(values, 1.0 if member.pending_restart else 0.0)
    return [role, running, reachable, lag_bytes, lag_seconds, pending]


def group_families(result: status.StatusResult, outages: dict[int, float]) -> list[Metric]:
    """Per group: leader, members, and (when pg_dist_node was read) whether its rows match Patroni."""
    snapshot = result.snapshot
    leaders = {leader.group: leader for leader in snapshot.leaders}
    present = _gauge("group_leader_present", "1 when the group has a running Patroni leader.", ["group"])
    members = _gauge("group_members", "Members the DCS lists for the group.", ["group"])
    for group in snapshot.scopes_by_group:
        present.add_metric([str(group)], 1.0 if group in leaders else 0.0)
        members.add_metric([str(group)], float(sum(1 for m in snapshot.members if m.group == group)))
    families: list[Metric] = [present, members]
    if snapshot.rows is None:
        return families  # unknown, not wrong: patroni_citus_metadata_up says why they are absent
    row_present = _gauge(
        "group_primary_row_present", "1 when pg_dist_node has a primary row for the group.", ["group"]
    )
    at_leader = _gauge(
        "group_primary_row_at_leader",
        "1 when the group's pg_dist_node primary row points at its leader.",
        ["group"],
    )
    outage = _gauge(
        "group_primary_row_not_at_leader",
        "Seconds the group's primary row has not pointed at its leader, seen by this exporter (0: it does).",
        ["group"],
        "seconds",
    )
    rows_now = primary_rows(snapshot.rows)
    for group, registered in primary_rows_at_leader(result).items():
        row_present.add_metric([str(group)], 1.0 if group in rows_now else 0.0)
        at_leader.add_metric([str(group)], 1.0 if registered else 0.0)
        outage.add_metric([str(group)], outages.get(group, 0.0))
    return [*families, row_present, at_leader, outage, *_secondary_families(result), _synced_family(result)]


def _secondary_families(result: status.StatusResult) -> list[Metric]:
    snapshot = result.snapshot
    leaders = {leader.group: leader for leader in snapshot.leaders}
    by_group = secondary_rows(snapshot.rows or [])
    rows = _gauge("group_secondary_rows", "Secondary rows pg_dist_node holds for the group.", ["group"])
    expected = _gauge(
        "group_secondary_rows_expected",
        "Running replicas of the group that should be secondaries.",
        ["group"],
    )
    match = _gauge(
        "group_secondary_rows_match",
        "1 when the group's secondary rows are exactly its running replicas (0 missing or stale ones).",
        ["group"],
    )
    for group in snapshot.scopes_by_group:
        registered = {row.endpoint for row in by_group.get(group, [])}
        wanted = leaders[group].secondaries if group in leaders else frozenset()
        rows.add_metric([str(group)], float(len(registered)))
        expected.add_metric([str(group)], float(len(wanted)))
        match.add_metric([str(group)], 1.0 if group in leaders and registered == wanted else 0.0)
    return [rows, expected, match]


def _synced_family(result: status.StatusResult) -> Metric:
    synced = _gauge(
        "worker_metadata_synced",
        "1 when the worker group's primary node has Citus metadata synced (hasmetadata and metadatasynced).",
        ["group"],
    )
    for group, row in sorted(primary_rows(result.snapshot.rows or []).items()):
        if group != 0:
            synced.add_metric([str(group)], 1.0 if row.hasmetadata and row.metadatasynced else 0.0)
    return synced


def problem_family(result: status.StatusResult | None) -> Metric:
    """Problems status finds, by kind; every kind is present (0 when none), so alerts never see gaps."""
    problems = _gauge("problems", "Problems `patroni-citus status` reports now, by kind.", ["kind"])
    if result is None:
        return problems
    counts = {kind: 0 for kind in health.KINDS}
    for problem in result.problems:
        counts[problem.kind] = counts.get(problem.kind, 0) + 1
    for kind, count in counts.items():
        problems.add_metric([kind], float(count))
    return problems


def formation_families(reading: Reading, outages: dict[int, float], failures_total: int) -> list[Metric]:
    """Every formation series of one reading (pure: the collector does the reading)."""
    families = [*read_families(reading, failures_total), problem_family(reading.result)]
    if reading.result is not None:
        families += member_families(reading.result) + group_families(reading.result, outages)
    return families


def callback_families(states: Iterable[CallbackState], unreadable: int) -> list[Metric]:
    """Per member, its callbacks' last outcome and counts, from the files they leave (callback_state)."""
    labels = ["group", "member"]
    last_success = _gauge(
        "callback_last_success_timestamp_seconds",
        "Unix time the member's last successful callback ended.",
        labels,
    )
    last_run = _gauge(
        "callback_last_run_timestamp_seconds", "Unix time the member's last callback ended.", labels
    )
    succeeded = _gauge("callback_last_run_success", "1 when the member's last callback succeeded.", labels)
    duration = _gauge("callback_duration", "Seconds the member's last callback took.", labels, "seconds")
    attempts = _gauge("callback_attempts", "Tries the last callback's retried steps took, together.", labels)
    retries = _gauge(
        "callback_retries", "Retries in the last callback (attempts beyond one per step).", labels
    )
    info = _gauge(
        "callback_last_run_info",
        "Always 1: the last callback's event, role and result.",
        [*labels, "event", "role", "result"],
    )
    runs = CounterMetricFamily(
        PREFIX + "callback_runs_total", "Callbacks that ran to their end.", labels=labels
    )
    failures = CounterMetricFamily(
        PREFIX + "callback_failures_total", "Callbacks that ended with a step that gave up.", labels=labels
    )
    for state in states:
        values = ["" if state.group is None else str(state.group), state.member]
        runs.add_metric(values, float(state.runs_total))
        failures.add_metric(values, float(state.failures_total))
        if state.last_success_at is not None:
            last_success.add_metric(values, state.last_success_at)
        last = state.last
        if last is None:
            continue
        last_run.add_metric(values, last.finished_at)
        succeeded.add_metric(values, 1.0 if last.result == callback_state.SUCCESS else 0.0)
        duration.add_metric(values, last.duration_seconds)
        attempts.add_metric(values, float(last.attempts))
        retries.add_metric(values, float(max(0, last.attempts - last.steps)))
        info.add_metric([*values, last.event, last.role, last.result], 1.0)
    unreadable_family = _gauge("callback_state_unreadable", "Callback state files that could not be read.")
    unreadable_family.add_metric([], float(unreadable))
    return [
        last_success,
        last_run,
        succeeded,
        duration,
        attempts,
        retries,
        info,
        runs,
        failures,
        unreadable_family,
    ]


def read_callback_states(paths: Sequence[Path]) -> tuple[list[CallbackState], int]:
    """The states in paths (a missing file: no callback has ended there yet), and how many were unreadable."""
    states, unreadable = [], 0
    for path in paths:
        try:
            state = callback_state.load(path)
        except CallbackStateError as exc:
            log.warning("%s", exc)
            unreadable += 1
            continue
        if state is not None:
            states.append(state)
    return states, unreadable


class SingleFlight:
    """At most one read at a time; callers wait (up to a timeout) for the one in flight."""

    def __init__(self, read_once: Callable[[], Reading]) -> None:
        self._read_once = read_once
        self._lock = threading.Lock()
        self._future: concurrent.futures.Future[Reading] | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="formation-read")

    def get(self, timeout: float) -> Reading:
        with self._lock:
            if self._future is None or self._future.done():
                self._future = self._pool.submit(self._read_once)
            future = self._future
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            return Reading(None, f"the read took longer than {timeout:g}s (--read-timeout)", {})

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class FormationCollector:
    """prometheus_client collector: one formation read per scrape, plus the callback state files."""

    def __init__(
        self,
        read_once: Callable[[], Reading],
        callback_paths: Sequence[Path] = (),
        read_timeout: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reads = SingleFlight(read_once)
        self._callback_paths = list(callback_paths)
        self._read_timeout = read_timeout
        self._clock = clock
        self._outages = RowOutages()
        self._failures = 0
        self._last_error: str | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        reading = self._reads.get(self._read_timeout)
        with self._lock:
            if reading.error != self._last_error:  # one line per change, not one per scrape
                if reading.error is None:
                    log.warning("reading the formation works again")
                else:
                    log.warning("cannot read the formation: %s", reading.error)
                self._last_error = reading.error
            if reading.result is None:
                self._failures += 1
                outages: dict[int, float] = {}
            elif reading.metadata_read:
                outages = self._outages.observe(primary_rows_at_leader(reading.result), self._clock())
            else:
                outages = {}
            failures = self._failures
        yield from formation_families(reading, outages, failures)
        yield from callback_families(*read_callback_states(self._callback_paths))

    def close(self) -> None:
        self._reads.close()


def make_registry(
    address: topology.FormationAddress, callback_paths: Sequence[Path], read_timeout: float
) -> tuple[CollectorRegistry, FormationCollector]:
    """The exporter's registry: the formation collector, plus the process's own CPU, memory and Python."""
    registry = CollectorRegistry()
    collector = FormationCollector(lambda: read(address), callback_paths, read_timeout)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry, collector
