"""Pure topology planning: (group leaders Patroni elected, rows in pg_dist_node) -> changes.

Callbacks, `reconcile`, `switchover` and `status` share this one function; drift is simply a
non-empty plan. It never plans a second primary row for a group (an existing row is moved, not
duplicated) nor a secondary row at a group's primary. A group's changes are applied in one
transaction, so no other session ever sees a row in between.

Citus rules the plan follows (checked on Citus 13.2.2 and 11.3.1):
  * host:port is unique across pg_dist_node, so promoting a secondary frees its row first: the
    freed row takes a replica that has no row yet or else the old primary (now a replica, or
    gone), then the primary row moves to the promoted member (PromoteSecondary);
  * citus_update_node works while metadata is out of sync (it is what a failover needs), but
    adding or removing a node needs every metadata worker synced: after a primary move the group's
    adds and removes wait for the next round, and a gone secondary's row is reused for a new one
    (an update) wherever it can be.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

COORDINATOR_GROUP = 0


@dataclass(frozen=True)
class Endpoint:
    """A PostgreSQL host and port as Citus stores them in pg_dist_node."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class GroupLeader:
    """Patroni's current leader of one Citus group, and the replicas that should be its secondaries."""

    group: int
    endpoint: Endpoint
    secondaries: frozenset[Endpoint] = frozenset()


@dataclass(frozen=True)
class NodeRow:
    """One row of the coordinator's pg_dist_node (the columns the planner and status use)."""

    nodeid: int
    groupid: int
    endpoint: Endpoint
    noderole: str = "primary"
    isactive: bool = True
    hasmetadata: bool = True
    metadatasynced: bool = True
    shouldhaveshards: bool = True


PRIMARY, SECONDARY = "primary", "secondary"
PARKED_SUFFIX = "-moving"  # placeholder host of a primary row for the instant of a swap (in-transaction)


@dataclass(frozen=True)
class SetCoordinator:
    """Register the coordinator's first row (group 0) with citus_set_coordinator_host."""

    endpoint: Endpoint
    group: int = COORDINATOR_GROUP
    role: str = PRIMARY

    def describe(self) -> str:
        return f"register coordinator (group 0) at {self.endpoint}"


@dataclass(frozen=True)
class AddNode:
    """Register a group's primary or a secondary with citus_add_node(..., groupid, noderole)."""

    group: int
    endpoint: Endpoint
    role: str = PRIMARY

    def describe(self) -> str:
        return f"add group {self.group} {self.role} at {self.endpoint}"


@dataclass(frozen=True)
class UpdateNode:
    """Move an existing row (a group's primary or one of its secondaries) with citus_update_node."""

    nodeid: int
    group: int
    old: Endpoint
    new: Endpoint
    role: str = PRIMARY

    @property
    def endpoint(self) -> Endpoint:
        return self.new

    def describe(self) -> str:
        return f"move group {self.group} {self.role} (node {self.nodeid}) from {self.old} to {self.new}"


@dataclass(frozen=True)
class PromoteSecondary:
    """Move the primary row to a member that has a secondary row, freeing that row first.

    host:port is unique, so this is several citus_update_node calls in the group's transaction
    (``moves``, in order): the primary row is parked on a placeholder, the promoted member's row
    takes the old primary, the primary row moves to the new leader. When the old primary is gone and
    another replica has a row, the promoted member's row takes that replica and the replica's row
    takes the dead address, written last: Citus reads from the first secondary row of a group it
    finds in pg_dist_node (heap order, no retry), and a newer row version lies after older ones.
    """

    nodeid: int
    group: int
    old: Endpoint
    new: Endpoint
    moves: tuple[tuple[int, Endpoint], ...]
    role: str = PRIMARY

    @property
    def endpoint(self) -> Endpoint:
        return self.new

    def describe(self) -> str:
        return (
            f"move group {self.group} primary (node {self.nodeid}) from {self.old} to {self.new}, "
            f"freeing its secondary row ({len(self.moves)} row moves in one transaction)"
        )


@dataclass(frozen=True)
class RemoveNode:
    """Drop a secondary row that points at no running replica (citus_remove_node)."""

    nodeid: int
    group: int
    endpoint: Endpoint
    role: str = SECONDARY

    def describe(self) -> str:
        return f"remove group {self.group} {self.role} (node {self.nodeid}) at {self.endpoint}"


@dataclass(frozen=True)
class EnableShards:
    """Let a standalone coordinator hold shards (citus_set_node_property shouldhaveshards)."""

    endpoint: Endpoint
    group: int = COORDINATOR_GROUP
    role: str = PRIMARY

    def describe(self) -> str:
        return f"let the standalone coordinator at {self.endpoint} hold shards"


Change = SetCoordinator | AddNode | UpdateNode | PromoteSecondary | RemoveNode | EnableShards


def primary_rows(rows: Iterable[NodeRow]) -> dict[int, NodeRow]:
    """The primary row of each group (Citus allows one per group in the default cluster)."""
    return {row.groupid: row for row in rows if row.noderole == PRIMARY}


def secondary_rows(rows: Iterable[NodeRow]) -> dict[int, list[NodeRow]]:
    """The secondary rows of each group, by node id."""
    by_group: dict[int, list[NodeRow]] = {}
    for row in sorted(rows, key=lambda item: item.nodeid):
        if row.noderole == SECONDARY:
            by_group.setdefault(row.groupid, []).append(row)
    return by_group


def parked(endpoint: Endpoint) -> Endpoint:
    """Where a primary row waits while its promoted secondary's row is freed (never committed)."""
    return Endpoint(f"{endpoint.host}{PARKED_SUFFIX}", endpoint.port)


