"""The pure planner: leaders + pg_dist_node rows -> the changes that make them agree."""

from __future__ import annotations

from patroni_citus.dcs import parse_clusters, select_formation
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


def test_parse_clusters_groups_keys_by_scope_and_reads_leader() -> None:
    member = '{"conn_url": "postgres://10.0.0.2:5432/postgres", "api_url": "http://10.0.0.2:8008/patroni",'
    member += ' "role": "primary", "state": "running", "tags": {"citus_group": 1}}'
    keys = {
        "/service/demo-1/leader": "m1",
        "/service/demo-1/members/m1": member,
        "/service/demo-1/config": '{"ttl": 30}',
        "/service/other/leader": "x",
    }
    clusters = parse_clusters("/service/", keys)
    assert set(clusters) == {"demo-1", "other"}
    demo = clusters["demo-1"]
    assert demo.leader == "m1" and demo.citus_group == 1 and demo.config == {"ttl": 30}
    assert demo.leader_member is not None and demo.leader_member.endpoint == B
    assert clusters["other"].leader_member is None and clusters["other"].citus_group is None


def test_builtin_citus_mode_groups_are_read_from_nested_keys() -> None:
    def member(port: int, role: str) -> str:
        return f'{{"conn_url": "postgres://10.0.0.9:{port}/postgres", "role": "{role}", "state": "running"}}'

    keys = {
        "/service/demo/0/leader": "c1",
        "/service/demo/0/members/c1": member(5432, "primary"),
        "/service/demo/0/config": '{"postgresql": {"parameters": {"shared_preload_libraries": "citus"}}}',
        "/service/demo/1/leader": "w1",
        "/service/demo/1/members/w1": member(5433, "primary"),
        "/service/demo/1/members/w2": member(5434, "replica"),
        "/service/demo/1/status": '{"optime": 100}',
        "/service/other-0/leader": "x",
    }
    clusters = parse_clusters("/service/", keys)
    selected = select_formation(clusters, name="demo")
    assert sorted(selected) == [0, 1]
    worker = selected[1][0]
    assert worker.scope == "demo/1" and worker.citus_group == 1 and worker.optime == 100
    assert worker.leader_member is not None and worker.leader_member.endpoint == Endpoint("10.0.0.9", 5433)
    assert select_formation(clusters, name="other") == {}


def test_separately_managed_groups_are_selected_by_tag_or_name() -> None:
    def member(group: int, coordinator: str) -> str:
        tags = f'{{"citus_group": {group}, "citus_coordinator_host": "{coordinator}"}}'
        return f'{{"conn_url": "postgres://h{group}:5432/postgres", "role": "primary", "tags": {tags}}}'

    keys = {
        "/service/a-0/members/m": member(0, "c1,c2"),
        "/service/a-1/members/m": member(1, "c1,c2"),
        "/service/b-1/members/m": member(1, "other"),
    }
    clusters = parse_clusters("/service/", keys)
    assert sorted(select_formation(clusters, coordinator_hosts="c1,c2")) == [0, 1]
    assert [c.scope for c in select_formation(clusters, name="b")[1]] == ["b-1"]
