"""Our view of the DCS built from Patroni's own Cluster objects, and choosing a formation's clusters."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner
from patroni.dcs import Cluster as PatroniCluster
from patroni.dcs import ClusterConfig, Leader, Member, Status, SyncState

from patroni_citus.cli import cli
from patroni_citus.dcs import Cluster, cluster_from_patroni, formation_scopes, select_formation
from patroni_citus.errors import ConfigurationError
from patroni_citus.patroni_dcs import DcsConfig, dcs_config
from patroni_citus.planner import Endpoint


def patroni_member(name: str, port: int, role: str, state: str = "running", **data: Any) -> Member:
    value = {
        "conn_url": f"postgres://10.0.0.9:{port}/postgres",
        "api_url": f"http://10.0.0.9:{port + 1000}/patroni",
        "role": role,
        "state": state,
        **data,
    }
    return Member.from_node(1, name, None, json.dumps(value))


def patroni_cluster(
    members: list[Member], leader: str | None, config: dict[str, Any] | None = None, lsn: int = 0
) -> PatroniCluster:
    leader_member = next((m for m in members if m.name == leader), None)
    return PatroniCluster(
        None,
        ClusterConfig.from_node(1, json.dumps(config)) if config is not None else None,
        Leader(1, None, leader_member) if leader_member is not None else None,
        Status(lsn, None, []),
        members,
        None,
        SyncState.empty(),
        None,
        None,
        {},
    )


def test_a_patroni_cluster_becomes_ours_with_leader_tags_config_and_lag() -> None:
    members = [
        patroni_member("m1", 5432, "primary", tags={"citus_group": 1}),
        patroni_member("m2", 5433, "replica", xlog_location=60, pending_restart=True),
    ]
    ours = cluster_from_patroni("demo-1", patroni_cluster(members, "m1", {"ttl": 30}, lsn=100))
    assert ours.scope == "demo-1" and ours.leader == "m1" and ours.config == {"ttl": 30}
    assert ours.citus_group == 1 and ours.optime == 100
    assert ours.running_leader is not None and ours.running_leader.endpoint == Endpoint("10.0.0.9", 5432)
    replica = ours.members[1]
    assert replica.pending_restart and ours.lag(replica) == 40 and ours.lag(ours.members[0]) is None


@pytest.mark.parametrize(
    ("role", "state"),
    [("replica", "running"), ("standby_leader", "running"), ("primary", "starting"), ("primary", "stopped")],
)
def test_running_leader_is_a_running_writable_primary_only(role: str, state: str) -> None:
    """One definition for status, reconcile and callbacks: a standby leader or a stopped primary is none."""
    ours = cluster_from_patroni("demo-1", patroni_cluster([patroni_member("m1", 5432, role, state)], "m1"))
    assert ours.leader_member is not None
    assert ours.running_leader is None


def test_a_leader_key_without_its_member_has_no_endpoint() -> None:
    ours = cluster_from_patroni("demo-1", patroni_cluster([], None))
    assert ours.leader is None and ours.leader_member is None and ours.running_leader is None


def test_builtin_mode_groups_are_named_scope_slash_group() -> None:
    worker = cluster_from_patroni("demo", patroni_cluster([patroni_member("w1", 5433, "primary")], "w1"), 1)
    assert worker.scope == "demo/1" and worker.citus_group == 1
    assert select_formation({worker.scope: worker}, name="demo") == {1: [worker]}
    assert select_formation({worker.scope: worker}, name="other") == {}


def test_separately_managed_groups_are_selected_by_tag_or_name() -> None:
    def cluster(scope: str, group: int, coordinator: str) -> Cluster:
        tags = {"citus_group": group, "citus_coordinator_host": coordinator}
        member = patroni_member("m", 5432, "primary", tags=tags)
        return cluster_from_patroni(scope, patroni_cluster([member], "m"))

    clusters = {
        c.scope: c for c in (cluster("a-0", 0, "c1,c2"), cluster("a-1", 1, "c1,c2"), cluster("b-1", 1, "x"))
    }
    assert sorted(select_formation(clusters, coordinator_hosts="c1,c2")) == [0, 1]
    assert [c.scope for c in select_formation(clusters, name="b")[1]] == ["b-1"]


def test_formation_scopes_keep_name_and_name_dash_group_only() -> None:
    assert formation_scopes(["demo-1", "demo-x", "demos-1", "demo", "x"], "demo") == ["demo-1", "demo"]


def test_dcs_config_takes_every_dcs_section_patroni_knows() -> None:
    config = dcs_config({"zookeeper": {"hosts": ["z1:2181"]}, "namespace": "/ns/", "scope": "x"})
    assert config.kind == "zookeeper" and config.namespace == "/ns/"
    assert config.describe() == "zookeeper z1:2181"


def test_dcs_config_without_a_dcs_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="no DCS section"):
        dcs_config({"scope": "x"})


def test_dcs_config_never_shows_a_password() -> None:
    config = DcsConfig({"etcd3": {"hosts": ["e1:2379"], "username": "u", "password": "s3cret-pw"}})
    assert "s3cret-pw" not in repr(config) and "s3cret-pw" not in config.describe()
    assert config.secrets() == ["s3cret-pw"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "http://127.0.0.1:1",
            "cannot connect to the DCS (etcd3 127.0.0.1:1): [Errno 111] Connection refused",
        ),
        ("https://127.0.0.1:1", "cannot connect to the DCS (etcd3 https://127.0.0.1:1)"),
        ("zookeeper://127.0.0.1:1", "cannot connect to the DCS (zookeeper 127.0.0.1:1)"),
        ("ftp://127.0.0.1:1", "--dcs='ftp://127.0.0.1:1' is invalid"),
    ],
)
def test_an_unreachable_or_bad_dcs_is_one_line_and_exit_2(url: str, expected: str) -> None:
    """Patroni's clients retry forever and log as they go; the CLI gives up after --dcs-timeout, quietly."""
    args = ["status", "--dcs", url, "--formation", "x", "--dcs-timeout", "1"]
    result = CliRunner().invoke(cli, args, prog_name="patroni-citus")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr


