"""Faults: simultaneous failovers, callbacks killed mid-way, switchover series, etcd outages.

One formation (coordinator group + two worker groups, two members each, synchronous mode) is
shared by the scenarios in order. Helpers (leaders, pg_dist_node rows, the write load) are those
of test_callbacks.py, so both files judge the same things the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import formation_steps as steps
import psycopg2
import pytest
from harness import TIMEOUT_MULTIPLIER, LocalFormation, local_formation, run_cli, wait_until
from write_load import assert_no_acknowledged_write_lost, create_drill_table, last_write

from patroni_citus import drill
from patroni_citus.local.layout import FormationState, MemberLayout
from patroni_citus.template import default_scripts_dir

pytestmark = pytest.mark.integration
SWITCHOVERS = int(os.environ.get("PATRONI_CITUS_TEST_SWITCHOVERS", "10"))


@pytest.fixture(scope="module")
def formation() -> Iterator[LocalFormation]:
    with local_formation(workers=2, members=2, extra_args=("--synchronous",)) as running:
        yield running


def group_row(formation: LocalFormation, group: int) -> tuple[str, int]:
    """The group's only primary row on the coordinator (fails on a second primary row)."""
    host, port, _active = steps.primary_rows(formation)[group]
    return host, port


def test_distributed_table_for_the_write_load(formation: LocalFormation) -> None:
    create_drill_table(formation)


