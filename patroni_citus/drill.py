"""Failover drills on a local formation: a client load, a fault, and the figures users care about.

A writer inserts one small distributed row every 50 ms and a reader reads the last acknowledged one,
both through the coordinator (multi-host libpq, read-write); a second reader does the same in a
session with ``citus.use_secondary_nodes = 'always'``, so Citus sends it to the groups' secondaries.
The coordinator-pooler-switchover scenario sends the writer and the reader through the formation's
PgBouncer instead (no secondary reader: PgBouncer 1.18 passes no startup options); its longest
statement latency is the pause clients saw.
Each run injects one fault and reports how long until writes work again, how long metadata lagged
the promotion, failures of each load, the longest latency, and acknowledged writes lost (must be
0). Used by `patroni-citus drill` and benchmarks/.
"""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patroni_citus import metadata, patroni_api, switchover
from patroni_citus.errors import PatroniCitusError
from patroni_citus.local import access
from patroni_citus.local import members as local_members
from patroni_citus.local.layout import DATABASE, SUPERUSER, FormationState, MemberLayout
from patroni_citus.poll import poll_until
from patroni_citus.template import default_scripts_dir

SCENARIOS = (
    "worker-kill",
    "worker-switchover",
    "worker-patronictl-switchover",
    "worker-restart",
    "coordinator-kill",
    "coordinator-switchover",
    "coordinator-pooler-switchover",
)
POOLED = "coordinator-pooler-switchover"
"""Its load goes through the formation's PgBouncer (`local up --pooler`), not to the coordinator directly."""
FIGURES = (
    "fault_to_first_write_s",
    "promotion_to_metadata_s",
    "failed_writes",
    "failed_reads",
    "failed_secondary_reads",
    "max_latency_s",
    "lost_acknowledged_writes",
)
TABLE = "patroni_citus_drill"
"""The drill's table; its statements are patroni_citus/sql/drill_*.sql."""
SESSION_OPTIONS = "-c statement_timeout=60000"
SECONDARY_READS = "-c citus.use_secondary_nodes=always"  # a connection-start setting in Citus
SLOW_S = 1.0
Reporter = Callable[[str], None]


class DrillError(PatroniCitusError):
    """A drill could not run or its formation did not recover."""


@dataclass
class Outcome:
    kind: str
    started: float
    finished: float
    ok: bool


