"""Pure judgement of formation snapshots, and the status JSON against its documented schema."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from formation_snapshots import C0, C1, W1, W2, healthy

from patroni_citus.health import UNSYNCED, find_problems
from patroni_citus.planner import Endpoint, GroupLeader, NodeRow
from patroni_citus.status import StatusResult, as_json, as_table
from patroni_citus.topology import FormationSnapshot, PoolerSnapshot

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "status.schema.json").read_text())


def kinds(snapshot: FormationSnapshot) -> list[str]:
    return [problem.kind for problem in find_problems(snapshot)]


def test_healthy_formation_has_no_problems() -> None:
    assert find_problems(healthy()) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"rows": [NodeRow(1, 0, C0, shouldhaveshards=False), NodeRow(2, 1, W2)]}, ["row_not_at_leader"]),
        ({"rows": [NodeRow(1, 0, C0, shouldhaveshards=False)]}, ["group_missing"]),
        (
            {
                "rows": [
                    NodeRow(1, 0, C0, shouldhaveshards=False),
                    NodeRow(2, 1, W1),
                    NodeRow(9, 7, Endpoint("x", 1)),
                ]
            },
            ["row_without_group"],
        ),
        (
            {"rows": [NodeRow(1, 0, C0, shouldhaveshards=False), NodeRow(2, 1, W1, isactive=False)]},
            ["row_inactive"],
        ),
        (
            {"rows": [NodeRow(1, 0, C0, shouldhaveshards=False), NodeRow(2, 1, W1, metadatasynced=False)]},
            [UNSYNCED],
        ),
        ({"dcs_preload": {"demo-0": "citus", "demo-1": "pg_stat_statements,citus"}}, ["dcs_preload"]),
        ({"dcs_preload": {"demo-0": None, "demo-1": "citus"}}, ["dcs_preload"]),
        ({"leaders": [GroupLeader(0, C0)], "leaderless_groups": [1]}, ["no_leader"]),
        ({"coordinator_error": "refused", "rows": None}, ["coordinator_unreachable"]),
    ],
)
def test_each_kind_of_drift_is_named(change: dict[str, object], expected: list[str]) -> None:
    assert kinds(replace(healthy(), **change)) == expected  # type: ignore[arg-type]


def test_member_level_problems() -> None:
    snapshot = healthy()
    members = list(snapshot.members)
    members[1] = replace(members[1], preload="pg_stat_statements")
    members[2] = replace(members[2], pending_restart=True)
    members[3] = replace(members[3], citus_version="11.3-1")
    assert kinds(replace(snapshot, members=members)) == ["preload", "pending_restart", "version_mismatch"]


def test_unreachable_running_member_and_missing_extension() -> None:
    snapshot = healthy()
    members = list(snapshot.members)
    members[1] = replace(members[1], error="connection refused", preload=None, citus_version=None)
    members[3] = replace(members[3], citus_version=None)
    assert kinds(replace(snapshot, members=members)) == ["member_unreachable", "extension_missing"]


def test_status_json_follows_the_documented_schema_and_table_lists_problems() -> None:
    drifted = replace(healthy(), rows=[NodeRow(1, 0, C0, shouldhaveshards=False), NodeRow(2, 1, W2)])
    result = StatusResult(drifted, find_problems(drifted), datetime.now(UTC))
    payload = as_json(result)
    jsonschema.validate(payload, SCHEMA)
    assert payload["exit_code"] == 1 and payload["healthy"] is False
    assert payload["groups"][1]["pg_dist_node"]["points_at_leader"] is False
    table = as_table(result)
    assert "ELSEWHERE" in table and "1 problem(s):" in table and "10.0.1.2:5432" in table
    jsonschema.validate(as_json(StatusResult(healthy(), [], datetime.now(UTC))), SCHEMA)


def test_secondary_rows_waiting_for_a_resync_count_as_converging_only_beside_an_unsynced_row() -> None:
    from patroni_citus.health import Problem
    from patroni_citus.status import _converging

    unsynced = Problem(UNSYNCED, "group 1: metadata not synced to node 2", 1)
    stale = Problem("secondary_stale", "group 1: secondary row 3 points at 10.0.1.1:5432", 1)
    assert _converging([unsynced, stale])
    assert _converging([unsynced])
    assert not _converging([stale]), "a stale row with metadata in sync is drift"
    assert not _converging([unsynced, Problem("row_not_at_leader", "group 1 ...", 1)])


def test_secondary_drift_is_named_per_row() -> None:
    snapshot = replace(
        healthy(),
        leaders=[GroupLeader(0, C0), GroupLeader(1, W1, frozenset({W2}))],
        rows=[
            NodeRow(1, 0, C0, shouldhaveshards=False),
            NodeRow(2, 1, W1),
            NodeRow(3, 1, C1, noderole="secondary"),
        ],
    )
    problems = find_problems(snapshot)
    assert [p.kind for p in problems] == ["secondary_stale"]
    assert "secondary row 3 points at 10.0.0.2:5432" in problems[0].message
    missing = replace(snapshot, rows=[NodeRow(1, 0, C0, shouldhaveshards=False), NodeRow(2, 1, W1)])
    assert [p.message for p in find_problems(missing)] == [
        "group 1: the running replica at 10.0.1.2:5432 is not a secondary in pg_dist_node"
    ]
    document = as_json(StatusResult(snapshot, find_problems(snapshot), datetime.now(UTC)))
    jsonschema.validate(document, SCHEMA)
    assert document["groups"][1]["secondaries"] == [
        {"nodeid": 3, "host": "10.0.0.2", "port": 5432, "member": None, "points_at_replica": False}
    ]


@pytest.mark.parametrize(
    ("pooler", "expected", "line"),
    [
        (PoolerSnapshot("pgb:6432", "citus", C0), [], "pooler pgb:6432 -> 10.0.0.1:5432 ok"),
        (PoolerSnapshot("pgb:6432", "citus", C1), ["pooler_stale"], "pooler pgb:6432 -> 10.0.0.2:5432 STALE"),
        (PoolerSnapshot("pgb:6432", "citus", None), ["pooler_stale"], "pooler pgb:6432 -> - STALE"),
        (PoolerSnapshot("pgb:6432", "citus", error="refused"), ["pooler_unreachable"], "UNREACHABLE"),
        (PoolerSnapshot("pgb:6432", "citus", C0, paused=True), [], "-> 10.0.0.1:5432 ok paused"),
    ],
)
def test_a_pooler_anywhere_but_the_coordinator_leader_is_a_problem(
    pooler: PoolerSnapshot, expected: list[str], line: str
) -> None:
    snapshot = replace(healthy(), poolers=[pooler])
    assert kinds(snapshot) == expected
    result = StatusResult(snapshot, find_problems(snapshot), datetime.now(UTC))
    document = as_json(result)
    jsonschema.validate(document, SCHEMA)
    assert document["poolers"][0]["points_at_leader"] == (pooler.target == C0 and pooler.error is None)
    assert line in as_table(result)


def test_an_open_hold_is_shown_not_judged() -> None:
    """A planned stop's hold is clients waiting on purpose: status shows it, and it is no problem."""
    snapshot = replace(healthy(), holds={2: 0.5, 1: 1.234})
    assert kinds(snapshot) == []
    result = StatusResult(snapshot, find_problems(snapshot), datetime.now(UTC))
    document = as_json(result)
    jsonschema.validate(document, SCHEMA)
    assert document["holds"] == [{"group": 1, "seconds": 1.234}, {"group": 2, "seconds": 0.5}]
    table = as_table(result)
    assert "hold group 1: its statements wait on the coordinator (1.2 s so far)" in table
    assert as_json(StatusResult(healthy(), [], datetime.now(UTC)))["holds"] == []
    assert "hold group" not in as_table(StatusResult(healthy(), [], datetime.now(UTC)))
