"""Planned stops through Patroni's own tools hold clients: patronictl switchover, restart, pending restart.

One formation (coordinator group + one worker group, two members each). The drill's own load
(patroni_citus.drill.Load: a writer and a reader every 20 ms through the coordinator, on ids whose
shards live on the worker group) runs across each planned operation: no statement may fail, none
may wait longer than the hold's bound, and every acknowledged row must be there. With two members
a group has no live secondary while its replica is promoted, so the secondary-read load is not
judged here (test_secondaries covers it with three members).

The fault scenarios stop the worker group's replica first, so a graceful stop of its primary holds
with no one to take over: the hold must end by itself (at its bound), at once when its holder is
killed, and with the coordinator when the coordinator fails over mid-hold; metadata then
converges with no human action, and a sampler checks every committed pg_dist_node meanwhile.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field

import psutil
import psycopg2
import pytest
from formation_steps import leader_of, member_named, metadata_matches_leaders, wait_ready_to_fail_over
from harness import LocalFormation, in_background, local_formation, run_cli, wait_until
from metadata_sampler import Row, Sampler

from patroni_citus import drill, metadata, patroni_api
from patroni_citus.settings import DEFAULT_HOLD_TIMEOUT_S

pytestmark = pytest.mark.integration
GROUP = 1
BOUND_S = DEFAULT_HOLD_TIMEOUT_S


@pytest.fixture(scope="module")
def formation() -> Iterator[LocalFormation]:
    with local_formation(workers=1, members=2) as running:
        yield running


def dsn(formation: LocalFormation) -> str:
    return formation.layout.coordinator_dsn("citus", "postgres")


@pytest.fixture(scope="module", autouse=True)
def sampler(formation: LocalFormation) -> Iterator[Sampler]:
    """Every committed pg_dist_node while the scenarios run: a group-1 primary row only ever names one
    of group 1's members."""
    members = {("127.0.0.1", m.postgres_port) for m in formation.layout.group_members(GROUP)}

    def only_group_members(rows: list[Row]) -> list[str]:
        return [
            f"group {GROUP} primary row at {host}:{port}, not one of its members"
            for _nodeid, group, host, port, role in rows
            if group == GROUP and role == "primary" and (host, port) not in members
        ]

    load = Sampler(dsn(formation), extra_check=only_group_members)
    with in_background(load.run, load.stop):
        yield load
    assert load.samples > 50, f"only {load.samples} samples of pg_dist_node were taken"
    assert not load.violations, f"wrong committed rows seen: {sorted(set(load.violations))}"


@dataclass
class HoldWatch:
    """Polls the coordinator every 20 ms for the group's hold session; remembers the longest seen."""

    dsn: str
    longest: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            age = hold_age(self.dsn)
            if age is not None:
                self.longest = max(self.longest or 0.0, age)
            time.sleep(0.02)


@contextmanager
def client_load(formation: LocalFormation) -> Iterator[tuple[drill.Load, HoldWatch]]:
    """The drill's writer and readers on ids of the worker group's shards, every 20 ms, and a watch
    for the hold (with the stand-in, which distributes nothing, the hold is what the load can show)."""
    drill.prepare_table(dsn(formation))
    ids = drill.ids_on_group(dsn(formation), GROUP, int(time.time() * 1000) % 10**9 * 100)
    load = drill.Load(dsn(formation), ids, interval=0.02)
    watch = HoldWatch(dsn(formation))
    load.start()
    try:
        with in_background(watch.run, watch.stop):
            wait_until("the load to get going", lambda: len(load.acknowledged) > 10, 30)
            yield load, watch
            time.sleep(1.0)  # statements after the operation, too
    finally:
        load.stop()


