"""The planner with secondaries: every transition a group goes through, checked against Citus's rules.

A small model of pg_dist_node applies each plan the way Citus would refuse it: host:port unique after
every statement, one primary per group, adds and removes refused while metadata is out of sync
(which any primary move causes until the next round). Every committed state is then checked.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import pytest

from patroni_citus.planner import (
    AddNode,
    Change,
    Endpoint,
    GroupLeader,
    NodeRow,
    PromoteSecondary,
    RemoveNode,
    SetCoordinator,
    UpdateNode,
    by_group,
    parked,
    plan,
)

P, R1, R2, R3 = (Endpoint(f"10.0.1.{i}", 5432) for i in range(1, 5))
C0, C1 = Endpoint("10.0.0.1", 5432), Endpoint("10.0.0.2", 5432)


def secondary(nodeid: int, group: int, endpoint: Endpoint) -> NodeRow:
    return NodeRow(nodeid, group, endpoint, noderole="secondary", hasmetadata=False, metadatasynced=False)


class CitusRefused(Exception):
    pass


@dataclass
class PgDistNode:
    """pg_dist_node as Citus guards it (only what the plan touches)."""

    rows: dict[int, NodeRow] = field(default_factory=dict)
    unsynced: bool = False
    next_id: int = 1

    def _check(self, rows: dict[int, NodeRow]) -> None:
        endpoints = [row.endpoint for row in rows.values()]
        if len(endpoints) != len(set(endpoints)):
            raise CitusRefused("there is already another node with the specified hostname and port")
        primaries = [row.groupid for row in rows.values() if row.noderole == "primary"]
        if len(primaries) != len(set(primaries)):
            raise CitusRefused("there cannot be two primary nodes in a group")

    def _statement(self, rows: dict[int, NodeRow], change: Change) -> None:
        def move(nodeid: int, endpoint: Endpoint) -> None:
            rows[nodeid] = replace(rows[nodeid], endpoint=endpoint)
            self._check(rows)

        match change:
            case AddNode(group, endpoint, role) | SetCoordinator(endpoint, group, role):
                if self.unsynced:
                    raise CitusRefused("a metadata node is out of sync")
                rows[self.next_id] = NodeRow(self.next_id, group, endpoint, noderole=role)
                self.next_id += 1
            case RemoveNode(nodeid, _group, _endpoint):
                if self.unsynced:
                    raise CitusRefused("a metadata node is out of sync")
                del rows[nodeid]
            case UpdateNode(nodeid, _group, _old, new):
                move(nodeid, new)
            case PromoteSecondary(nodeid, _group, old, new, secondary_nodeid):
                move(nodeid, parked(old))
                move(secondary_nodeid, old)
                move(nodeid, new)
        self._check(rows)

    def commit(self, changes: list[Change]) -> None:
        """One group's transaction: all statements or none."""
        rows = dict(self.rows)
        for change in changes:
            self._statement(rows, change)
        self.rows = rows
        if any(isinstance(c, UpdateNode | PromoteSecondary) and c.role == "primary" for c in changes):
            self.unsynced = True

    def resync(self) -> None:
        self.unsynced = False


def assert_matches(db: PgDistNode, leader: GroupLeader) -> None:
    group_rows = [row for row in db.rows.values() if row.groupid == leader.group]
    assert [row.endpoint for row in group_rows if row.noderole == "primary"] == [leader.endpoint]
    assert {row.endpoint for row in group_rows if row.noderole == "secondary"} == leader.secondaries


def converge(db: PgDistNode, leaders: list[GroupLeader], rounds: int = 3) -> int:
    """Apply rounds (a resync between them) until the plan is empty; returns rounds used."""
    for used in range(rounds + 1):
        changes = plan(leaders, list(db.rows.values()))
        if not changes:
            return used
        for group_changes in by_group(changes).values():
            db.commit(group_changes)
            for row in db.rows.values():
                assert not str(row.endpoint.host).endswith("-moving"), "a parked name was committed"
        db.resync()
    raise AssertionError(f"not converged after {rounds} rounds: {plan(leaders, list(db.rows.values()))}")


def test_a_new_group_gets_its_primary_first_then_its_secondaries() -> None:
    leader = GroupLeader(1, P, frozenset({R1, R2}))
    assert plan([leader], []) == [AddNode(1, P)]
    rows = [NodeRow(1, 1, P)]
    assert plan([leader], rows) == [AddNode(1, R1, "secondary"), AddNode(1, R2, "secondary")]


def test_coordinator_replicas_are_group_zero_secondaries() -> None:
    leader = GroupLeader(0, C0, frozenset({C1}))
    assert plan([leader], []) == [SetCoordinator(C0)]
    assert plan([leader], [NodeRow(1, 0, C0, shouldhaveshards=False)]) == [AddNode(0, C1, "secondary")]