@dataclass
class Load:
    """Writer and reader threads against the coordinator; every outcome is recorded with timestamps."""

    dsn: str
    ids: Iterator[int]
    interval: float = 0.05
    pooled: bool = False
    """Through PgBouncer: no startup options (PgBouncer 1.18 refuses them), so no secondary reads."""
    only: tuple[str, ...] = ()
    """Start only these kinds ("write", "read", "secondary-read"); all the target allows when empty."""
    outcomes: list[Outcome] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def loop(self, kind: str, statement: Callable[[metadata.Connection], None], options: str) -> None:
        """Run statement every interval until stopped, reconnecting after any error; record each outcome."""
        connection = None
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                if connection is None:
                    connection = metadata.connect_dsn(self.dsn, 2, None if self.pooled else options)
                statement(connection)
                self.outcomes.append(Outcome(kind, started, time.monotonic(), True))
            except PatroniCitusError:
                self.outcomes.append(Outcome(kind, started, time.monotonic(), False))
                if connection is not None:
                    connection.close()
                connection = None
            time.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        if connection is not None:
            connection.close()

    def _write(self, connection: metadata.Connection) -> None:
        row_id = next(self.ids)
        metadata.drill_write(connection, row_id)
        self.acknowledged.append(row_id)

    def _read(self, connection: metadata.Connection) -> None:
        if self.acknowledged:
            metadata.drill_read(connection, self.acknowledged[-1])

    def start(self) -> None:
        loads = [
            ("write", self._write, SESSION_OPTIONS),
            ("read", self._read, SESSION_OPTIONS),
            ("secondary-read", self._read, f"{SESSION_OPTIONS} {SECONDARY_READS}"),
        ]
        for kind, statement, options in loads[:2] if self.pooled else loads:
            if self.only and kind not in self.only:
                continue
            thread = threading.Thread(target=self.loop, args=(kind, statement, options), daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(70)


@dataclass
class Watcher:
    """Polls (every 50 ms) when a new leader appears and when pg_dist_node follows it."""

    members: list[MemberLayout]
    old_leader: str
    group: int
    dsn: str
    restarted_from: str | None = None
    """For a restart: the old leader's postmaster_start_time; the same member comes back as leader."""
    promoted_at: float | None = None
    new_leader: MemberLayout | None = None
    metadata_at: float | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def _row_points_at_new_leader(self) -> bool:
        assert self.new_leader is not None
        try:
            with closing(metadata.connect_dsn(self.dsn, 1)) as connection:
                rows = metadata.read_nodes(connection)
        except PatroniCitusError:
            return False
        ports = [row.endpoint.port for row in rows if row.groupid == self.group and row.noderole == "primary"]
        return ports == [self.new_leader.postgres_port]

    def run(self) -> None:
        while not self.stopping.is_set() and self.metadata_at is None:
            if self.new_leader is None:
                for member in self.members:
                    if (member.name == self.old_leader) != (self.restarted_from is not None):
                        continue
                    try:
                        status = patroni_api.member_status(member.rest_url, timeout=0.5)
                    except PatroniCitusError:
                        continue
                    restarted = status.get("postmaster_start_time") != self.restarted_from
                    if (
                        status.get("role") in ("primary", "master")
                        and status.get("state") == "running"
                        and (self.restarted_from is None or restarted)
                    ):
                        self.promoted_at, self.new_leader = time.monotonic(), member
            elif self._row_points_at_new_leader():
                self.metadata_at = time.monotonic()
            time.sleep(0.05)


def _leader(members: list[MemberLayout]) -> MemberLayout | None:
    for member in members:
        try:
            if patroni_api.member_status(member.rest_url, timeout=1).get("role") in ("primary", "master"):
                return member
        except PatroniCitusError:
            continue
    return None


def _wait(what: str, probe: Callable[[], bool], timeout: float) -> None:
    if not poll_until(probe, timeout, 0.2):
        raise DrillError(f"timed out after {timeout:.0f}s waiting for {what}")


def _ready_to_fail_over(members: list[MemberLayout], synchronous: bool) -> bool:
    """A leader, a standby Patroni may promote, and every other member streaming too.

    Every member: a fault drilled while a rejoining member is still restarting (pg_rewind stops and
    starts it again) would measure that member's absence, not the failover.
    """
    wanted = ("sync_standby",) if synchronous else ("replica", "sync_standby")
    for member in members:
        try:
            cluster = patroni_api.cluster_status(member.rest_url, timeout=1)
        except PatroniCitusError:
            continue
        listed = cluster.get("members", [])
        leaders = [m for m in listed if m.get("role") == "leader" and m.get("state") == "running"]
        standbys = [m for m in listed if m.get("role") in wanted and m.get("state") == "streaming"]
        others_streaming = all(m.get("role") == "leader" or m.get("state") == "streaming" for m in listed)
        return bool(leaders and standbys) and len(listed) == len(members) and others_streaming
    return False


def _settled(members: list[MemberLayout], synchronous: bool, quiet_s: float = 3.0) -> bool:
    """Ready to fail over now and still after quiet_s seconds (no member in a restart cycle)."""
    if not _ready_to_fail_over(members, synchronous):
        return False
    time.sleep(quiet_s)
    return _ready_to_fail_over(members, synchronous)


def prepare_table(dsn: str) -> None:
    """The drill's distributed table, created once."""
    with closing(metadata.connect_dsn(dsn, 5)) as connection:
        metadata.prepare_drill_table(connection)


def ids_on_group(dsn: str, group: int, start: int) -> Iterator[int]:
    """Row ids whose shard lives on group, so every write exercises the faulted group (all ids if unknown)."""
    try:
        with closing(metadata.connect_dsn(dsn, 5)) as connection:
            ids = metadata.drill_ids_on_group(connection, group, start)
    except PatroniCitusError:
        ids = []
    return iter(ids) if ids else iter(range(start, start + 10**9))


def run_once(base_dir: Path, scenario: str, report: Reporter, run_number: int = 0) -> dict[str, float]:
    """One fault on a running local formation; returns this run's figures. Leaves the formation whole."""
    state = FormationState.load(base_dir)
    if state is None:
        raise DrillError(f"no local formation in {base_dir}")
    layout = state.layout
    group = 0 if scenario.startswith("coordinator") else 1
    members = layout.group_members(group)
    dsn = layout.coordinator_dsn(DATABASE, SUPERUSER)
    pooled = scenario == POOLED
    if pooled and not layout.pooler:
        raise DrillError(f"{scenario} needs a formation with a pooler (`local up --pooler`)")
    _wait(
        f"group {group} to have a standby ready and every member streaming",
        lambda: _settled(members, layout.synchronous),
        180,
    )
    old = _leader(members)
    if old is None:
        raise DrillError(f"group {group} has no leader")
    prepare_table(dsn)
    ids = ids_on_group(dsn, group, (run_number + 1) * 10**7 + int(time.time()) % 10**6 * 1000)
    load_dsn = layout.pooler_dsn(DATABASE, SUPERUSER) if pooled else dsn
    load = Load(load_dsn, ids, pooled=pooled)
    watcher = Watcher(members, old.name, group, dsn)
    if scenario.endswith("restart"):
        watcher.restarted_from = str(patroni_api.member_status(old.rest_url).get("postmaster_start_time"))
    load.start()
    time.sleep(2.0)
    fault = time.monotonic()
    threading.Thread(target=watcher.run, daemon=True).start()
    try:
        _inject(base_dir, layout.mode, scenario, group, old, members, report)
        _wait("pg_dist_node to follow the new leader", lambda: watcher.metadata_at is not None, 120)
        _wait(
            "a distributed write after the fault",
            lambda: any(o.kind == "write" and o.ok and o.started >= fault for o in load.outcomes),
            120,
        )
        time.sleep(1.0)
    finally:
        watcher.stopping.set()
        load.stop()
    figures = _figures(load, watcher, fault, dsn)
    if scenario.endswith("kill"):
        local_members.start_member(base_dir, old.name, report)
    _wait(f"{old.name} to rejoin", lambda: _ready_to_fail_over(members, layout.synchronous), 180)
    return figures


def _inject(
    base_dir: Path,
    mode: str,
    scenario: str,
    group: int,
    old: MemberLayout,
    members: list[MemberLayout],
    report: Reporter,
) -> None:
    if scenario.endswith("kill"):
        local_members.stop_member(base_dir, old.name, kill=True, report=report)
        return
    if scenario == "worker-restart":
        patronictl(mode, group, old, "restart", _scope(base_dir, group), old.name)
        return
    candidate = _switchover_candidate(members, old)
    if scenario == "worker-patronictl-switchover":
        leader, wanted = ("--leader", old.name), ("--candidate", candidate.name)
        patronictl(mode, group, old, "switchover", _scope(base_dir, group), *leader, *wanted)
        return
    if mode == "callbacks" and (group != 0 or scenario == POOLED):
        address = access.formation_address(FormationState.load(base_dir).layout)  # type: ignore[union-attr]
        switchover.switchover(address, group, candidate.name, report)
        return
    rest_auth = FormationState.load_existing(base_dir).layout.rest_auth()
    answer = patroni_api.switchover(old.rest_url, old.name, candidate.name, rest_auth)
    report(f"Patroni: {answer.get('message', answer)}")


def _scope(base_dir: Path, group: int) -> str:
    state = FormationState.load(base_dir)
    assert state is not None
    return state.layout.scope(group)


def patronictl(mode: str, group: int, member: MemberLayout, *command: str) -> None:
    """Patroni's own CLI with the member's patroni.yml, as an operator's runbook would run it."""
    patronictl = str(default_scripts_dir() / "patronictl")
    groups = ["--group", str(group)] if mode == "builtin" else []
    argv = [patronictl, "-c", str(member.config_path), *command, *groups, "--force"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise DrillError(f"patronictl {command[0]} failed: {(result.stderr or result.stdout).strip()[-300:]}")


def _switchover_candidate(members: list[MemberLayout], old: MemberLayout) -> MemberLayout:
    """The synchronous standby where there is one (Patroni refuses any other in synchronous mode)."""
    others = [m for m in members if m.name != old.name]
    try:
        listed = patroni_api.cluster_status(old.rest_url, timeout=2).get("members", [])
    except PatroniCitusError:
        return others[0]
    sync = {m.get("name") for m in listed if m.get("role") == "sync_standby"}
    return next((m for m in others if m.name in sync), others[0])


def recovery_time(outcomes: list[Outcome], fault: float) -> float:
    """When writes recovered: the first good write after the last failed or stalled (> 1 s) one.

    >>> recovery_time([Outcome("write", 1.0, 1.1, False), Outcome("write", 2.0, 2.1, True)], 0.5)
    2.1
    >>> recovery_time([Outcome("write", 1.0, 4.0, True), Outcome("write", 4.0, 4.1, True)], 0.9)
    4.0
    """
    writes = [o for o in outcomes if o.kind == "write" and o.started >= fault]
    troubled = [o.started for o in writes if not o.ok or o.finished - o.started > SLOW_S]
    last_trouble = max(troubled, default=fault)
    return min((o.finished for o in writes if o.ok and o.started >= last_trouble), default=float("nan"))


def _figures(load: Load, watcher: Watcher, fault: float, dsn: str) -> dict[str, float]:
    first_write = recovery_time(load.outcomes, fault)
    with closing(metadata.connect_dsn(dsn, 5)) as connection:
        present = metadata.drill_rows_present(connection, load.acknowledged)
    promotion = watcher.promoted_at
    return {
        "fault_to_first_write_s": first_write - fault,
        "promotion_to_metadata_s": float("nan")
        if promotion is None or watcher.metadata_at is None
        else max(0.0, watcher.metadata_at - promotion),
        "failed_writes": float(sum(1 for o in load.outcomes if o.kind == "write" and not o.ok)),
        "failed_reads": float(sum(1 for o in load.outcomes if o.kind == "read" and not o.ok)),
        "failed_secondary_reads": float("nan")
        if load.pooled
        else float(sum(1 for o in load.outcomes if o.kind == "secondary-read" and not o.ok)),
        "max_latency_s": max((o.finished - o.started for o in load.outcomes), default=0.0),
        "lost_acknowledged_writes": float(len(set(load.acknowledged) - present)),
    }


def summarize(runs: list[dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """min / median / max of every figure over the runs (None where no run could measure it)."""
    summary: dict[str, dict[str, float | None]] = {}
    for name in FIGURES:
        values = [run[name] for run in runs if run[name] == run[name]]  # drop NaN (not measured)
        summary[name] = (
            {"min": min(values), "median": statistics.median(values), "max": max(values)}
            if values
            else {"min": None, "median": None, "max": None}
        )
    return summary


def run_drill(base_dir: Path, scenarios: list[str], runs: int, report: Reporter) -> dict[str, dict[str, Any]]:
    """Every scenario `runs` times on the formation in base_dir; figures summarized per scenario."""
    results: dict[str, dict[str, Any]] = {}
    for scenario in scenarios:
        collected = []
        for number in range(runs):
            report(f"{scenario}: run {number + 1}/{runs}")
            figures = run_once(base_dir, scenario, report, number)
            report(
                f"{scenario}: run {number + 1}: "
                + ", ".join(f"{name}={value:.2f}" for name, value in figures.items())
            )
            collected.append(figures)
        results[scenario] = {"runs": runs, **summarize(collected)}
    return results


def format_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """results[mode][scenario] -> a markdown table of median (min-max) per figure."""
    header = ["mode", "scenario", *FIGURES]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for mode, scenarios in results.items():
        for scenario, figures in scenarios.items():
            cells = [mode, scenario]
            for name in FIGURES:
                f = figures[name]
                measured = f["median"] is not None
                cells.append(f"{f['median']:.2f} ({f['min']:.2f}-{f['max']:.2f})" if measured else "n/a")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