def assert_held_not_failed(formation: LocalFormation, load: drill.Load, watch: HoldWatch) -> None:
    assert watch.longest is not None, "no hold was seen on the coordinator during the planned stop"
    judged = [o for o in load.outcomes if o.kind in ("write", "read")]
    failed = [o for o in judged if not o.ok]
    assert not failed, f"{len(failed)} of {len(judged)} statements failed instead of waiting"
    longest = max(o.finished - o.started for o in judged)
    print(f"hold {watch.longest:.2f}s; longest statement {longest:.2f}s of {len(judged)}")
    assert longest < BOUND_S, f"a statement waited {longest:.2f}s, beyond the hold's bound"
    with closing(psycopg2.connect(dsn(formation), connect_timeout=5)) as connection, connection.cursor() as c:
        c.execute(f"SELECT count(*) FROM {drill.TABLE} WHERE id = ANY(%s)", (load.acknowledged,))  # noqa: S608
        assert c.fetchone() == (len(load.acknowledged),), "an acknowledged write is missing"
    assert metadata_matches_leaders(formation)


def patronictl(formation: LocalFormation, *command: str) -> None:
    leader = leader_of(formation, GROUP)
    assert leader is not None
    drill.patronictl("callbacks", GROUP, member_named(formation, leader), *command)


def test_patronictl_switchover_of_a_worker_group_holds_clients(formation: LocalFormation) -> None:
    wait_ready_to_fail_over(formation, GROUP)
    old = leader_of(formation, GROUP)
    scope = formation.layout.scope(GROUP)
    with client_load(formation) as (load, watch):
        patronictl(formation, "switchover", scope, "--leader", str(old))
        wait_until("the switchover", lambda: leader_of(formation, GROUP) not in (None, old), 60)
        wait_until("the row to follow", lambda: metadata_matches_leaders(formation), 30)
    assert_held_not_failed(formation, load, watch)


def postmaster_start(formation: LocalFormation, name: str) -> str:
    return str(patroni_api.member_status(member_named(formation, name).rest_url).get("postmaster_start_time"))


def test_patronictl_restart_of_a_worker_primary_holds_clients(formation: LocalFormation) -> None:
    wait_ready_to_fail_over(formation, GROUP)
    leader = leader_of(formation, GROUP)
    assert leader is not None
    started = postmaster_start(formation, leader)
    with client_load(formation) as (load, watch):
        patronictl(formation, "restart", formation.layout.scope(GROUP), leader)
        wait_until("the restarted primary", lambda: postmaster_start(formation, leader) != started, 60)
    assert leader_of(formation, GROUP) == leader, "a restart keeps the leader"
    assert_held_not_failed(formation, load, watch)


def test_restart_for_a_pending_parameter_change_holds_clients(formation: LocalFormation) -> None:
    wait_ready_to_fail_over(formation, GROUP)
    leader = leader_of(formation, GROUP)
    assert leader is not None
    rest = member_named(formation, leader).rest_url
    current = int(formation.query(member_named(formation, leader), "SHOW max_locks_per_transaction")[0][0])
    patch = {"postgresql": {"parameters": {"max_locks_per_transaction": current + 16}}}
    patroni_api.patch_dynamic_config(rest, patch, formation.rest_auth)
    wait_until(
        "the change to be pending", lambda: patroni_api.member_status(rest).get("pending_restart") is True, 60
    )
    with client_load(formation) as (load, watch):
        patronictl(formation, "restart", formation.layout.scope(GROUP), leader, "--pending")
        wait_until("the restart", lambda: not patroni_api.member_status(rest).get("pending_restart"), 60)
    shown = formation.query(member_named(formation, leader), "SHOW max_locks_per_transaction")[0][0]
    assert int(shown) == current + 16
    assert_held_not_failed(formation, load, watch)


# --------------------------------------------------------------------------------------------------
# Faults: a hold with no one to take over
# --------------------------------------------------------------------------------------------------


def hold_age(coordinator_dsn: str) -> float | None:
    try:
        with closing(psycopg2.connect(coordinator_dsn, connect_timeout=2)) as connection:
            return metadata.open_holds(connection).get(GROUP)
    except (psycopg2.Error, metadata.MetadataError):
        return None


def held(formation: LocalFormation) -> bool:
    return hold_age(dsn(formation)) is not None


