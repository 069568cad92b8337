"""Steps the failover scenarios share on a running formation: who leads, what pg_dist_node says, faults.

Helpers only (no tests): test modules import them from here, never from one another.
"""

from __future__ import annotations

import psycopg2
import psycopg2.extensions
from harness import LocalFormation, run_cli, wait_until

from patroni_citus import patroni_api
from patroni_citus.errors import PatroniCitusError
from patroni_citus.local.layout import DATABASE, SUPERUSER, MemberLayout


def leader_of(formation: LocalFormation, group: int) -> str | None:
    members = formation.status()["members"]
    leaders = [m["name"] for m in members if m["group"] == group and m["role"] == "primary" and m["running"]]
    return leaders[0] if len(leaders) == 1 else None


def member_named(formation: LocalFormation, name: str) -> MemberLayout:
    return next(m for m in formation.layout.all_members() if m.name == name)


def primary_rows(formation: LocalFormation, on_member: str | None = None) -> dict[int, tuple[str, int, bool]]:
    """group -> (nodename, nodeport, isactive) of the primary rows, read on the coordinator (or a member)."""
    target = on_member or leader_of(formation, 0)
    assert target is not None
    rows = formation.query(
        member_named(formation, target),
        "SELECT groupid, nodename, nodeport, isactive FROM pg_dist_node"
        " WHERE noderole = 'primary' ORDER BY groupid",
        dbname=DATABASE,
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
    connection = psycopg2.connect(formation.layout.coordinator_dsn(DATABASE, SUPERUSER), connect_timeout=2)
    connection.autocommit = True
    return connection


def restore(formation: LocalFormation, name: str) -> None:
    run_cli("local", "start-member", "--base-dir", str(formation.base), name)
    wait_until(
        f"{name} to rejoin as a running replica",
        lambda: any(m["name"] == name and m["state"] == "running" for m in formation.status()["members"]),
        120,
    )


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
