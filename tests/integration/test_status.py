"""status finds each kind of drift on a real formation, exits 1, and reconcile mends it (exit 0)."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from harness import CLI, LocalFormation, local_formation, run_cli, wait_until

from patroni_citus import patroni_api
from patroni_citus.local.layout import MemberLayout

pytestmark = pytest.mark.integration
SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "status.schema.json").read_text())


@pytest.fixture(scope="module")
def formation() -> Iterator[LocalFormation]:
    with local_formation(workers=2, members=1) as running:
        yield running


def config_of(formation: LocalFormation) -> str:
    return str(formation.layout.member(0, 0).config_path)


def status(formation: LocalFormation) -> tuple[int, dict[str, object]]:
    result = run_cli("status", "-c", config_of(formation), "--json", check=False)
    payload: dict[str, object] = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, payload


def problem_kinds(payload: dict[str, object]) -> set[str]:
    return {str(problem["kind"]) for problem in payload.get("problems", [])}  # type: ignore[union-attr]


def wait_healthy(formation: LocalFormation, timeout: float = 60) -> None:
    wait_until("status to report a healthy formation", lambda: status(formation)[0] == 0, timeout)


def wait_for_problem(formation: LocalFormation, kind: str, timeout: float = 60) -> dict[str, object]:
    def probe() -> dict[str, object] | None:
        code, payload = status(formation)
        return payload if code == 1 and kind in problem_kinds(payload) else None

    return wait_until(f"status to report {kind} with exit 1", probe, timeout)  # type: ignore[return-value]


def reconcile(formation: LocalFormation, *extra: str) -> str:
    return run_cli("reconcile", "-c", config_of(formation), *extra).stdout


def test_healthy_formation_exits_zero_with_schema_valid_json(formation: LocalFormation) -> None:
    wait_healthy(formation)
    code, payload = status(formation)
    jsonschema.validate(payload, SCHEMA)
    assert code == 0 and payload["healthy"] is True and payload["problems"] == []
    assert {g["group"] for g in payload["groups"]} == {0, 1, 2}  # type: ignore[union-attr]
    assert all(g["pg_dist_node"]["points_at_leader"] for g in payload["groups"])  # type: ignore[union-attr,index]
    table = run_cli("status", "-c", config_of(formation)).stdout
    assert "healthy" in table and "it-2-0" in table


def test_dcs_and_formation_name_find_the_same_formation(formation: LocalFormation) -> None:
    env = {"PGPASSFILE": str(formation.layout.pgpass_path)}
    etcd = f"http://127.0.0.1:{formation.layout.etcd_client_port}"
    result = run_cli("status", "--dcs", etcd, "--formation", "it", "--json", check=False, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(json.loads(result.stdout)["members"]) == 3


def point_row_elsewhere(formation: LocalFormation, group: int) -> MemberLayout:
    """Drift no callback mends (nothing happens in Patroni): the group's row moves to 127.0.0.9."""
    worker = formation.layout.member(group, 0)
    formation.query(
        formation.layout.member(0, 0),
        "SELECT citus_update_node(nodeid, %s, %s) FROM pg_dist_node WHERE groupid = %s",
        dbname="citus",
        params=("127.0.0.9", worker.postgres_port, group),
    )
    return worker


def test_row_pointing_elsewhere_is_reported_and_reconciled(formation: LocalFormation) -> None:
    point_row_elsewhere(formation, 1)
    payload = wait_for_problem(formation, "row_not_at_leader")
    assert any("127.0.0.9" in str(p["message"]) for p in payload["problems"])  # type: ignore[union-attr,index]
    assert "would: move group 1 primary" in reconcile(formation, "--dry-run")
    assert "did: move group 1 primary" in reconcile(formation)
    assert "nothing to change" in reconcile(formation)
    wait_healthy(formation)


def test_reconcile_every_mends_drift_as_it_appears_and_stops_on_sigterm(formation: LocalFormation) -> None:
    """The safety net: a loop that mends drift which no callback would."""
    loop = subprocess.Popen(
        [CLI, "reconcile", "-c", config_of(formation), "--every", "1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        worker = point_row_elsewhere(formation, 2)
        wait_healthy(formation, 30)
        assert loop.poll() is None, "the loop ended by itself"
    finally:
        loop.send_signal(signal.SIGTERM)
        stdout, stderr = loop.communicate(timeout=30)
    assert loop.returncode == 0, stderr
    assert stderr.startswith("reconciling every 1s"), stderr
    rounds = [json.loads(line) for line in stdout.splitlines()]
    assert all(datetime.fromisoformat(r["at"]).utcoffset() == timedelta(0) for r in rounds), rounds
    assert [change for round_ in rounds for change in round_["changes"]] == [
        f"move group 2 primary (node {node_id(formation, 2)}) from 127.0.0.9:{worker.postgres_port}"
        f" to 127.0.0.1:{worker.postgres_port}"
    ], rounds


def node_id(formation: LocalFormation, group: int) -> int:
    rows = formation.query(
        formation.layout.member(0, 0),
        "SELECT nodeid FROM pg_dist_node WHERE groupid = %s AND noderole = 'primary'",
        dbname="citus",
        params=(group,),
    )
    return int(rows[0][0])


def test_citus_removed_from_dcs_config_is_reported_and_reconciled(formation: LocalFormation) -> None:
    member = formation.layout.member(1, 0)
    auth = formation.rest_auth
    patch = {"postgresql": {"parameters": {"shared_preload_libraries": None}}}
    patroni_api.patch_dynamic_config(member.rest_url, patch, auth)
    wait_for_problem(formation, "dcs_preload")
    assert "did: set shared_preload_libraries=citus in it-1's DCS config" in reconcile(formation)
    wait_healthy(formation, timeout=90)


def test_stopped_group_is_reported_until_it_returns(formation: LocalFormation) -> None:
    name = formation.layout.member(2, 0).name
    run_cli("local", "stop-member", "--base-dir", str(formation.base), name)

    def reports_stopped_group() -> bool:
        code, payload = status(formation)
        return code == 1 and bool(problem_kinds(payload) & {"no_leader", "row_without_group"})

    try:
        wait_until("status to report the stopped group with exit 1", reports_stopped_group)
    finally:
        run_cli("local", "start-member", "--base-dir", str(formation.base), name)
    wait_healthy(formation, timeout=90)


def test_unreachable_coordinator_exits_two(formation: LocalFormation) -> None:
    name = formation.layout.member(0, 0).name
    run_cli("local", "stop-member", "--base-dir", str(formation.base), name)
    try:
        wait_until("status to exit 2 without a coordinator", lambda: status(formation)[0] == 2)
    finally:
        run_cli("local", "start-member", "--base-dir", str(formation.base), name)
    wait_healthy(formation, timeout=90)


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "--watch", "0"),
        ("status", "--dcs", "http://127.0.0.1:1", "--formation", "nowhere"),
        ("status", "-c", "/nonexistent/patroni.yml"),
        ("reconcile", "--bogus-flag"),
        ("reconcile", "--every", "0"),
        ("reconcile", "--every", "soon"),
    ],
)
def test_bad_flags_and_unreachable_dcs_exit_two(args: tuple[str, ...]) -> None:
    result = run_cli(*args, check=False, env={"PATRONI_CITUS_CONFIG": ""})
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    assert result.stderr.strip(), "a reason must be printed"
    assert "Traceback" not in result.stderr
