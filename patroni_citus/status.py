"""`status`: read a formation, judge it, and present it as a table or as stable JSON.

The JSON schema (docs/status.md) is versioned by ``schema_version``; fields are only ever added.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from patroni_citus import formats, health, topology
from patroni_citus.planner import Endpoint, primary_rows, secondary_rows

SCHEMA_VERSION = 2
EXIT_HEALTHY, EXIT_PROBLEMS, EXIT_UNREACHABLE = 0, 1, 2


@dataclass(frozen=True)
class StatusResult:
    snapshot: topology.FormationSnapshot
    problems: list[health.Problem]
    checked_at: datetime

    @property
    def exit_code(self) -> int:
        if self.snapshot.coordinator_error is not None:
            return EXIT_UNREACHABLE
        return EXIT_PROBLEMS if self.problems else EXIT_HEALTHY


def collect(
    address: topology.FormationAddress,
    sync_grace: float,
    report: Callable[[str], None],
    timings: dict[str, float] | None = None,
) -> StatusResult:
    """Read and judge; a metadata resync still in flight gets sync_grace seconds to finish (converging).

    timings, when given, receives the seconds each part of the read took (topology.READ_PARTS).
    """
    snapshot = topology.read_formation(address, timings)
    problems = health.find_problems(snapshot)
    deadline = time.monotonic() + sync_grace
    waiting = False
    while _converging(problems) and time.monotonic() < deadline:
        if not waiting:
            report(f"converging: Citus is resyncing metadata to workers; waiting up to {sync_grace:.0f}s")
            waiting = True
        time.sleep(0.5)
        snapshot = replace(snapshot, rows=topology.read_rows(address, snapshot.leaders))
        problems = health.find_problems(snapshot)
    return StatusResult(snapshot, problems, datetime.now(UTC))


def _secondaries_json(snapshot: topology.FormationSnapshot, group: int) -> list[dict[str, Any]]:
    leader = next((leader for leader in snapshot.leaders if leader.group == group), None)
    names = {m.endpoint: m.name for m in snapshot.members if m.group == group}
    return [
        {
            "nodeid": row.nodeid,
            "host": row.endpoint.host,
            "port": row.endpoint.port,
            "member": names.get(row.endpoint),
            "points_at_replica": leader is not None and row.endpoint in leader.secondaries,
        }
        for row in secondary_rows(snapshot.rows or []).get(group, [])
    ]


def _converging(problems: list[health.Problem]) -> bool:
    """Only a metadata resync in flight (and the secondary rows that wait for it): give it time."""
    kinds = {problem.kind for problem in problems}
    return health.UNSYNCED in kinds and kinds <= {health.UNSYNCED, *health.WAITS_FOR_RESYNC}


def as_json(result: StatusResult) -> dict[str, Any]:
    snapshot = result.snapshot
    rows = primary_rows(snapshot.rows or [])
    leaders = {leader.group: leader for leader in snapshot.leaders}
    groups = []
    for group, scopes in sorted(snapshot.scopes_by_group.items()):
        row = rows.get(group)
        leader_member = next((m.name for m in snapshot.members if m.group == group and m.is_leader), None)
        groups.append(
            {
                "group": group,
                "scopes": scopes,
                "leader": leader_member,
                "leader_endpoint": str(leaders[group].endpoint) if group in leaders else None,
                "pg_dist_node": None
                if row is None
                else {
                    "nodeid": row.nodeid,
                    "host": row.endpoint.host,
                    "port": row.endpoint.port,
                    "isactive": row.isactive,
                    "metadatasynced": row.metadatasynced,
                    "points_at_leader": group in leaders and leaders[group].endpoint == row.endpoint,
                },
                "secondaries": _secondaries_json(snapshot, group),
            }
        )
    members = [
        {
            "group": m.group,
            "scope": m.scope,
            "name": m.name,
            "host": m.endpoint.host if m.endpoint else None,
            "port": m.endpoint.port if m.endpoint else None,
            "role": m.role,
            "state": m.state,
            "is_leader": m.is_leader,
            "lag_bytes": m.lag,
            "pending_restart": m.pending_restart,
            "shared_preload_libraries": m.preload,
            "citus_version": m.citus_version,
            "error": m.error,
        }
        for m in snapshot.members
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "checked_at": formats.timestamp(result.checked_at),
        "healthy": not result.problems and snapshot.coordinator_error is None,
        "exit_code": result.exit_code,
        "groups": groups,
        "members": members,
        "poolers": _poolers_json(snapshot),
        "holds": [
            {"group": group, "seconds": round(seconds, 3)}
            for group, seconds in sorted(snapshot.holds.items())
        ],
        "problems": [problem.as_dict() for problem in result.problems],
    }


def _coordinator_leader(snapshot: topology.FormationSnapshot) -> Endpoint | None:
    return next((leader.endpoint for leader in snapshot.leaders if leader.group == 0), None)


def _poolers_json(snapshot: topology.FormationSnapshot) -> list[dict[str, Any]]:
    leader = _coordinator_leader(snapshot)
    return [
        {
            "address": pooler.address,
            "database": pooler.database,
            "host": pooler.target.host if pooler.target else None,
            "port": pooler.target.port if pooler.target else None,
            "paused": pooler.paused,
            "points_at_leader": leader is not None and pooler.target == leader,
            "error": pooler.error,
        }
        for pooler in snapshot.poolers
    ]


def _pooler_lines(snapshot: topology.FormationSnapshot) -> list[str]:
    """One line per pooler: where it sends the Citus database, and whether that is the leader."""
    leader = _coordinator_leader(snapshot)
    lines = []
    for pooler in snapshot.poolers:
        if pooler.error is not None:
            lines.append(f"pooler {pooler.address}: UNREACHABLE")
            continue
        verdict = "ok" if leader is not None and pooler.target == leader else "STALE"
        paused = " paused" if pooler.paused else ""
        lines.append(f"pooler {pooler.address} -> {pooler.target or '-'} {verdict}{paused}")
    return lines


def _replica_cell(snapshot: topology.FormationSnapshot, member: topology.MemberSnapshot) -> str:
    """A replica's PG_DIST_NODE cell: its secondary row, or whether it should have one."""
    row = next(
        (
            r
            for r in secondary_rows(snapshot.rows or []).get(member.group, [])
            if r.endpoint == member.endpoint
        ),
        None,
    )
    leader = next((leader for leader in snapshot.leaders if leader.group == member.group), None)
    wanted = leader is not None and member.endpoint in leader.secondaries
    if row is not None:
        return f"secondary {row.nodeid} {'ok' if wanted else 'STALE'}"
    return "secondary MISSING" if wanted else "-"