def holders() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any("patroni-citus-before-stop" in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


@contextmanager
def stranded_hold(formation: LocalFormation) -> Iterator[str]:
    """The group's replica stopped, then its primary stopped gracefully: a hold nobody can end early.

    Yields the primary's name once the hold is seen on the coordinator; afterwards both members are
    started again and metadata must converge by itself.
    """
    wait_ready_to_fail_over(formation, GROUP)
    leader = leader_of(formation, GROUP)
    assert leader is not None
    replica = next(m.name for m in formation.layout.group_members(GROUP) if m.name != leader)
    base = str(formation.base)
    run_cli("local", "stop-member", "--base-dir", base, replica)
    stopping = threading.Thread(target=run_cli, args=("local", "stop-member", "--base-dir", base, leader))
    stopping.start()
    try:
        wait_until("the hold to begin", lambda: held(formation), 60, interval=0.1)
        yield leader
    finally:
        stopping.join(120)
        for name in (leader, replica):
            run_cli("local", "start-member", "--base-dir", base, name)
        wait_until("the group to lead again", lambda: leader_of(formation, GROUP) is not None, 120)
        wait_until("metadata to converge by itself", lambda: metadata_matches_leaders(formation), 120)


def a_statement_finishes_within(formation: LocalFormation, seconds: float) -> float:
    """Run one read on the group's shards while held; return how long it took (it may fail)."""
    started = time.monotonic()
    with (
        closing(psycopg2.connect(dsn(formation), connect_timeout=5)) as connection,
        connection.cursor() as cursor,
        suppress(psycopg2.Error),
    ):
        cursor.execute(f"SELECT count(*) FROM {drill.TABLE}")  # noqa: S608 - constant
    took = time.monotonic() - started
    assert took < seconds, f"a statement waited {took:.1f}s"
    return took


def holds_in_status(formation: LocalFormation) -> tuple[list[dict[str, object]], str]:
    """`status`'s holds (JSON) and its table's hold lines, read with a coordinator member's config."""
    config = str(formation.layout.member(0, 0).config_path)
    document = json.loads(run_cli("status", "-c", config, "-f", "json", check=False).stdout)
    table = run_cli("status", "-c", config, check=False).stdout
    return document["holds"], "\n".join(line for line in table.splitlines() if line.startswith("hold "))


def test_a_hold_without_a_new_primary_ends_at_its_bound(formation: LocalFormation) -> None:
    with stranded_hold(formation):
        began = time.monotonic() - (hold_age(dsn(formation)) or 0.0)
        holds, lines = holds_in_status(formation)
        print(f"status while held: {holds} / {lines}")
        assert [hold["group"] for hold in holds] == [GROUP], holds
        assert f"hold group {GROUP}: its statements wait on the coordinator" in lines, lines
        a_statement_finishes_within(formation, BOUND_S + 5)
        wait_until("the hold to end", lambda: not held(formation), BOUND_S + 10, interval=0.2)
        ended = time.monotonic() - began
        print(f"stranded hold ended after {ended:.1f}s (bound {BOUND_S}s)")
        assert ended < BOUND_S + 5
        assert holds_in_status(formation) == ([], "")


def test_a_killed_holder_releases_at_once(formation: LocalFormation) -> None:
    with stranded_hold(formation):
        found = holders()
        assert found, "no holder process found while the hold is open"
        for process in found:
            os.kill(process.pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_until("the hold to end with its holder", lambda: not held(formation), 10, interval=0.05)
        assert time.monotonic() - killed < 5
        a_statement_finishes_within(formation, 10)


def test_a_coordinator_switchover_mid_hold_ends_it(formation: LocalFormation) -> None:
    with stranded_hold(formation):
        coordinator = leader_of(formation, 0)
        assert coordinator is not None
        candidate = next(m.name for m in formation.layout.group_members(0) if m.name != coordinator)
        patroni_api.switchover(
            member_named(formation, coordinator).rest_url, coordinator, candidate, formation.rest_auth
        )
        wait_until("the coordinator switchover", lambda: leader_of(formation, 0) == candidate, 60)
        wait_until("no hold on the new coordinator", lambda: not held(formation), 30, interval=0.2)
        wait_until("the holder to give up by its bound", lambda: not holders(), BOUND_S + 10)
