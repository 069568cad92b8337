"""The pure planner: leaders + pg_dist_node rows -> the changes that make them agree."""

from __future__ import annotations

from patroni_citus.dcs_config import citus_first, preload_patch
from patroni_citus.planner import (
    AddNode,
    EnableShards,
    Endpoint,
    GroupLeader,
    NodeRow,
    SetCoordinator,
    UpdateNode,
    plan,
)

A, B, C = Endpoint("10.0.0.1", 5432), Endpoint("10.0.0.2", 5432), Endpoint("10.0.0.3", 6432)


def test_empty_metadata_registers_coordinator_and_adds_workers() -> None:
    changes = plan([GroupLeader(2, C), GroupLeader(0, A), GroupLeader(1, B)], [])
    assert changes == [SetCoordinator(A), AddNode(1, B), AddNode(2, C)]


def test_moved_leader_updates_the_existing_row_never_adds_a_second() -> None:
    rows = [NodeRow(1, 0, A, shouldhaveshards=False), NodeRow(5, 1, B)]
    assert plan([GroupLeader(1, C)], rows) == [UpdateNode(5, 1, B, C)]


def test_coordinator_move_updates_group_zero_row() -> None:
    rows = [NodeRow(1, 0, A, shouldhaveshards=False)]
    assert plan([GroupLeader(0, B)], rows) == [UpdateNode(1, 0, A, B)]


def test_converged_metadata_plans_nothing() -> None:
    rows = [NodeRow(1, 0, A, shouldhaveshards=False), NodeRow(2, 1, B)]
    assert plan([GroupLeader(0, A), GroupLeader(1, B)], rows) == []


def test_groups_without_a_leader_are_left_alone() -> None:
    rows = [NodeRow(1, 0, A, shouldhaveshards=False), NodeRow(2, 1, B)]
    assert plan([GroupLeader(0, A)], rows) == []


def test_secondary_rows_are_not_mistaken_for_the_primary() -> None:
    rows = [NodeRow(3, 1, C, noderole="secondary")]
    assert plan([GroupLeader(1, B)], rows) == [AddNode(1, B)]


def test_standalone_coordinator_gets_shards_once() -> None:
    assert plan([GroupLeader(0, A)], [], standalone_coordinator=True) == [SetCoordinator(A), EnableShards(A)]
    rows = [NodeRow(1, 0, A, shouldhaveshards=True)]
    assert plan([GroupLeader(0, A)], rows, standalone_coordinator=True) == []


def test_not_standalone_coordinator_keeps_shards_off() -> None:
    rows = [NodeRow(1, 0, A, shouldhaveshards=False)]
    assert plan([GroupLeader(0, A)], rows, standalone_coordinator=False) == []


def test_change_descriptions_name_group_and_endpoints() -> None:
    assert (
        UpdateNode(5, 1, B, C).describe()
        == "move group 1 primary (node 5) from 10.0.0.2:5432 to 10.0.0.3:6432"
    )


def test_citus_first_keeps_others_in_order_and_dedupes() -> None:
    assert (
        citus_first("auto_explain,citus,pg_stat_statements,citus") == "citus,auto_explain,pg_stat_statements"
    )
    assert citus_first("") == "citus"


def test_preload_patch_only_when_needed() -> None:
    assert (
        preload_patch({"postgresql": {"parameters": {"shared_preload_libraries": "citus, pg_cron"}}}) is None
    )
    assert preload_patch({"postgresql": {"parameters": {"shared_preload_libraries": "pg_cron,citus"}}}) == {
        "postgresql": {"parameters": {"shared_preload_libraries": "citus,pg_cron"}}
    }
    assert preload_patch({}) == {"postgresql": {"parameters": {"shared_preload_libraries": "citus"}}}
