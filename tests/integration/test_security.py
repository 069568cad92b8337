"""Security on a real formation: private files, no secret anywhere, pg_hba, REST auth, bad credentials.

One formation (coordinator group + one worker group, one member each) serves every scenario; every
CLI run's output is kept and grepped for the formation's passwords at the end.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import pwd
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import LocalFormation, callbacks_running, local_formation, run_cli, wait_until

from patroni_citus import dcs, patroni_api
from patroni_citus.local.layout import MemberLayout
from patroni_citus.member_config import load_member_config
from patroni_citus.patroni_dcs import DcsConfig
from patroni_citus.settings import Credentials

pytestmark = pytest.mark.integration
#: stdout + stderr of every CLI run in this module, grepped for secrets by the last test.
CLI_OUTPUTS: list[str] = []


@pytest.fixture(scope="module")
def formation() -> Iterator[LocalFormation]:
    with local_formation(workers=1, members=1) as running:
        yield running


def cli(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, check=check, env=env)
    CLI_OUTPUTS.append(f"$ patroni-citus {' '.join(args)}\n{result.stdout}\n{result.stderr}")
    return result


def secrets_of(formation: LocalFormation) -> dict[str, str]:
    found = {path.name: path.read_text().strip() for path in formation.layout.secrets_dir.glob("*.password")}
    assert set(found) == {"superuser.password", "replication.password", "restapi.password"}, found
    assert all(len(secret) >= 16 for secret in found.values())
    return found


def rest_auth(formation: LocalFormation) -> Credentials:
    return Credentials("patroni", secrets_of(formation)["restapi.password"])


def callback_moves(formation: LocalFormation) -> int:
    """How many times the callbacks logged moving group 1's row (in any member's log)."""
    logs = (member.log_path.read_text(errors="replace") for member in formation.layout.all_members())
    return sum(text.count("done: move group 1 primary") for text in logs)


def dcs_cluster(formation: LocalFormation, scope: str) -> dcs.Cluster:
    """One Patroni cluster of the formation as the DCS holds it."""
    return dcs.read_clusters(member_dcs(formation))[scope]


def member_dcs(formation: LocalFormation) -> DcsConfig:
    return load_member_config(formation.layout.member(0, 0).config_path).dcs


def coordinator(formation: LocalFormation) -> MemberLayout:
    return formation.layout.member(0, 0)


def config_copy(formation: LocalFormation, tmp_path: Path, **overrides: str) -> Path:
    """The coordinator's patroni.yml with the superuser and/or REST password replaced."""
    config = yaml.safe_load(coordinator(formation).config_path.read_text())
    if "superuser" in overrides:
        config["postgresql"]["authentication"]["superuser"]["password"] = overrides["superuser"]
    if "restapi" in overrides:
        config["restapi"]["authentication"]["password"] = overrides["restapi"]
    path = tmp_path / "patroni.yml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def http_status(url: str, method: str, body: dict[str, Any], auth: tuple[str, str] | None) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method)  # noqa: S310
    request.add_header("Content-Type", "application/json")
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def group_one_row(formation: LocalFormation) -> tuple[str, int]:
    rows = formation.query(
        coordinator(formation),
        "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid = 1 AND noderole = 'primary'",
        dbname="citus",
    )
    assert len(rows) == 1, rows
    return str(rows[0][0]), int(rows[0][1])


def test_rendered_configs_and_secrets_are_private(formation: LocalFormation) -> None:
    service_uid = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    for member in formation.layout.all_members():
        info = member.config_path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600, f"{member.config_path} is {oct(info.st_mode)}"
        assert info.st_uid == service_uid, f"{member.config_path} belongs to uid {info.st_uid}"
    for path in [*formation.layout.secrets_dir.glob("*.password"), formation.layout.pgpass_path]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is {oct(path.stat().st_mode)}"
    # The configs take their passwords from *_FILE: the file content is what the config carries.
    config = yaml.safe_load(coordinator(formation).config_path.read_text())
    assert config["postgresql"]["authentication"]["superuser"]["password"] == formation.password


