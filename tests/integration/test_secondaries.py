"""Replicas as Citus secondaries: registered, kept exactly right across failovers and switchovers.

One formation (coordinator group + one worker group, three members each) is shared by the
scenarios in order. A sampler reads pg_dist_node on the coordinator every 50 ms throughout, so a
wrong committed state is caught even when it lasts one transaction: never two primary rows for a
group, never a secondary row at the group's primary, never a parked placeholder name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from formation_steps import leader_of, member_named, restore, switch_over, wait_ready_to_fail_over
from harness import LocalFormation, in_background, local_formation, run_cli, wait_until
from metadata_sampler import ROWS_SQL, Row, Sampler

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def formation() -> Iterator[LocalFormation]:
    with local_formation(workers=1, members=3) as running:
        yield running


@pytest.fixture(scope="module", autouse=True)
def sampler(formation: LocalFormation) -> Iterator[Sampler]:
    load = Sampler(formation.layout.coordinator_dsn("citus", "postgres"))
    with in_background(load.run, load.stop):
        yield load
    assert load.samples > 100, f"only {load.samples} samples of pg_dist_node were taken"
    assert not load.violations, f"wrong committed rows seen: {sorted(set(load.violations))}"


def rows_on(formation: LocalFormation, member_name: str | None = None) -> list[Row]:
    """pg_dist_node on the coordinator's leader (or on the named member: a worker's metadata copy)."""
    target = member_name or leader_of(formation, 0)
    assert target is not None
    result = formation.query(member_named(formation, target), ROWS_SQL, dbname="citus")
    return [(int(a), int(b), str(c), int(d), str(e)) for a, b, c, d, e in result]


def running_members(formation: LocalFormation, group: int) -> set[str]:
    return {
        m["name"]
        for m in formation.status()["members"]
        if m["group"] == group and m["running"] and m["state"] in ("running", "streaming")
    }


def expected_rows(formation: LocalFormation, group: int) -> set[tuple[str, int, str]] | None:
    """The group's rows as they must be: its leader primary, every other running member secondary."""
    leader = leader_of(formation, group)
    if leader is None:
        return None
    rows = set()
    for name in running_members(formation, group) | {leader}:
        member = member_named(formation, name)
        rows.add((member.host, member.postgres_port, "primary" if name == leader else "secondary"))
    return rows


def group_rows(rows: list[Row], group: int) -> set[tuple[str, int, str]]:
    return {(host, port, role) for _nodeid, g, host, port, role in rows if g == group}


def rows_exactly_right(formation: LocalFormation, member_name: str | None = None) -> bool:
    rows = rows_on(formation, member_name)
    for group in (0, 1):
        expected = expected_rows(formation, group)
        if expected is None or group_rows(rows, group) != expected:
            return False
    return True


def wait_rejoined(formation: LocalFormation, group: int, name: str) -> None:
    """A demoted primary runs again as a replica (Patroni restarts it after the switchover)."""
    wait_until(f"{name} to run as a replica again", lambda: name in running_members(formation, group), 90)


def wait_exactly_right(formation: LocalFormation, what: str) -> None:
    wait_until(f"pg_dist_node to be exactly right {what}", lambda: rows_exactly_right(formation), 90)


def test_after_up_every_replica_is_a_secondary_row(formation: LocalFormation) -> None:
    wait_exactly_right(formation, "after local up")
    rows = rows_on(formation)
    assert sorted(role for *_rest, role in rows) == ["primary"] * 2 + ["secondary"] * 4, rows


def test_status_shows_and_judges_each_secondary(formation: LocalFormation) -> None:
    wait_exactly_right(formation, "before status")
    payload = run_status(formation)
    assert payload["schema_version"] == 2 and payload["healthy"], payload["problems"]
    for group in payload["groups"]:
        assert len(group["secondaries"]) == 2
        assert all(s["points_at_replica"] and s["member"] for s in group["secondaries"]), group


def run_status(formation: LocalFormation) -> dict[str, Any]:
    result = run_cli("status", "-c", str(formation.layout.member(0, 0).config_path), "--json", check=False)
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def test_worker_metadata_copies_carry_the_same_rows(formation: LocalFormation) -> None:
    if formation.citus != "real":
        pytest.skip("the stand-in never writes workers' metadata copies (real Citus syncs them)")
    wait_exactly_right(formation, "on the coordinator")
    worker = leader_of(formation, 1)
    assert worker is not None
    wait_until("the worker's metadata copy to match", lambda: rows_exactly_right(formation, worker), 60)


