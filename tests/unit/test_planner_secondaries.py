"""The planner with secondaries: every transition a group goes through, checked against Citus's rules.

A small model of pg_dist_node applies each plan the way Citus would refuse it: host:port unique after
every statement, one primary per group, adds and removes refused while metadata is out of sync
(which any primary move causes until the next round). Every committed state is then checked. The
model also keeps heap order, because Citus sends a group's reads to the first secondary row it finds
in a scan of pg_dist_node: a new row version takes the lowest free line pointer of the page (freed
by pruning, which the model does after every commit, the worst case) or else goes after the others.
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
    written: dict[int, int] = field(default_factory=dict)  # nodeid -> line pointer of its live version
    free: set[int] = field(default_factory=set)  # line pointers pruning has freed
    dead: set[int] = field(default_factory=set)  # versions replaced, not pruned yet
    slots: int = 0

    def first_secondary(self, group: int) -> Endpoint | None:
        """Where Citus sends the group's reads with use_secondary_nodes = 'always'."""
        rows = [r for r in self.rows.values() if r.groupid == group and r.noderole == "secondary"]
        return min(rows, key=lambda r: self.written[r.nodeid]).endpoint if rows else None

    def _place(self, nodeid: int) -> None:
        if nodeid in self.written:
            self.dead.add(self.written[nodeid])
        if self.free:
            slot = min(self.free)
            self.free.discard(slot)
        else:
            self.slots += 1
            slot = self.slots
        self.written[nodeid] = slot

    def prune(self) -> None:
        self.free |= self.dead
        self.dead.clear()

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
            self._place(nodeid)

        match change:
            case AddNode(group, endpoint, role) | SetCoordinator(endpoint, group, role):
                if self.unsynced:
                    raise CitusRefused("a metadata node is out of sync")
                rows[self.next_id] = NodeRow(self.next_id, group, endpoint, noderole=role)
                self._place(self.next_id)
                self.next_id += 1
            case RemoveNode(nodeid, _group, _endpoint):
                if self.unsynced:
                    raise CitusRefused("a metadata node is out of sync")
                del rows[nodeid]
                self.dead.add(self.written.pop(nodeid))
            case UpdateNode(nodeid, _group, _old, new):
                move(nodeid, new)
            case PromoteSecondary(moves=moves):
                for nodeid, endpoint in moves:
                    move(nodeid, endpoint)
        self._check(rows)

    def commit(self, changes: list[Change]) -> None:
        """One group's transaction: all statements or none."""
        rows = dict(self.rows)
        for change in changes:
            self._statement(rows, change)
        self.rows = rows
        self.prune()
        if any(isinstance(c, UpdateNode | PromoteSecondary) and c.role == "primary" for c in changes):
            self.unsynced = True

    def resync(self) -> None:
        self.unsynced = False


def assert_matches(db: PgDistNode, leader: GroupLeader) -> None:
    group_rows = [row for row in db.rows.values() if row.groupid == leader.group]
    assert [row.endpoint for row in group_rows if row.noderole == "primary"] == [leader.endpoint]
    assert {row.endpoint for row in group_rows if row.noderole == "secondary"} == leader.secondaries


def converge(db: PgDistNode, leaders: list[GroupLeader], rounds: int = 3) -> int:
    """Apply rounds (a resync between them) until the plan is empty; returns rounds used.

    After every commit: no parked name, and reads with use_secondary_nodes = 'always' reach a
    running replica whenever the group has one with a row (a dead row is never read first).
    """
    for used in range(rounds + 1):
        changes = plan(leaders, list(db.rows.values()))
        if not changes:
            return used
        for group_changes in by_group(changes).values():
            db.commit(group_changes)
            for row in db.rows.values():
                assert not str(row.endpoint.host).endswith("-moving"), "a parked name was committed"
            for leader in leaders:
                registered = {r.endpoint for r in db.rows.values() if r.groupid == leader.group}
                if leader.secondaries & registered:
                    assert db.first_secondary(leader.group) in leader.secondaries, "reads sent to a dead row"
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
    # R1's row takes R2, R2's row takes the dead primary, written last (read after R2's).
    moves = ((1, parked(P)), (3, parked(R2)), (2, R2), (3, P), (1, R1))
    assert plan([after_crash], rows) == [PromoteSecondary(1, 1, P, R1, moves)]
    # Next round (metadata resynced): the dead old primary's row goes.
    moved = [NodeRow(1, 1, R1), secondary(2, 1, R2), secondary(3, 1, P)]
    assert plan([after_crash], moved) == [RemoveNode(3, 1, P)]


def test_reads_go_to_a_running_replica_right_after_a_crash_failover() -> None:
    db = PgDistNode()
    target = GroupLeader(1, P, frozenset({R1, R2}))
    converge(db, [target])
    after_crash = GroupLeader(1, R1, frozenset({R2}))
    db.commit(plan([after_crash], list(db.rows.values())))  # the promotion's transaction only
    assert db.first_secondary(1) == R2


def test_switchover_leaves_the_old_primary_as_a_secondary_in_one_step() -> None:
    rows = [NodeRow(1, 1, P), secondary(2, 1, R1)]
    after = GroupLeader(1, R1, frozenset({P}))
    assert plan([after], rows) == [PromoteSecondary(1, 1, P, R1, ((1, parked(P)), (2, P), (1, R1)))]
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
    swap = PromoteSecondary(1, 1, P, R1, ((1, parked(P)), (2, P), (1, R1)))
    assert swap.describe() == (
        "move group 1 primary (node 1) from 10.0.1.1:5432 to 10.0.1.2:5432, "
        "freeing its secondary row (3 row moves in one transaction)"
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