def test_two_worker_groups_killed_at_once_both_move_and_lose_nothing(
    formation: LocalFormation, writer: drill.Load
) -> None:
    wait_until("the writer to get going", lambda: len(writer.acknowledged) > 5, 30)
    old_leaders = {group: steps.leader_of(formation, group) for group in (1, 2)}
    assert None not in old_leaders.values(), old_leaders
    for group in (1, 2):
        steps.wait_ready_to_fail_over(formation, group)
    cli = str(default_scripts_dir() / "patroni-citus")
    fault = time.monotonic()
    kills = [
        subprocess.Popen(  # both crash within milliseconds of each other
            [cli, "local", "stop-member", "--base-dir", str(formation.base), "--kill", str(name)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in old_leaders.values()
    ]
    assert [kill.wait(60) for kill in kills] == [0, 0]
    for group, old in old_leaders.items():
        wait_until(
            f"group {group} to elect a new leader",
            lambda group=group, old=old: steps.leader_of(formation, group) not in (None, old),
            90,
        )
    wait_until(
        "both rows to move to their new leaders", lambda: steps.metadata_matches_leaders(formation), 60
    )
    wait_until("a write to succeed after the fault", lambda: last_write(writer) > fault, 90)
    assert_no_acknowledged_write_lost(formation, writer)
    for name in old_leaders.values():
        steps.restore(formation, str(name))


def _settled(formation: LocalFormation, coordinator: MemberLayout) -> bool:
    """No patroni-citus session still running a statement on the coordinator (a killed client's
    backend may finish its statement after the kill; the row is judged only once it has)."""
    rows = formation.query(
        coordinator,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'patroni-citus' AND state = 'active'",
    )
    return rows[0][0] == 0


def test_on_role_change_killed_at_every_moment_never_writes_a_third_value(formation: LocalFormation) -> None:
    leader = steps.leader_of(formation, 1)
    assert leader is not None
    member = steps.member_named(formation, leader)
    coordinator = steps.member_named(formation, str(steps.leader_of(formation, 0)))
    right = ("127.0.0.1", member.postgres_port)
    wrong = ("127.0.0.9", member.postgres_port)  # what a missed callback leaves behind: a dead host
    command = [
        str(default_scripts_dir() / "patroni-citus-on-role-change"),
        "--config",
        str(member.config_path),
        "on_role_change",
        "primary",
        member.scope,
    ]

    def point_row_at(endpoint: tuple[str, int]) -> None:
        if group_row(formation, 1) != endpoint:
            formation.query(
                coordinator,
                "SELECT citus_update_node(nodeid, %s, %s) FROM pg_dist_node"
                " WHERE groupid = 1 AND noderole = 'primary'",
                dbname="citus",
                params=endpoint,
            )

    def run_to_completion() -> float:
        point_row_at(wrong)
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert group_row(formation, 1) == right, done.stderr
        return time.monotonic() - started

    full = run_to_completion()
    seen = []
    # From "not started yet" through every step of a run to "already done".
    for fraction in (0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0):
        point_row_at(wrong)
        delay = full * fraction
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        wait_until(
            "the killed callback's statements to settle", lambda: _settled(formation, coordinator), 30, 0.1
        )
        row = group_row(formation, 1)  # also asserts there is exactly one primary row for group 1
        assert row in (wrong, right), f"killed after {delay:.2f}s, the row is {row}"
        seen.append(row == right)
    run_to_completion()
    assert steps.metadata_matches_leaders(formation)
    assert not seen[0], "a callback killed at once cannot have written; the check is blind"
    # Kills land before and after the write; at least the late ones find it done.
    assert seen[-1], f"a callback killed after {2 * full:.2f}s had still not written (full run {full:.2f}s)"


def test_repeated_switchovers_alternating_groups_lose_no_write(
    formation: LocalFormation, writer: drill.Load
) -> None:
    wait_until("the writer to get going", lambda: len(writer.acknowledged) > 5, 30)
    for number in range(SWITCHOVERS):
        group = 1 + number % 2
        fault = time.monotonic()
        steps.switch_over(formation, group, interval=2)
        wait_until(
            f"switchover {number + 1}: group {group}'s row to follow",
            lambda: steps.metadata_matches_leaders(formation),
            60,
        )
        wait_until(
            f"switchover {number + 1}: writes to resume",
            lambda fault=fault: last_write(writer) > fault,
            90,
        )
    assert_no_acknowledged_write_lost(formation, writer)


def _member_ports(formation: LocalFormation) -> dict[int, set[tuple[str, int]]]:
    return {
        group: {("127.0.0.1", m.postgres_port) for m in formation.layout.group_members(group)}
        for group in range(formation.layout.workers + 1)
    }


def test_etcd_outage_longer_than_retry_timeout_never_writes_a_wrong_row(formation: LocalFormation) -> None:
    state = FormationState.load(formation.base)
    assert state is not None and state.etcd_pid is not None
    members_of = _member_ports(formation)
    samples: list[str] = []
    violations: list[str] = []
    writable: list[bool] = []  # per sampling round: did any coordinator member accept writes?
    stop = threading.Event()

    def sample() -> None:
        """Read pg_dist_node on every coordinator member every 200 ms for the whole outage."""
        while not stop.is_set():
            primaries = 0
            for coordinator in formation.layout.group_members(0):
                try:
                    primaries += not formation.query(coordinator, "SELECT pg_is_in_recovery()")[0][0]
                    rows = formation.query(
                        coordinator,
                        "SELECT groupid, nodename, nodeport FROM pg_dist_node WHERE noderole = 'primary'",
                        dbname="citus",
                    )
                except psycopg2.Error as exc:
                    samples.append(f"{coordinator.name}: {str(exc).strip()[:60]}")
                    continue
                samples.append(f"{coordinator.name}: {sorted(rows)}")
                groups = [row[0] for row in rows]
                for group, host, port in rows:
                    if (host, port) not in members_of.get(group, set()):
                        violations.append(f"{coordinator.name}: group {group} row at {host}:{port}")
                if len(groups) != len(set(groups)):
                    violations.append(f"{coordinator.name}: two primary rows for a group: {rows}")
            writable.append(primaries > 0)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    outage = 25 * TIMEOUT_MULTIPLIER  # > retry_timeout (5 s) and > ttl (20 s) of the local formation
    os.kill(state.etcd_pid, signal.SIGSTOP)  # hung, not refused: clients wait for their timeouts
    try:
        time.sleep(outage)
    finally:
        os.kill(state.etcd_pid, signal.SIGCONT)
    config = str(formation.layout.member(0, 0).config_path)
    try:
        wait_until(
            "status to exit 0 after etcd returns",
            lambda: run_cli("status", "-c", config, check=False).returncode == 0,
            90,
        )
    finally:
        stop.set()
        sampler.join(10)
    assert len(samples) > outage, f"too few samples of pg_dist_node: {samples[-5:]}"
    assert not violations, violations[:10]
    # The outage must have bitten: Patroni demotes a leader that cannot reach the DCS.
    assert False in writable, "the coordinator stayed writable throughout: etcd was never missed"
    assert steps.metadata_matches_leaders(formation)


def test_every_group_serves_writes_at_the_end(formation: LocalFormation) -> None:
    with steps.coordinator_connection(formation) as connection, connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {drill.TABLE} SELECT g, 'end' FROM generate_series(-100, -1) g")  # noqa: S608
        cursor.execute(f"SELECT count(*) FROM {drill.TABLE} WHERE payload = 'end'")  # noqa: S608 - constant
        assert cursor.fetchone() == (100,)