def test_pg_hba_is_scram_only_and_limited_to_the_formation_networks(formation: LocalFormation) -> None:
    allowed = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")]
    for member in formation.layout.all_members():
        rules = formation.query(
            member,
            "SELECT type, database, user_name, address, netmask, auth_method, error FROM pg_hba_file_rules",
        )
        assert rules, f"{member.name} has no pg_hba rules"
        for kind, databases, users, address, netmask, method, error in rules:
            rule = (kind, databases, users, address, netmask, method)
            assert error is None, f"{member.name}: pg_hba error {error}"
            assert method == "scram-sha-256", f"{member.name}: {rule} is not scram-sha-256"
            if kind == "local":
                continue
            prefix = bin(int(ipaddress.ip_address(netmask))).count("1")
            network = ipaddress.ip_network(f"{address}/{prefix}", strict=True)
            assert any(network.subnet_of(net) for net in allowed if net.version == network.version), (
                f"{member.name}: {rule} admits more than the formation's networks"
            )
            if databases == ["replication"]:
                assert users == ["replicator"], f"{member.name}: replication rule for {users}"
        stored = formation.query(member, "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")
        assert str(stored[0][0]).startswith("SCRAM-SHA-256$"), f"{member.name}: superuser not stored as SCRAM"


@pytest.mark.parametrize(
    ("method", "endpoint", "body"),
    [
        ("PATCH", "config", {"postgresql": {"parameters": {"work_mem": "7MB"}}}),
        ("POST", "restart", {}),
        ("POST", "switchover", {"leader": "it-1-0"}),
        ("POST", "reload", {}),
    ],
)
def test_rest_write_endpoints_refuse_missing_or_wrong_credentials(
    formation: LocalFormation, method: str, endpoint: str, body: dict[str, Any]
) -> None:
    member = formation.layout.member(1, 0)
    # Read the DCS itself: Patroni answers GET /config with a 502 page while its own view of the DCS
    # is incomplete (seen in CI right after bootstrap).
    before = dcs_cluster(formation, "it-1")
    url = f"{member.rest_url}/{endpoint}"
    assert http_status(url, method, body, None) == 401
    assert http_status(url, method, body, ("patroni", "wrong-password")) == 401
    assert http_status(url, method, body, ("intruder", rest_auth(formation).password)) == 401
    after = dcs_cluster(formation, "it-1")
    assert after.config == before.config, "a refused request changed the DCS config"
    assert after.leader == before.leader == member.name, "a refused request moved the leader key"


