"""Pure topology planning: (group leaders Patroni elected, rows in pg_dist_node) -> changes.

Callbacks, `reconcile` and `status` share this one function; drift is simply a non-empty plan.
It never plans a second primary row for a group: an existing row is moved, not duplicated.
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
    """Patroni's current leader of one Citus group."""

    group: int
    endpoint: Endpoint


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


@dataclass(frozen=True)
class SetCoordinator:
    """Register the coordinator's first row (group 0) with citus_set_coordinator_host."""

    endpoint: Endpoint
    group: int = COORDINATOR_GROUP

    def describe(self) -> str:
        return f"register coordinator (group 0) at {self.endpoint}"


@dataclass(frozen=True)
class AddNode:
    """Register a worker group's primary with citus_add_node(..., groupid => group)."""

    group: int
    endpoint: Endpoint

    def describe(self) -> str:
        return f"add group {self.group} primary at {self.endpoint}"


@dataclass(frozen=True)
class UpdateNode:
    """Move a group's existing primary row to the new leader with citus_update_node."""

    nodeid: int
    group: int
    old: Endpoint
    new: Endpoint

    @property
    def endpoint(self) -> Endpoint:
        return self.new

    def describe(self) -> str:
        return f"move group {self.group} primary (node {self.nodeid}) from {self.old} to {self.new}"


@dataclass(frozen=True)
class EnableShards:
    """Let a standalone coordinator hold shards (citus_set_node_property shouldhaveshards)."""

    endpoint: Endpoint
    group: int = COORDINATOR_GROUP

    def describe(self) -> str:
        return f"let the standalone coordinator at {self.endpoint} hold shards"


Change = SetCoordinator | AddNode | UpdateNode | EnableShards


def primary_rows(rows: Iterable[NodeRow]) -> dict[int, NodeRow]:
    """The primary row of each group (Citus allows one per group in the default cluster)."""
    return {row.groupid: row for row in rows if row.noderole == "primary"}


def plan(
    leaders: Sequence[GroupLeader], rows: Sequence[NodeRow], standalone_coordinator: bool = False
) -> list[Change]:
    """Changes that make pg_dist_node point every group's primary row at that group's leader.

    Groups without a known leader are left alone: moving a row anywhere but to an elected
    leader could only make things worse.

    >>> a, b = Endpoint("10.0.0.1", 5432), Endpoint("10.0.0.2", 5432)
    >>> [c.describe() for c in plan([GroupLeader(1, b)], [NodeRow(7, 1, a)])]
    ['move group 1 primary (node 7) from 10.0.0.1:5432 to 10.0.0.2:5432']
    >>> plan([GroupLeader(1, b)], [NodeRow(7, 1, b)])
    []
    """
    current = primary_rows(rows)
    changes: list[Change] = []
    for leader in sorted(leaders, key=lambda item: item.group):
        row = current.get(leader.group)
        if row is None:
            if leader.group == COORDINATOR_GROUP:
                changes.append(SetCoordinator(leader.endpoint))
            else:
                changes.append(AddNode(leader.group, leader.endpoint))
        elif row.endpoint != leader.endpoint:
            changes.append(UpdateNode(row.nodeid, leader.group, row.endpoint, leader.endpoint))
        if (
            leader.group == COORDINATOR_GROUP
            and standalone_coordinator
            and not (row and row.shouldhaveshards)
        ):
            changes.append(EnableShards(leader.endpoint))
    return changes
