"""Pure judgement of a formation snapshot: every way Patroni and Citus can disagree, in plain words.

Drift in pg_dist_node is exactly a non-empty plan from planner.plan, the same one the callbacks
and reconcile apply; the other checks cover what the planner does not change.
"""

from __future__ import annotations

from dataclasses import dataclass

from patroni_citus.dcs_config import CITUS, split_libraries
from patroni_citus.planner import (
    AddNode,
    Change,
    PromoteSecondary,
    RemoveNode,
    SetCoordinator,
    UpdateNode,
    plan,
)
from patroni_citus.topology import FormationSnapshot

UNSYNCED = "metadata_not_synced"
#: Secondary rows wait for a metadata resync before they can be added or removed.
WAITS_FOR_RESYNC = ("secondary_missing", "secondary_stale")
#: Every Problem.kind this module reports (docs/status.md explains each): the exporter emits one
#: series per kind, zeros included, so a dashboard or alert never meets a missing series.
KINDS = (
    "no_leader",
    "row_not_at_leader",
    "group_missing",
    "row_without_group",
    "row_inactive",
    "secondary_missing",
    "secondary_stale",
    UNSYNCED,
    "dcs_preload",
    "preload",
    "pending_restart",
    "extension_missing",
    "member_unreachable",
    "version_mismatch",
    "coordinator_shards",
    "coordinator_unreachable",
    "pooler_stale",
    "pooler_unreachable",
)


@dataclass(frozen=True)
class Problem:
    """One finding: a stable machine-readable kind and a sentence for people."""

    kind: str
    message: str
    group: int | None = None
    member: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "group": self.group, "member": self.member, "message": self.message}


def _citus_first(value: str | None) -> bool:
    libraries = split_libraries(value or "")
    return bool(libraries) and libraries[0] == CITUS


def _change_problem(change: Change) -> Problem:
    """What a planned change says is wrong now (the plan is the one judgement of pg_dist_node)."""
    group = change.group
    match change:
        case UpdateNode(nodeid, _, old, new, "primary") | PromoteSecondary(nodeid, _, old, new):
            message = f"group {group}: pg_dist_node row {nodeid} points at {old}, but the leader is at {new}"
            return Problem("row_not_at_leader", message, group=group)
        case AddNode(_, _, "primary") | SetCoordinator():
            return Problem("group_missing", f"group {group} is missing from pg_dist_node", group=group)
        case AddNode(_, endpoint, _):
            message = f"group {group}: the running replica at {endpoint} is not a secondary in pg_dist_node"
            return Problem("secondary_missing", message, group=group)
        case UpdateNode(nodeid, _, old, _, _) | RemoveNode(nodeid, _, old, _):
            message = f"group {group}: secondary row {nodeid} points at {old}, which is not a running replica"
            return Problem("secondary_stale", message, group=group)
    return Problem("coordinator_shards", change.describe(), group=group)


def metadata_problems(snapshot: FormationSnapshot) -> list[Problem]:
    """pg_dist_node against Patroni's groups: misplaced, missing, stale, orphaned, inactive, unsynced rows."""
    if snapshot.rows is None:
        return []
    changes = plan(snapshot.leaders, snapshot.rows, snapshot.standalone)
    problems = [_change_problem(change) for change in changes]
    for row in snapshot.rows:
        if row.groupid not in snapshot.scopes_by_group:
            problems.append(
                Problem(
                    "row_without_group",
                    f"pg_dist_node row {row.nodeid} ({row.endpoint}): no Patroni group {row.groupid}",
                    group=row.groupid,
                )
            )
        elif not row.isactive:
            problems.append(
                Problem(
                    "row_inactive",
                    f"group {row.groupid}: pg_dist_node row {row.nodeid} is inactive",
                    row.groupid,
                )
            )
        elif row.groupid != 0 and row.hasmetadata and not row.metadatasynced:
            problems.append(
                Problem(
                    UNSYNCED, f"group {row.groupid}: metadata not synced to node {row.nodeid}", row.groupid
                )
            )
    return problems


def member_problems(snapshot: FormationSnapshot) -> list[Problem]:
    """Per member and per cluster: preload order, pending restarts, unreachable members, versions."""
    problems: list[Problem] = []
    for group in snapshot.leaderless_groups:
        scopes = ", ".join(snapshot.scopes_by_group.get(group, []))
        problems.append(Problem("no_leader", f"group {group} ({scopes}) has no leader", group=group))
    for scope, preload in sorted(snapshot.dcs_preload.items()):
        if not _citus_first(preload):
            problems.append(
                Problem(
                    "dcs_preload",
                    f"{scope}: DCS config has shared_preload_libraries={preload!r}; citus must come first",
                )
            )
    versions: dict[str, list[str]] = {}
    for member in snapshot.members:
        if member.error is not None:
            if member.state in ("running", "streaming"):
                problems.append(
                    Problem("member_unreachable", f"{member.name}: {member.error}", member.group, member.name)
                )
            continue
        if member.preload is not None and not _citus_first(member.preload):
            problems.append(
                Problem(
                    "preload",
                    f"{member.name}: shared_preload_libraries={member.preload!r}; citus must be first",
                    member.group,
                    member.name,
                )
            )
        if member.pending_restart:
            problems.append(
                Problem("pending_restart", f"{member.name}: restart pending", member.group, member.name)
            )
        if member.citus_version is not None:
            versions.setdefault(member.citus_version, []).append(member.name)
        elif member.preload is not None:
            problems.append(
                Problem(
                    "extension_missing",
                    f"{member.name}: extension citus is not installed",
                    member.group,
                    member.name,
                )
            )
    if len(versions) > 1:
        listed = "; ".join(f"{version} on {', '.join(names)}" for version, names in sorted(versions.items()))
        problems.append(Problem("version_mismatch", f"Citus versions differ: {listed}"))
    return problems


def pooler_problems(snapshot: FormationSnapshot) -> list[Problem]:
    """A pooler that cannot be read, or that sends clients anywhere but the coordinator group's leader."""
    leader = next((leader.endpoint for leader in snapshot.leaders if leader.group == 0), None)
    problems = []
    for pooler in snapshot.poolers:
        if pooler.error is not None:
            problems.append(
                Problem("pooler_unreachable", f"pooler {pooler.address}: {pooler.error}", group=0)
            )
        elif leader is not None and pooler.target != leader:
            message = (
                f"pooler {pooler.address} sends {pooler.database} to {pooler.target}, "
                f"but the coordinator leader is at {leader}"
            )
            problems.append(Problem("pooler_stale", message, group=0))
    return problems


def find_problems(snapshot: FormationSnapshot) -> list[Problem]:
    """Everything wrong with the formation; empty means healthy."""
    problems = member_problems(snapshot) + metadata_problems(snapshot) + pooler_problems(snapshot)
    if snapshot.coordinator_error is not None:
        problems.append(
            Problem("coordinator_unreachable", f"cannot read pg_dist_node: {snapshot.coordinator_error}")
        )
    return problems
