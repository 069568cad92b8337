"""A formation on ZooKeeper (`local up --dcs zookeeper`): the same callbacks, status and reconcile.

The formation starts a standalone ZooKeeper from Debian's package (its own data directory and
zoo.cfg under the base directory) instead of etcd; Patroni and the CLI reach it through Patroni's
own ZooKeeper client. Registration, a worker primary crash, status by config and by
`--dcs zookeeper://` and reconcile of a row moved by hand must all work as on etcd.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml
from formation_steps import leader_of, member_named, metadata_matches_leaders, primary_rows, restore
from harness import LocalFormation, local_formation, processes_mentioning, run_cli, wait_until

from patroni_citus.local import processes, zookeeper

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def formation() -> Iterator[LocalFormation]:
    with local_formation(workers=1, members=2, dcs="zookeeper") as running:
        yield running


def config_of(formation: LocalFormation) -> str:
    return str(formation.layout.member(0, 0).config_path)


def status_by_config(formation: LocalFormation) -> tuple[int, dict[str, object]]:
    result = run_cli("status", "-c", config_of(formation), "--json", check=False)
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else {}


def test_members_use_the_formations_own_zookeeper_and_no_etcd(formation: LocalFormation) -> None:
    state = formation.state()
    assert state.layout.dcs == "zookeeper" and state.dcs_pid is not None
    assert zookeeper.is_ours(state.dcs_pid), processes.command_line(state.dcs_pid)
    assert zookeeper.is_ok(formation.layout)
    config = yaml.safe_load(formation.layout.member(1, 0).config_path.read_text())
    assert config["zookeeper"] == {"hosts": [f"127.0.0.1:{formation.layout.zookeeper_client_port}"]}
    assert "etcd3" not in config and "etcd" not in config
    assert not [line for line in processes_mentioning(str(formation.base)) if "/etcd " in line]


def test_every_group_is_registered_at_its_leader(formation: LocalFormation) -> None:
    wait_until("pg_dist_node to match every group's leader", lambda: metadata_matches_leaders(formation), 60)
    assert set(primary_rows(formation)) == {0, 1}


def test_status_is_healthy_by_config_and_by_dcs_url(formation: LocalFormation) -> None:
    wait_until("status -c to report a healthy formation", lambda: status_by_config(formation)[0] == 0, 60)
    url = f"zookeeper://127.0.0.1:{formation.layout.zookeeper_client_port}"
    by_url = run_cli(
        "status",
        "--dcs",
        url,
        "--formation",
        formation.layout.name,
        "--json",
        check=False,
        env={"PGPASSFILE": str(formation.layout.pgpass_path)},
    )
    assert by_url.returncode == 0, by_url.stdout + by_url.stderr
    assert len(json.loads(by_url.stdout)["members"]) == 4


def move_row_by_hand(formation: LocalFormation, group: int) -> None:
    """Drift no callback mends (nothing happens in Patroni): the group's row moves to 127.0.0.9.

    As test_status's point_row_elsewhere, but on the coordinator's leader: these groups have two members.
    """
    leader = leader_of(formation, 0)
    assert leader is not None
    formation.query(
        member_named(formation, leader),
        "SELECT citus_update_node(nodeid, %s, nodeport) FROM pg_dist_node WHERE groupid = %s",
        dbname="citus",
        params=("127.0.0.9", group),
    )


def test_reconcile_mends_a_row_moved_by_hand(formation: LocalFormation) -> None:
    move_row_by_hand(formation, 1)
    assert primary_rows(formation)[1][0] == "127.0.0.9"
    wait_until("status to see the moved row (exit 1)", lambda: status_by_config(formation)[0] == 1, 30)
    mended = run_cli("reconcile", "-c", config_of(formation)).stdout
    assert "did: move group 1 primary" in mended, mended
    assert "nothing to change" in run_cli("reconcile", "-c", config_of(formation)).stdout
    wait_until("status to be healthy again", lambda: status_by_config(formation)[0] == 0, 60)


def test_killed_worker_primary_fails_over_and_converges(formation: LocalFormation) -> None:
    old = leader_of(formation, 1)
    assert old is not None
    run_cli("local", "stop-member", "--base-dir", str(formation.base), "--kill", old)
    wait_until("group 1 to elect a new leader", lambda: leader_of(formation, 1) not in (None, old), 90)
    new = leader_of(formation, 1)
    assert new is not None
    wait_until("group 1's row to move to its new leader", lambda: metadata_matches_leaders(formation), 60)
    restore(formation, old)
    wait_until("status to be healthy after the failover", lambda: status_by_config(formation)[0] == 0, 120)
    new_member = member_named(formation, new)
    assert primary_rows(formation)[1] == (new_member.host, new_member.postgres_port, True)


def test_down_stops_zookeeper(formation: LocalFormation) -> None:
    pid = formation.state().dcs_pid
    assert pid is not None
    run_cli("local", "down", "--base-dir", str(formation.base))
    assert not processes.is_alive(pid)
    assert processes_mentioning(str(formation.base)) == []