def _move_primary(
    primary: NodeRow, leader: GroupLeader, secondaries: dict[Endpoint, NodeRow]
) -> list[Change]:
    """The primary row to the new leader; a promoted secondary's row takes a new replica or the old one."""
    group, old, new = leader.group, primary.endpoint, leader.endpoint
    promoted = secondaries.pop(new, None)
    if promoted is None:
        return [UpdateNode(primary.nodeid, group, old, new)]
    wanted = leader.secondaries - {new}
    unregistered = sorted(wanted - secondaries.keys() - {old}, key=str)
    if unregistered and old not in wanted:
        reused = unregistered[0]
        secondaries[reused] = NodeRow(promoted.nodeid, group, reused, SECONDARY)
        return [
            UpdateNode(promoted.nodeid, group, new, reused, SECONDARY),
            UpdateNode(primary.nodeid, group, old, new),
        ]
    live = sorted((row for ep, row in secondaries.items() if ep in wanted), key=lambda row: row.nodeid)
    moves: tuple[tuple[int, Endpoint], ...]
    if old not in wanted and live:
        relay = live[0]  # its address moves to the freed row; its own row takes the dead primary, last
        secondaries[relay.endpoint] = NodeRow(promoted.nodeid, group, relay.endpoint, SECONDARY)
        secondaries[old] = NodeRow(relay.nodeid, group, old, SECONDARY)
        moves = (
            (primary.nodeid, parked(old)),
            (relay.nodeid, parked(relay.endpoint)),
            (promoted.nodeid, relay.endpoint),
            (relay.nodeid, old),
            (primary.nodeid, new),
        )
    else:  # the old primary rejoins as a replica (a switchover), or no replica has a row to relay
        secondaries[old] = NodeRow(promoted.nodeid, group, old, SECONDARY)
        moves = ((primary.nodeid, parked(old)), (promoted.nodeid, old), (primary.nodeid, new))
    return [PromoteSecondary(primary.nodeid, group, old, new, moves)]


def _settle_secondaries(
    leader: GroupLeader, secondaries: dict[Endpoint, NodeRow], may_add_or_remove: bool
) -> list[Change]:
    """Secondary rows onto exactly the wanted replicas: reuse gone rows first, then add or remove."""
    wanted = leader.secondaries - {leader.endpoint}
    gone = [
        row
        for endpoint, row in sorted(secondaries.items(), key=lambda item: item[1].nodeid)
        if endpoint not in wanted
    ]
    missing = sorted(wanted - secondaries.keys(), key=str)
    changes: list[Change] = [
        UpdateNode(row.nodeid, leader.group, row.endpoint, endpoint, SECONDARY)
        for row, endpoint in zip(gone, missing, strict=False)
    ]
    if may_add_or_remove:
        changes += [RemoveNode(row.nodeid, leader.group, row.endpoint) for row in gone[len(missing) :]]
        changes += [AddNode(leader.group, endpoint, SECONDARY) for endpoint in missing[len(gone) :]]
    return changes


def plan_group(
    leader: GroupLeader, rows: Sequence[NodeRow], standalone_coordinator: bool = False
) -> list[Change]:
    """The changes for one group, in the order they must run (in one transaction)."""
    group_rows = [row for row in rows if row.groupid == leader.group]
    primary = primary_rows(group_rows).get(leader.group)
    secondaries = {row.endpoint: row for row in secondary_rows(group_rows).get(leader.group, [])}
    changes: list[Change] = []
    if primary is None:
        if leader.endpoint in secondaries:  # only a secondary row where the primary must go
            changes.append(RemoveNode(secondaries.pop(leader.endpoint).nodeid, leader.group, leader.endpoint))
        elif leader.group == COORDINATOR_GROUP:
            changes.append(SetCoordinator(leader.endpoint))
        else:
            changes.append(AddNode(leader.group, leader.endpoint))
    elif primary.endpoint != leader.endpoint:
        changes += _move_primary(primary, leader, secondaries)
    if (
        leader.group == COORDINATOR_GROUP
        and standalone_coordinator
        and not (primary and primary.shouldhaveshards)
    ):
        changes.append(EnableShards(leader.endpoint))
    return changes + _settle_secondaries(leader, secondaries, may_add_or_remove=not changes)


def plan(
    leaders: Sequence[GroupLeader], rows: Sequence[NodeRow], standalone_coordinator: bool = False
) -> list[Change]:
    """Changes that make pg_dist_node match every group: primary at the leader, secondaries at its replicas.

    Groups without a known leader are left alone: moving a row anywhere but to an elected
    leader could only make things worse.

    >>> a, b = Endpoint("10.0.0.1", 5432), Endpoint("10.0.0.2", 5432)
    >>> [c.describe() for c in plan([GroupLeader(1, b)], [NodeRow(7, 1, a)])]
    ['move group 1 primary (node 7) from 10.0.0.1:5432 to 10.0.0.2:5432']
    >>> plan([GroupLeader(1, b)], [NodeRow(7, 1, b)])
    []
    >>> [c.describe() for c in plan([GroupLeader(1, b, frozenset({a}))], [NodeRow(7, 1, b)])]
    ['add group 1 secondary at 10.0.0.1:5432']
    """
    return [
        change
        for leader in sorted(leaders, key=lambda item: item.group)
        for change in plan_group(leader, rows, standalone_coordinator)
    ]


def by_group(changes: Iterable[Change]) -> dict[int, list[Change]]:
    """A plan split into its groups' transactions, in plan order."""
    groups: dict[int, list[Change]] = {}
    for change in changes:
        groups.setdefault(change.group, []).append(change)
    return groups