def test_importing_patroni_leaves_the_umask_alone() -> None:
    """Patroni's import sets umask 0077; ours would then make directories the postgres user cannot enter.

    A fresh interpreter, since this one imported Patroni long ago.
    """
    code = (
        "import os; os.umask(0o022); from patroni_citus import patroni_dcs\n"
        "config = patroni_dcs.DcsConfig({'etcd3': {'hosts': ['127.0.0.1:1']}}, timeout=1)\n"
        "try: patroni_dcs.read_scope(config, 'x')\n"
        "except patroni_dcs.UnreachableError: pass\n"
        "import patroni.file_perm; print(oct(os.umask(0o022)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "0o22"


@pytest.mark.parametrize(
    ("role", "state", "tags", "serves"),
    [
        ("replica", "streaming", {}, True),
        ("replica", "running", {}, True),
        ("replica", "running", {"nofailover": True}, True),  # may not be promoted, may serve reads
        ("replica", "running", {"noloadbalance": True}, False),
        ("replica", "running", {"noloadbalance": "true"}, False),
        ("replica", "running", {"citus_secondary": False}, False),
        ("replica", "running", {"citus_secondary": True}, True),
        ("replica", "stopped", {}, False),
        ("replica", "starting", {}, False),
        ("standby_leader", "running", {}, False),
        ("primary", "running", {}, False),  # a stale second primary key is no replica
    ],
)
def test_secondaries_are_the_running_replicas_whose_tags_allow_reads(
    role: str, state: str, tags: dict[str, Any], serves: bool
) -> None:
    members = [patroni_member("m1", 5432, "primary"), patroni_member("m2", 5434, role, state, tags=tags)]
    ours = cluster_from_patroni("demo-1", patroni_cluster(members, "m1"))
    leader = ours.group_leader(1)
    assert leader is not None and leader.endpoint == Endpoint("10.0.0.9", 5432)
    assert leader.secondaries == ({Endpoint("10.0.0.9", 5434)} if serves else set())


def test_a_group_without_a_running_leader_has_no_wanted_rows() -> None:
    members = [patroni_member("m1", 5432, "primary", "stopped"), patroni_member("m2", 5434, "replica")]
    assert cluster_from_patroni("demo-1", patroni_cluster(members, "m1")).group_leader(1) is None
