"""Failover drills: the callbacks keep pg_dist_node at every group's Patroni leader.

One formation (coordinator group + two worker groups, two members each, synchronous mode) is
shared by the scenarios in order, as an operator would meet them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from formation_steps import (
    coordinator_connection,
    leader_of,
    member_named,
    metadata_matches_leaders,
    primary_rows,
    restore,
    switch_over,
    wait_ready_to_fail_over,
)
from harness import LocalFormation, local_formation, run_cli, wait_until
from write_load import (
    assert_no_acknowledged_write_lost,
    create_drill_table,
    failed_writes,
    wait_for_writes_after,
)

from patroni_citus import drill

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def formation() -> Iterator[LocalFormation]:
    with local_formation(workers=2, members=2, extra_args=("--synchronous",)) as running:
        yield running


def test_bootstrap_registers_each_group_once_at_its_leader(formation: LocalFormation) -> None:
    wait_until("pg_dist_node to match every group's leader", lambda: metadata_matches_leaders(formation), 60)
    assert set(primary_rows(formation)) == {0, 1, 2}


def test_distributed_table_accepts_writes_and_reads(formation: LocalFormation) -> None:
    create_drill_table(formation)
    with coordinator_connection(formation) as connection, connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {drill.TABLE} SELECT g, 'seed' FROM generate_series(1, 200) g")  # noqa: S608
        cursor.execute(f"SELECT count(*), sum(id) FROM {drill.TABLE}")  # noqa: S608 - constant
        assert cursor.fetchone() == (200, 20100)


def test_killed_worker_primary_moves_its_row_and_loses_nothing(
    formation: LocalFormation, writer: drill.Load
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


def test_worker_switchover_moves_its_row(formation: LocalFormation, writer: drill.Load) -> None:
    wait_until("the writer to get going", lambda: len(writer.acknowledged) > 5, 30)
    fault = time.monotonic()
    switch_over(formation, 2)
    wait_until("group 2's row to follow the switchover", lambda: metadata_matches_leaders(formation), 60)
    wait_for_writes_after(writer, fault)
    assert_no_acknowledged_write_lost(formation, writer)


def test_coordinator_switchover_moves_group_zero_everywhere(
    formation: LocalFormation, writer: drill.Load
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
    formation: LocalFormation, writer: drill.Load
) -> None:
    wait_until("the writer to get going", lambda: len(writer.acknowledged) > 5, 30)
    wait_ready_to_fail_over(formation, 1)
    old_leader = leader_of(formation, 1)
    failures_before = failed_writes(writer)
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
    held_not_failed = "writes were held, not failed, during the planned switchover"
    assert failed_writes(writer) == failures_before, held_not_failed
    assert_no_acknowledged_write_lost(formation, writer)


def test_switchover_blocked_by_an_open_transaction_aborts_cleanly(formation: LocalFormation) -> None:
    wait_ready_to_fail_over(formation, 2)
    old_leader = leader_of(formation, 2)
    with coordinator_connection(formation) as client:
        client.autocommit = False
        with client.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {drill.TABLE} (id, payload) VALUES (-1, 'open across switchover')"  # noqa: S608
            )
        config = str(formation.layout.member(0, 0).config_path)
        started = time.monotonic()
        result = run_cli("switchover", "-c", config, "--group", "2", check=False)
        assert result.returncode != 0
        assert "lock timeout" in result.stderr and "aborted" in result.stderr, result.stderr
        assert time.monotonic() - started < 60
        assert leader_of(formation, 2) == old_leader, "nothing may have changed"
        client.commit()
    with coordinator_connection(formation) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT payload FROM {drill.TABLE} WHERE id = -1")  # noqa: S608 - constant
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
