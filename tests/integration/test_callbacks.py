"""Failover drills: the callbacks keep pg_dist_node at every group's Patroni leader.

One formation (coordinator group + two worker groups, two members each, synchronous mode) is
shared by the scenarios in order, as an operator would meet them.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg2
import pytest
from harness import LocalFormation, local_formation, run_cli, wait_until

from patroni_citus import patroni_api
from patroni_citus.errors import PatroniCitusError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def formation() -> Iterator[LocalFormation]:
    with local_formation(workers=2, members=2, extra_args=("--synchronous",)) as running:
        yield running


def leader_of(formation: LocalFormation, group: int) -> str | None:
    members = formation.status()["members"]
    leaders = [m["name"] for m in members if m["group"] == group and m["role"] == "primary" and m["running"]]
    return leaders[0] if len(leaders) == 1 else None


def member_named(formation: LocalFormation, name: str):  # type: ignore[no-untyped-def]
    return next(m for m in formation.layout.all_members() if m.name == name)


def primary_rows(formation: LocalFormation, on_member: str | None = None) -> dict[int, tuple[str, int, bool]]:
    """group -> (nodename, nodeport, isactive) of the primary rows, read on the coordinator (or a member)."""
    target = on_member or leader_of(formation, 0)
    assert target is not None
    rows = formation.query(
        member_named(formation, target),
        "SELECT groupid, nodename, nodeport, isactive FROM pg_dist_node"
        " WHERE noderole = 'primary' ORDER BY groupid",
        dbname="citus",
    )
    by_group: dict[int, tuple[str, int, bool]] = {}
    for group, host, port, active in rows:
        assert group not in by_group, f"two primary rows for group {group}: {rows}"
        by_group[group] = (host, port, active)
    return by_group


def metadata_matches_leaders(formation: LocalFormation, on_member: str | None = None) -> bool:
    rows = primary_rows(formation, on_member)
    for group in range(formation.layout.workers + 1):
        leader = leader_of(formation, group)
        if leader is None:
            return False
        member = member_named(formation, leader)
        expected = (member.host, member.postgres_port, True)
        if rows.get(group) != expected:
            return False
    return set(rows) == set(range(formation.layout.workers + 1))


def ready_to_fail_over(formation: LocalFormation, group: int) -> bool:
    """A replica streams and, in synchronous mode, is the synchronous standby Patroni may promote."""
    wanted = ("sync_standby",) if formation.layout.synchronous else ("replica", "sync_standby")
    for member in formation.layout.group_members(group):
        try:
            cluster = patroni_api.cluster_status(member.rest_url, timeout=2)
        except PatroniCitusError:
            continue
        return any(
            m.get("role") in wanted and m.get("state") == "streaming" for m in cluster.get("members", [])
        )
    return False


def wait_ready_to_fail_over(formation: LocalFormation, group: int) -> None:
    wait_until(
        f"group {group} to have a streaming standby that may be promoted",
        lambda: ready_to_fail_over(formation, group),
        90,
    )


def coordinator_connection(formation: LocalFormation) -> psycopg2.extensions.connection:
    connection = psycopg2.connect(formation.layout.coordinator_dsn("citus", "postgres"), connect_timeout=2)
    connection.autocommit = True
    return connection


@dataclass
class Writer:
    """Writes one row every 50 ms through the coordinator; remembers which writes were acknowledged."""

    formation: LocalFormation
    acknowledged: list[int] = field(default_factory=list)
    failures: int = 0
    last_success: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        next_id = 1_000_000 * int(time.time() % 1000)
        connection = None
        while not self.stop.is_set():
            next_id += 1
            try:
                if connection is None:
                    connection = coordinator_connection(self.formation)
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO drill (id, note) VALUES (%s, 'x')", (next_id,))
                self.acknowledged.append(next_id)
                self.last_success = time.monotonic()
            except psycopg2.Error:
                self.failures += 1
                if connection is not None:
                    connection.close()
                connection = None
            time.sleep(0.05)
        if connection is not None:
            connection.close()


def assert_no_acknowledged_write_lost(formation: LocalFormation, writer: Writer) -> None:
    writer.stop.set()
    time.sleep(0.2)
    with coordinator_connection(formation) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT id FROM drill WHERE id = ANY(%s)", (writer.acknowledged,))
        present = {row[0] for row in cursor.fetchall()}
    lost = sorted(set(writer.acknowledged) - present)
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"


def wait_for_writes_after(writer: Writer, moment: float) -> None:
    wait_until("a distributed write to succeed after the fault", lambda: writer.last_success > moment, 90)


def restore(formation: LocalFormation, name: str) -> None:
    run_cli("local", "start-member", "--base-dir", str(formation.base), name)
    wait_until(
        f"{name} to rejoin as a running replica",
        lambda: any(m["name"] == name and m["state"] == "running" for m in formation.status()["members"]),
        120,
    )


def test_bootstrap_registers_each_group_once_at_its_leader(formation: LocalFormation) -> None:
    wait_until("pg_dist_node to match every group's leader", lambda: metadata_matches_leaders(formation), 60)
    assert set(primary_rows(formation)) == {0, 1, 2}


def create_drill_table(formation: LocalFormation) -> None:
    """The distributed table the Writer loads, once every group is registered."""
    wait_until("pg_dist_node to match every group's leader", lambda: metadata_matches_leaders(formation), 60)
    with coordinator_connection(formation) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE drill (id bigint PRIMARY KEY, note text)")
        cursor.execute("SELECT create_distributed_table('drill', 'id')")


def test_distributed_table_accepts_writes_and_reads(formation: LocalFormation) -> None:
    create_drill_table(formation)
    with coordinator_connection(formation) as connection, connection.cursor() as cursor:
        cursor.execute("INSERT INTO drill SELECT g, 'seed' FROM generate_series(1, 200) g")
        cursor.execute("SELECT count(*), sum(id) FROM drill")
        assert cursor.fetchone() == (200, 20100)


def test_killed_worker_primary_moves_its_row_and_loses_nothing(
    formation: LocalFormation, writer: Writer
) -> None:
    old_leader = leader_of(formation, 1)
    assert old_leader is not None
    wait_until("the writer to get going", lambda: len(writer.acknowledged) > 5, 30)
    wait_ready_to_fail_over(formation, 1)
    fault = time.monotonic()
    run_cli("local", "stop-member", "--base-dir", str(formation.base), "--kill", old_leader)
    wait_until("group 1 to elect a new leader", lambda: leader_of(formation, 1) not in (None, old_leader), 90)
    wait_until("group 1's row to move to its new leader", lambda: metadata_matches_leaders(formation), 60)
    wait_for_writes_after(writer, fault)
    assert_no_acknowledged_write_lost(formation, writer)
    restore(formation, old_leader)


def switch_over(formation: LocalFormation, group: int, interval: float = 3) -> str:
    """A Patroni switchover of the group to its other member (retried every interval s until accepted)."""
    leader = leader_of(formation, group)
    assert leader is not None
    candidate = next(m.name for m in formation.layout.group_members(group) if m.name != leader)
    wait_ready_to_fail_over(formation, group)
    auth = formation.rest_auth
    rest = member_named(formation, leader).rest_url
    wait_until(
        f"Patroni to accept a switchover of group {group}",
        lambda: (
            "switched over" in str(patroni_api.switchover(rest, leader, candidate, auth).get("message", ""))
        ),
        60,
        interval=interval,
    )
    wait_until(f"{candidate} to lead group {group}", lambda: leader_of(formation, group) == candidate, 60)
    return candidate


def test_worker_switchover_moves_its_row(formation: LocalFormation, writer: Writer) -> None:
    wait_until("the writer to get going", lambda: len(writer.acknowledged) > 5, 30)
    fault = time.monotonic()
    switch_over(formation, 2)
    wait_until("group 2's row to follow the switchover", lambda: metadata_matches_leaders(formation), 60)
    wait_for_writes_after(writer, fault)
    assert_no_acknowledged_write_lost(formation, writer)


def test_coordinator_switchover_moves_group_zero_everywhere(
    formation: LocalFormation, writer: Writer
) -> None:
    wait_until("the writer to get going", lambda: len(writer.acknowledged) > 5, 30)
    fault = time.monotonic()
    new_coordinator = switch_over(formation, 0)
    wait_until(
        "the coordinator row to follow the switchover", lambda: metadata_matches_leaders(formation), 60
    )
    wait_for_writes_after(writer, fault)
    assert_no_acknowledged_write_lost(formation, writer)
    expected = ("127.0.0.1", member_named(formation, new_coordinator).postgres_port, True)
    if formation.citus == "real":
        # Workers keep a metadata copy; each must point at the new coordinator too.
        for group in (1, 2):
            worker = leader_of(formation, group)
            assert worker is not None
            wait_until(
                f"group {group}'s metadata copy to name the new coordinator",
                lambda worker=worker: primary_rows(formation, worker).get(0) == expected,
                60,
            )


def test_worker_failover_while_coordinator_down_converges_later(formation: LocalFormation) -> None:
    coordinators = [m.name for m in formation.layout.group_members(0)]
    for name in coordinators:
        run_cli("local", "stop-member", "--base-dir", str(formation.base), name)
    old_leader = leader_of(formation, 1)
    assert old_leader is not None
    wait_ready_to_fail_over(formation, 1)
    run_cli("local", "stop-member", "--base-dir", str(formation.base), "--kill", old_leader)
    wait_until("group 1 to elect a new leader", lambda: leader_of(formation, 1) not in (None, old_leader), 90)
    for name in coordinators:
        run_cli("local", "start-member", "--base-dir", str(formation.base), name)
    wait_until("the coordinator group to elect a leader", lambda: leader_of(formation, 0) is not None, 120)
    wait_until("pg_dist_node to converge without a human", lambda: metadata_matches_leaders(formation), 90)
    restore(formation, old_leader)


def test_planned_worker_switchover_holds_clients_instead_of_failing(
    formation: LocalFormation, writer: Writer
) -> None:
    wait_until("the writer to get going", lambda: len(writer.acknowledged) > 5, 30)
    wait_ready_to_fail_over(formation, 1)
    old_leader = leader_of(formation, 1)
    failures_before = writer.failures
    result = run_cli(
        "switchover", "-c", str(formation.layout.member(0, 0).config_path), "--group", "1", "--json"
    )
    outcome = json.loads(result.stdout)
    assert outcome["old_leader"] == old_leader and outcome["new_leader"] != old_leader
    assert outcome["pause_s"] is not None, "the old primary's before_stop must have held the statements"
    assert leader_of(formation, 1) == outcome["new_leader"]
    assert metadata_matches_leaders(formation), "the row must point at the new leader when switchover returns"
    moment = time.monotonic()
    wait_for_writes_after(writer, moment)
    assert writer.failures == failures_before, "writes were held, not failed, during the planned switchover"
    assert_no_acknowledged_write_lost(formation, writer)


def test_switchover_blocked_by_an_open_transaction_aborts_cleanly(formation: LocalFormation) -> None:
    wait_ready_to_fail_over(formation, 2)
    old_leader = leader_of(formation, 2)
    with coordinator_connection(formation) as client:
        client.autocommit = False
        with client.cursor() as cursor:
            cursor.execute("INSERT INTO drill (id, note) VALUES (-1, 'open across switchover')")
        config = str(formation.layout.member(0, 0).config_path)
        started = time.monotonic()
        result = run_cli("switchover", "-c", config, "--group", "2", check=False)
        assert result.returncode != 0
        assert "lock timeout" in result.stderr and "aborted" in result.stderr, result.stderr
        assert time.monotonic() - started < 60
        assert leader_of(formation, 2) == old_leader, "nothing may have changed"
        client.commit()
    with coordinator_connection(formation) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT note FROM drill WHERE id = -1")
        assert cursor.fetchall() == [("open across switchover",)]
    assert metadata_matches_leaders(formation)


def test_switchover_wait_waits_for_a_replica_then_refuses_as_before(formation: LocalFormation) -> None:
    """--wait SECONDS keeps asking for a running replica (saying so on stderr), then refuses with the
    message a switchover without --wait gives at once; nothing changes meanwhile."""
    wait_ready_to_fail_over(formation, 2)
    old_leader = leader_of(formation, 2)
    replica = next(m.name for m in formation.layout.group_members(2) if m.name != old_leader)
    run_cli("local", "stop-member", "--base-dir", str(formation.base), replica)
    try:
        config = str(formation.layout.member(0, 0).config_path)
        wait_until(
            f"{replica} to leave the DCS",
            lambda: "no member is" in run_cli("switchover", "-c", config, "--group", "2", check=False).stderr,
            60,
        )
        started = time.monotonic()
        result = run_cli("switchover", "-c", config, "--group", "2", "--wait", "4", check=False)
        waited = time.monotonic() - started
        assert result.returncode == 1, result.stderr
        lines = result.stderr.splitlines()
        scope = f"{formation.layout.name}-2"
        assert re.match(rf"waiting up to [34]s more for a candidate: {scope}: no member is", lines[0]), lines
        assert "no member is a running replica that could take over" in lines[-1], result.stderr
        assert waited >= 4, f"gave up after {waited:.1f}s"
        assert "Traceback" not in result.stderr
        assert leader_of(formation, 2) == old_leader, "nothing may have changed"
    finally:
        restore(formation, replica)
    assert metadata_matches_leaders(formation)


def test_drill_command_measures_a_worker_switchover(formation: LocalFormation, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    output = tmp_path_factory.mktemp("drill") / "drill.json"
    result = run_cli(
        "drill",
        "--base-dir",
        str(formation.base),
        "--scenario",
        "worker-switchover",
        "--runs",
        "1",
        "--json",
        str(output),
    )
    assert "| callbacks | worker-switchover |" in result.stdout
    figures = json.loads(output.read_text())["callbacks"]["worker-switchover"]
    assert figures["runs"] == 1
    for name in (
        "fault_to_first_write_s",
        "promotion_to_metadata_s",
        "failed_writes",
        "failed_reads",
        "max_latency_s",
        "lost_acknowledged_writes",
    ):
        assert set(figures[name]) == {"min", "median", "max"}, name
    assert figures["lost_acknowledged_writes"]["max"] == 0
    assert metadata_matches_leaders(formation)