def test_crash_failover_promotes_the_secondary_row_and_parks_the_dead_primary_in_it() -> None:
    rows = [NodeRow(1, 1, P), secondary(2, 1, R1), secondary(3, 1, R2)]
    after_crash = GroupLeader(1, R1, frozenset({R2}))
    assert plan([after_crash], rows) == [PromoteSecondary(1, 1, P, R1, 2)]
    # Next round (metadata resynced): the dead old primary's row goes.
    moved = [NodeRow(1, 1, R1), secondary(2, 1, P), secondary(3, 1, R2)]
    assert plan([after_crash], moved) == [RemoveNode(2, 1, P)]


def test_switchover_leaves_the_old_primary_as_a_secondary_in_one_step() -> None:
    rows = [NodeRow(1, 1, P), secondary(2, 1, R1)]
    after = GroupLeader(1, R1, frozenset({P}))
    assert plan([after], rows) == [PromoteSecondary(1, 1, P, R1, 2)]
    assert plan([after], [NodeRow(1, 1, R1), secondary(2, 1, P)]) == []


def test_promoted_row_goes_to_an_unregistered_replica_rather_than_the_dead_primary() -> None:
    rows = [NodeRow(1, 1, P), secondary(2, 1, R1)]
    after = GroupLeader(1, R1, frozenset({R3}))
    assert plan([after], rows) == [UpdateNode(2, 1, R1, R3, "secondary"), UpdateNode(1, 1, P, R1)]


def test_failover_to_a_member_without_a_row_moves_only_the_primary() -> None:
    rows = [NodeRow(1, 1, P), secondary(2, 1, R1)]
    after = GroupLeader(1, R2, frozenset({R1}))
    assert plan([after], rows) == [UpdateNode(1, 1, P, R2)]


def test_adds_and_removes_wait_while_the_primary_moves_but_updates_do_not() -> None:
    rows = [NodeRow(1, 1, P), secondary(2, 1, R3)]
    after = GroupLeader(1, R1, frozenset({P, R2}))
    # R3 is gone: its row is reused for P (an update works while unsynced); R2's add waits.
    assert plan([after], rows) == [UpdateNode(1, 1, P, R1), UpdateNode(2, 1, R3, P, "secondary")]


def test_stopped_replica_row_is_removed_and_comes_back_when_it_runs() -> None:
    rows = [NodeRow(1, 1, P), secondary(2, 1, R1)]
    assert plan([GroupLeader(1, P)], rows) == [RemoveNode(2, 1, R1)]
    assert plan([GroupLeader(1, P, frozenset({R1}))], [NodeRow(1, 1, P)]) == [AddNode(1, R1, "secondary")]


def test_a_gone_replica_row_is_reused_for_a_new_replica() -> None:
    rows = [NodeRow(1, 1, P), secondary(2, 1, R1)]
    assert plan([GroupLeader(1, P, frozenset({R2}))], rows) == [UpdateNode(2, 1, R1, R2, "secondary")]


def test_only_a_secondary_row_where_the_primary_must_be_is_removed_first() -> None:
    rows = [secondary(2, 1, R1)]
    assert plan([GroupLeader(1, R1)], rows) == [RemoveNode(2, 1, R1)]
    assert plan([GroupLeader(1, R1)], []) == [AddNode(1, R1)]


def test_secondary_descriptions_say_the_role() -> None:
    assert AddNode(1, R1, "secondary").describe() == "add group 1 secondary at 10.0.1.2:5432"
    assert RemoveNode(2, 1, R1).describe() == "remove group 1 secondary (node 2) at 10.0.1.2:5432"
    assert PromoteSecondary(1, 1, P, R1, 2).describe() == (
        "move group 1 primary (node 1) from 10.0.1.1:5432 to 10.0.1.2:5432; "
        "its secondary row 2 takes 10.0.1.1:5432"
    )


@pytest.mark.parametrize("seed", range(300))
def test_random_histories_stay_valid_and_converge_within_two_rounds(seed: int) -> None:
    """Failovers, switchovers, replicas stopping and starting, in any order: Citus never refuses a
    committed plan, no parked name or second primary is ever committed, and each state converges."""
    rng = random.Random(seed)  # noqa: S311 - reproducible histories, not secrets
    members = [P, R1, R2, R3]
    db = PgDistNode()
    leader = members[0]
    running = set(members[:3])
    for _step in range(8):
        if rng.random() < 0.4:  # failover or switchover to a running replica
            candidates = sorted(running - {leader}, key=str)
            if candidates:
                old = leader
                leader = rng.choice(candidates)
                if rng.random() < 0.5:
                    running.discard(old)  # crash: the old primary is gone
        else:  # a replica stops or starts
            flip = rng.choice([m for m in members if m != leader])
            running.symmetric_difference_update({flip})
        target = GroupLeader(1, leader, frozenset(running - {leader}))
        used = converge(db, [target])
        assert used <= 2
        assert_matches(db, target)
