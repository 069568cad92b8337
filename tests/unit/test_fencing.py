"""convergence's fences as pure decisions: who may write metadata, and whether a plan still holds."""

from __future__ import annotations

from typing import Any

import pytest

from patroni_citus.convergence import leadership_refusal, still_planned
from patroni_citus.planner import Endpoint, GroupLeader

A, B, C = Endpoint("10.0.0.1", 5432), Endpoint("10.0.0.2", 5432), Endpoint("10.0.0.3", 5432)


def cluster(*members: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "role": role} for name, role in members]


@pytest.mark.parametrize("role", ["primary", "master"])
def test_the_dcs_leader_that_patroni_calls_primary_may_write(role: str) -> None:
    assert leadership_refusal("m1", "demo-1", role, cluster(("m1", "leader"), ("m2", "replica"))) is None


@pytest.mark.parametrize("role", ["replica", "demoted", "standby_leader", "uninitialized", ""])
def test_a_member_patroni_does_not_call_primary_may_not(role: str) -> None:
    refusal = leadership_refusal("m1", "demo-1", role, cluster(("m1", "leader")))
    assert refusal is not None and refusal.startswith("m1 is ") and "not its group's leader" in refusal


@pytest.mark.parametrize(
    ("members", "named"),
    [
        (cluster(("m1", "replica"), ("m2", "leader")), "m2"),  # the lease moved on: a stale primary
        (cluster(("m1", "replica"), ("m2", "replica")), "no member"),  # no leader at all
        ([], "no member"),
    ],
)
def test_a_primary_the_dcs_does_not_name_leader_may_not(members: list[dict[str, Any]], named: str) -> None:
    assert leadership_refusal("m1", "demo-1", "primary", members) == (
        f"the DCS names {named} the leader of demo-1, not m1"
    )


def test_a_plan_holds_while_its_group_is_unchanged() -> None:
    planned = [GroupLeader(1, A, frozenset({B})), GroupLeader(2, C)]
    assert still_planned(planned, list(planned), 1)
    assert still_planned(planned, [GroupLeader(1, A, frozenset({B}))], 1), "other groups do not matter"


@pytest.mark.parametrize(
    "current",
    [
        [GroupLeader(1, B, frozenset({A}))],  # failed over meanwhile
        [GroupLeader(1, A)],  # a secondary went away
        [GroupLeader(1, A, frozenset({B, C}))],  # a secondary came
        [],  # the group lost its leader
    ],
)
def test_a_plan_is_refused_once_its_group_changed(current: list[GroupLeader]) -> None:
    assert not still_planned([GroupLeader(1, A, frozenset({B}))], current, 1)


def test_a_group_that_was_not_planned_is_refused() -> None:
    assert not still_planned([GroupLeader(2, C)], [GroupLeader(1, A), GroupLeader(2, C)], 1)