def as_table(result: StatusResult) -> str:
    snapshot = result.snapshot
    rows = primary_rows(snapshot.rows or [])
    header = ("GROUP", "MEMBER", "HOST:PORT", "ROLE", "STATE", "LAG", "CITUS", "PG_DIST_NODE")
    lines = []
    for member in snapshot.members:
        row = rows.get(member.group)
        metadata = _replica_cell(snapshot, member) if snapshot.rows is not None else "-"
        if member.is_leader:
            if row is None:
                metadata = "MISSING"
            else:
                here = member.endpoint == row.endpoint
                flags = (
                    "active" if row.isactive else "INACTIVE",
                    "synced" if row.metadatasynced else "unsynced",
                )
                metadata = f"node {row.nodeid} {'ok' if here else 'ELSEWHERE'} {' '.join(flags)}"
        lines.append(
            (
                str(member.group),
                member.name,
                str(member.endpoint or "-"),
                "leader" if member.is_leader else member.role or "-",
                member.state or "-",
                "-" if member.lag is None else str(member.lag),
                member.citus_version or ("?" if member.error else "-"),
                metadata,
            )
        )
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    table = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *lines]
    ]
    if snapshot.poolers:
        table.append("")
        table.extend(_pooler_lines(snapshot))
    if snapshot.holds:
        table.append("")
        table.extend(
            f"hold group {group}: its statements wait on the coordinator ({seconds:.1f} s so far)"
            for group, seconds in sorted(snapshot.holds.items())
        )
    if result.problems:
        table.append("")
        table.append(f"{len(result.problems)} problem(s):")
        table.extend(f"  - {problem.message}" for problem in result.problems)
    else:
        table.append("")
        table.append("healthy: every group has a leader, pg_dist_node points at each and at its replicas")
    return "\n".join(table)