def test_worker_primary_kill_leaves_exactly_the_running_members(formation: LocalFormation) -> None:
    old = leader_of(formation, 1)
    assert old is not None
    wait_ready_to_fail_over(formation, 1)
    run_cli("local", "stop-member", "--base-dir", str(formation.base), "--kill", old)
    wait_until("group 1 to elect a new leader", lambda: leader_of(formation, 1) not in (None, old), 90)
    wait_exactly_right(formation, "after the worker failover (dead primary's row gone)")
    dead = member_named(formation, old)
    assert (dead.host, dead.postgres_port) not in {(h, p) for _n, _g, h, p, _r in rows_on(formation)}
    restore(formation, old)
    wait_exactly_right(formation, "after the old primary rejoined as a replica")
    assert (dead.host, dead.postgres_port, "secondary") in group_rows(rows_on(formation), 1)


def test_worker_switchover_makes_the_old_primary_a_secondary(formation: LocalFormation) -> None:
    wait_exactly_right(formation, "before the switchover")
    old = leader_of(formation, 1)
    assert old is not None
    wait_ready_to_fail_over(formation, 1)
    run_cli("switchover", "-c", str(formation.layout.member(0, 0).config_path), "--group", "1")
    new = leader_of(formation, 1)
    assert new not in (None, old)
    primary = member_named(formation, str(new))
    assert (primary.host, primary.postgres_port, "primary") in group_rows(rows_on(formation), 1)
    wait_rejoined(formation, 1, old)
    wait_exactly_right(formation, "after the worker switchover")
    old_member = member_named(formation, old)
    assert (old_member.host, old_member.postgres_port, "secondary") in group_rows(rows_on(formation), 1)


def test_coordinator_switchover_makes_the_old_coordinator_a_group_zero_secondary(
    formation: LocalFormation,
) -> None:
    wait_exactly_right(formation, "before the coordinator switchover")
    old = leader_of(formation, 0)
    assert old is not None
    switch_over(formation, 0)
    wait_rejoined(formation, 0, old)
    wait_exactly_right(formation, "after the coordinator switchover")
    old_member = member_named(formation, old)
    assert (old_member.host, old_member.postgres_port, "secondary") in group_rows(rows_on(formation), 0)
    if formation.citus == "real":
        worker = leader_of(formation, 1)
        assert worker is not None
        wait_until("the worker's copy to follow", lambda: rows_exactly_right(formation, worker), 60)


def test_stopped_replica_row_is_removed_and_comes_back_on_start(formation: LocalFormation) -> None:
    wait_exactly_right(formation, "before stopping a replica")
    leader = leader_of(formation, 1)
    replica = sorted(running_members(formation, 1) - {str(leader)})[0]
    member = member_named(formation, replica)
    run_cli("local", "stop-member", "--base-dir", str(formation.base), replica)
    wait_until(
        "the stopped replica's row to go (its on_stop callback)",
        lambda: (member.host, member.postgres_port, "secondary") not in group_rows(rows_on(formation), 1),
        60,
    )
    wait_exactly_right(formation, "with the replica stopped")
    restore(formation, replica)
    wait_exactly_right(formation, "after the replica started again")


def test_crashed_replica_host_row_goes_at_the_next_reconcile(formation: LocalFormation) -> None:
    """No callback runs when a replica's whole host dies: its row goes at the next convergence round."""
    wait_exactly_right(formation, "before a replica crash")
    leader = leader_of(formation, 1)
    replica = sorted(running_members(formation, 1) - {str(leader)})[0]
    member = member_named(formation, replica)
    run_cli("local", "stop-member", "--base-dir", str(formation.base), "--kill", replica)
    config = str(formation.layout.member(0, 0).config_path)
    # The DCS shows the dead replica running until its member key's TTL (20 s here) runs out.
    wait_until(
        "reconcile to remove the crashed replica's row",
        lambda: (
            run_cli("reconcile", "-c", config, check=False).returncode == 0
            and (member.host, member.postgres_port, "secondary") not in group_rows(rows_on(formation), 1)
        ),
        60,
        interval=2,
    )
    wait_exactly_right(formation, "after reconcile")
    restore(formation, replica)
    wait_exactly_right(formation, "after the crashed replica returned")