def test_wrong_superuser_password_fails_reconcile_cleanly(formation: LocalFormation, tmp_path: Path) -> None:
    worker = formation.layout.member(1, 0)
    # Counted before the row is moved away, so that a callback already under way which puts it back
    # right afterwards is attributed to it.
    moves_before = callback_moves(formation)
    formation.query(
        coordinator(formation),
        "SELECT citus_update_node(nodeid, %s, %s) FROM pg_dist_node WHERE groupid = 1",
        dbname="citus",
        params=("127.0.0.9", worker.postgres_port),
    )
    wrong = "Wrong-superuser-pw-42"
    config = config_copy(formation, tmp_path, superuser=wrong)
    for command in (("reconcile",), ("reconcile", "--dry-run")):
        result = cli(*command, "-c", str(config), check=False)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("patroni-citus: error: "), result.stderr
        assert "password authentication failed" in lines[0], lines[0]
        assert wrong not in result.stdout + result.stderr
    # status reports an unreachable coordinator as a problem (exit 2) in its normal output.
    result = cli("status", "--json", "-c", str(config), check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    problems = json.loads(result.stdout)["problems"]
    assert any(
        p["kind"] == "coordinator_unreachable" and "password authentication failed" in p["message"]
        for p in problems
    ), problems
    assert wrong not in result.stdout + result.stderr
    # The failed commands changed nothing. Only a callback may legitimately have converged the row
    # meanwhile (seen in CI when `local up` returned before its start-up callbacks ran); its log says so.
    wait_until("callbacks under way to finish", lambda: not callbacks_running(formation.base), 120)
    if group_one_row(formation) != ("127.0.0.9", worker.postgres_port):
        assert callback_moves(formation) > moves_before, "the row moved, and no callback logged moving it"
        return
    assert (
        "did: move group 1 primary" in cli("reconcile", "-c", str(coordinator(formation).config_path)).stdout
    )
    assert group_one_row(formation) == ("127.0.0.1", worker.postgres_port)


def test_rest_api_refusing_auth_fails_reconcile_cleanly(formation: LocalFormation, tmp_path: Path) -> None:
    member = formation.layout.member(1, 0)
    patch = {"postgresql": {"parameters": {"shared_preload_libraries": None}}}
    wait_until(  # Patroni answers 503 while its view of the DCS config is being refreshed
        "Patroni to accept the PATCH that removes citus from the DCS config",
        lambda: patroni_api.patch_dynamic_config(member.rest_url, patch, rest_auth(formation)) is not None,
        30,
    )
    wrong = "Wrong-restapi-pw-43"
    config = config_copy(formation, tmp_path, restapi=wrong)
    result = cli("reconcile", "-c", str(config), check=False)
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("patroni-citus: error: "), result.stderr
    assert "401" in lines[0], lines[0]
    assert wrong not in result.stdout + result.stderr
    parameters = dcs_cluster(formation, "it-1").config["postgresql"]["parameters"]
    assert "shared_preload_libraries" not in parameters, "a refused reconcile must change nothing"
    reconciled = cli("reconcile", "-c", str(coordinator(formation).config_path)).stdout
    assert "did: set shared_preload_libraries=citus in it-1's DCS config" in reconciled
    wait_until(
        "status to be healthy again",
        lambda: run_cli("status", "-c", str(coordinator(formation).config_path)).returncode == 0,
        90,
    )


def test_bad_settings_errors_name_the_variable_not_the_secret(formation: LocalFormation) -> None:
    secret = secrets_of(formation)["superuser.password"]
    base = {
        "PATRONI_SCOPE": "x-1",
        "PATRONI_SUPERUSER_PASSWORD": secret,
        "PATRONI_REPLICATION_PASSWORD": "r" * 20,
    }
    cases = {
        "CITUS_COORDINATOR_PORT": "70000",
        "CITUS_COORDINATOR_HOST": "c1,'; DROP TABLE pg_dist_node; --",
        "CITUS_ENABLE": "maybe",
        "PATRONI_REPLICATION_PASSWORD": secret + "\nsecond line",
    }
    for name, value in cases.items():
        env = {**base, name: value}
        result = cli("render-config", check=False, env=env)
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and name in lines[0], result.stderr
        assert result.stdout == ""
        assert secret not in result.stderr


def test_rest_write_endpoint_accepts_the_configured_credentials(formation: LocalFormation) -> None:
    """The counterpart of the refusals above: the same request with the right login works."""
    member = formation.layout.member(1, 0)
    credentials = rest_auth(formation)
    url = f"{member.rest_url}/reload"
    assert http_status(url, "POST", {}, (credentials.username, credentials.password)) in (200, 202)
    wait_until(
        "the reloaded member to run as primary",
        lambda: patroni_api.member_status(member.rest_url)["state"] == "running",
    )


def test_no_secret_in_logs_status_process_list_dcs_or_errors(formation: LocalFormation) -> None:
    config = str(coordinator(formation).config_path)
    cli("status", "-c", config, "--json", check=False)
    cli("status", "-c", config, check=False)
    cli("reconcile", "-c", config, "--dry-run", check=False)
    cli("reconcile", "-c", config, check=False)
    cli("local", "status", "--base-dir", str(formation.base), "--json", check=False)
    cli("status", "-c", "/nonexistent/patroni.yml", check=False)
    places: dict[str, str] = {
        "ps -eo args": subprocess.run(
            ["ps", "-eo", "args"], capture_output=True, text=True, check=True
        ).stdout,
        "CLI output": "\n".join(CLI_OUTPUTS),
        "DCS": json.dumps([asdict(cluster) for cluster in dcs.read_clusters(member_dcs(formation)).values()]),
        "etcd log": (formation.layout.etcd_dir / "etcd.log").read_text(errors="replace"),
    }
    for member in formation.layout.all_members():
        places[str(member.log_path)] = member.log_path.read_text(errors="replace")
        for log in (member.data_dir / "log").glob("*"):
            places[str(log)] = log.read_text(errors="replace")
    for kind, secret in secrets_of(formation).items():
        for place, text in places.items():
            assert secret not in text, f"the {kind} appears in {place}"
