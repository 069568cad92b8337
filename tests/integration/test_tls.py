"""A `local up --tls` formation, each member a host of its own (netns): TLS and logins everywhere.

etcd serves only https, wants a client certificate signed by the formation's CA, and has RBAC on:
Patroni logs in as `patroni` (read-write on the namespace), the CLI as `patroni-citus-cli`
(read-only). PostgreSQL runs ssl=on with a certificate per member and accepts other hosts only
over hostssl; Citus's own links check the peer (sslmode=verify-full). The scenarios run status and
reconcile as the read-only CLI user, break its login three ways, prove it cannot write, check that
connections between hosts are encrypted and verified, and fail a worker primary over.
Needs root for `ip netns`; CI requires it to run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from formation_steps import coordinator_connection, leader_of, member_named, metadata_matches_leaders, restore
from harness import (
    LocalFormation,
    exported_variables,
    local_formation,
    require_netns,
    run_cli,
    wait_until,
)

from patroni_citus import patroni_api
from patroni_citus.local import certs, network
from patroni_citus.local.layout import ETCD_CLI_USER, ETCD_PATRONI_USER, MemberLayout, TlsPair
from patroni_citus.settings import Credentials

pytestmark = pytest.mark.integration
#: stdout and stderr of every CLI run here; the last scenario looks for passwords in them.
OUTPUTS: list[str] = []


@pytest.fixture(scope="module")
def formation() -> Iterator[LocalFormation]:
    require_netns()
    with local_formation(workers=1, members=2, extra_args=("--tls",), network="netns") as running:
        yield running


@pytest.fixture(scope="module")
def cli_env(formation: LocalFormation) -> dict[str, str]:
    """What `local env` gives a shell: the CLI's own read-only etcd login and libpq's settings."""
    shown = cli("local", "env", "--base-dir", str(formation.base))
    variables = exported_variables(shown.stdout)
    assert "PATRONI_CITUS_CONFIG" not in variables, "a member's config carries Patroni's read-write login"
    assert variables["PATRONI_ETCD3_USERNAME"] == ETCD_CLI_USER
    assert ["--dcs", variables["PATRONI_CITUS_DCS"], "--formation", variables["PATRONI_CITUS_FORMATION"]] == (
        dcs_arguments(formation)
    ), shown.stdout
    return variables


def cli(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, check=check, env=env)
    OUTPUTS.append(f"$ patroni-citus {' '.join(args)}\n{result.stdout}\n{result.stderr}")
    return result


def dcs_arguments(formation: LocalFormation) -> list[str]:
    """--dcs at etcd's address on the bridge, as a machine on the formation's network would reach it."""
    etcd = f"https://{formation.layout.host_address}:{formation.layout.etcd_client_port}"
    return ["--dcs", etcd, "--formation", formation.layout.name]


def passwords(formation: LocalFormation) -> dict[str, str]:
    found = {path.name: path.read_text().strip() for path in formation.layout.secrets_dir.glob("*.password")}
    assert {f"etcd-{ETCD_PATRONI_USER}.password", f"etcd-{ETCD_CLI_USER}.password"} <= set(found), found
    return found


def status_code(formation: LocalFormation, env: dict[str, str]) -> int:
    return cli("status", *dcs_arguments(formation), env=env, check=False).returncode


def test_every_group_is_registered_through_tls_only_connections(formation: LocalFormation) -> None:
    wait_until("pg_dist_node to match every group's leader", lambda: metadata_matches_leaders(formation), 60)


def test_status_and_dry_run_reconcile_work_as_the_read_only_cli_user(
    formation: LocalFormation, cli_env: dict[str, str]
) -> None:
    wait_until("status to be healthy", lambda: status_code(formation, cli_env) == 0, 60)
    status = cli("status", "--json", env=cli_env)  # --dcs and --formation come from `local env`
    payload = json.loads(status.stdout)
    assert payload["healthy"] is True and len(payload["members"]) == 4, payload
    dry_run = cli("reconcile", "--dry-run", *dcs_arguments(formation), env=cli_env)
    assert "nothing to change" in dry_run.stdout, dry_run.stdout


def other_ca(directory: Path) -> Path:
    """A CA of another formation: it did not sign etcd's certificate."""
    pair = TlsPair(directory / "other-ca.crt", directory / "other-ca.key")
    certs.make_ca(pair, "other")
    return pair.cert


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        ("no client certificate", r"client certificate"),
        ("wrong password", r"authentication failed"),
        ("wrong CA", r"CERTIFICATE_VERIFY_FAILED"),
    ],
)
def test_a_broken_etcd_login_is_one_error_line_and_exit_2(
    formation: LocalFormation, cli_env: dict[str, str], tmp_path: Path, broken: str, reason: str
) -> None:
    env = dict(cli_env)
    if broken == "no client certificate":
        env |= {"PATRONI_ETCD3_CERT": "", "PATRONI_ETCD3_KEY": ""}  # run_cli drops empty variables
    elif broken == "wrong password":
        wrong = tmp_path / "wrong.password"
        wrong.write_text("not-the-password-of-anyone\n")
        wrong.chmod(0o600)
        env["PATRONI_ETCD3_PASSWORD_FILE"] = str(wrong)
    else:
        env["PATRONI_ETCD3_CACERT"] = str(other_ca(tmp_path))
    started = time.monotonic()
    result = cli("status", *dcs_arguments(formation), env=env, check=False)
    assert result.returncode == 2, (broken, result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, (broken, result.stderr)
    assert lines[0].startswith("patroni-citus: error: cannot connect to the DCS (etcd3 https://"), lines[0]
    assert re.search(reason, lines[0]), (broken, lines[0])
    assert result.stdout == ""
    assert time.monotonic() - started < 30, f"{broken}: the CLI took too long to give up"


def etcdctl(formation: LocalFormation, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """etcd's own client (Debian's etcd-client) as user, with its client certificate and password."""
    program = shutil.which("etcdctl")
    assert program is not None, "etcdctl is missing: apt-get install etcd-client (scripts/lib.sh installs it)"
    layout = formation.layout
    client = layout.client_tls(user)
    password = layout.password_file(f"etcd-{user}").read_text().strip()
    return subprocess.run(
        [
            program,
            f"--endpoints=https://{layout.host_address}:{layout.etcd_client_port}",
            f"--cacert={layout.ca.cert}",
            f"--cert={client.cert}",
            f"--key={client.key}",
            f"--user={user}",
            *args,
        ],
        env={"ETCDCTL_API": "3", "ETCDCTL_PASSWORD": password, "PATH": "/usr/bin:/bin"},  # not on argv
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_cli_user_reads_but_cannot_write_and_patroni_only_writes_its_namespace(
    formation: LocalFormation,
) -> None:
    scope = f"/service/{formation.layout.name}-1/"
    read = etcdctl(formation, ETCD_CLI_USER, "get", "--prefix", "--keys-only", scope)
    assert read.returncode == 0 and f"{scope}leader" in read.stdout, read.stdout + read.stderr
    write = etcdctl(formation, ETCD_CLI_USER, "put", f"{scope}written-by-cli", "x")
    assert write.returncode != 0 and "permission denied" in write.stderr, write.stdout + write.stderr
    outside = etcdctl(formation, ETCD_PATRONI_USER, "put", "/outside-the-namespace", "x")
    assert outside.returncode != 0 and "permission denied" in outside.stderr, outside.stdout + outside.stderr


def test_etcd_answers_no_plain_http(formation: LocalFormation) -> None:
    layout = formation.layout
    probe = subprocess.run(
        ["curl", "-sS", "--max-time", "5", f"http://{layout.host_address}:{layout.etcd_client_port}/health"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert '"health":"true"' not in probe.stdout, probe.stdout


def psql_from(
    formation: LocalFormation, host: MemberLayout, conninfo: str, sql: str
) -> subprocess.CompletedProcess[str]:
    """psql run inside host's network namespace: a client on that member's machine."""
    bindir = Path(formation.state().bindir)
    psql = bindir / "psql" if (bindir / "psql").is_file() else Path(shutil.which("psql") or "psql")
    return subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            network.namespace(formation.layout, host),
            str(psql),
            "-X",
            "-At",
            "-c",
            sql,
            conninfo,
        ],
        env={
            "PGPASSFILE": str(formation.layout.pgpass_path),
            "PATH": "/usr/bin:/bin",
            "PGCONNECT_TIMEOUT": "5",
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def node_conninfo(formation: LocalFormation) -> str:
    leader = leader_of(formation, 0)
    assert leader is not None
    ((value,),) = formation.query(member_named(formation, leader), "SHOW citus.node_conninfo")
    return str(value)


def test_citus_node_conninfo_verifies_the_workers_certificate_from_the_coordinators_host(
    formation: LocalFormation,
) -> None:
    conninfo = node_conninfo(formation)
    assert conninfo.startswith(f"sslmode=verify-full sslrootcert={formation.layout.ca.cert}"), conninfo
    coordinator = formation.layout.member(0, 0)
    worker = formation.layout.member(1, 0)
    target = f"port={worker.postgres_port} user=postgres dbname=postgres"
    verified = psql_from(
        formation,
        coordinator,
        f"{conninfo} host={worker.host} {target}",
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    assert verified.returncode == 0 and verified.stdout.strip() == "t", verified.stdout + verified.stderr
    wrong_name = psql_from(
        formation,
        coordinator,
        f"{conninfo} host=wrong-name.invalid hostaddr={worker.host} {target}",
        "SELECT 1",
    )
    assert wrong_name.returncode != 0, wrong_name.stdout
    assert "does not match host name" in wrong_name.stderr, wrong_name.stderr
    plaintext = psql_from(formation, coordinator, f"sslmode=disable host={worker.host} {target}", "SELECT 1")
    assert plaintext.returncode != 0 and "no encryption" in plaintext.stderr, (
        plaintext.stdout + plaintext.stderr
    )


def connections_from_other_hosts(
    formation: LocalFormation, member: MemberLayout
) -> list[tuple[str, str, bool]]:
    """(client address, backend type, ssl) of every connection to member from another host, but ours."""
    rows = formation.query(
        member,
        "SELECT host(a.client_addr), a.backend_type, s.ssl"
        " FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
        " WHERE a.client_addr IS NOT NULL AND a.pid <> pg_backend_pid() AND host(a.client_addr) <> %s",
        params=(formation.layout.host_address,),
    )
    return [(str(address), str(kind), bool(ssl)) for address, kind, ssl in rows]


def test_replication_between_hosts_is_encrypted(formation: LocalFormation) -> None:
    leader = leader_of(formation, 1)
    assert leader is not None
    primary = member_named(formation, leader)
    replica = next(m for m in formation.layout.group_members(1) if m.name != leader)
    seen = wait_until(
        f"{replica.name}'s walsender connection on {leader}",
        lambda: [c for c in connections_from_other_hosts(formation, primary) if c[1] == "walsender"],
        60,
    )
    assert seen == [(replica.host, "walsender", True)], seen
    assert all(ssl for _address, _kind, ssl in connections_from_other_hosts(formation, primary))


def test_distributed_queries_reach_the_worker_over_tls(formation: LocalFormation) -> None:
    """Real Citus only: the stand-in never connects from node to node."""
    if formation.citus != "real":
        pytest.skip("the Citus stand-in makes no connections between nodes")
    coordinator_leader = leader_of(formation, 0)
    worker_leader = leader_of(formation, 1)
    assert coordinator_leader is not None and worker_leader is not None
    coordinator_host = member_named(formation, coordinator_leader).host
    with coordinator_connection(formation) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE tls_probe (id bigint PRIMARY KEY)")
        cursor.execute("SELECT create_distributed_table('tls_probe', 'id')")
        cursor.execute("INSERT INTO tls_probe SELECT generate_series(1, 100)")
        cursor.execute("SELECT count(*) FROM tls_probe")
        assert cursor.fetchone() == (100,)
        # Citus keeps this session's connections to the worker open: look at them from the worker.
        from_coordinator = [
            c
            for c in connections_from_other_hosts(formation, member_named(formation, worker_leader))
            if c[0] == coordinator_host
        ]
    assert from_coordinator, "no connection from the coordinator seen on the worker"
    assert all(ssl for _address, _kind, ssl in from_coordinator), from_coordinator


def log_connections_on(formation: LocalFormation) -> None:
    """log_connections in the coordinator group's DCS config, so its log shows each callback's login."""
    auth = Credentials("patroni", formation.layout.password_file("restapi").read_text().strip())
    leader = leader_of(formation, 0)
    assert leader is not None
    patch = {"postgresql": {"parameters": {"log_connections": "on"}}}
    patroni_api.patch_dynamic_config(member_named(formation, leader).rest_url, patch, auth)
    for member in formation.layout.group_members(0):
        wait_until(
            f"log_connections on {member.name}",
            lambda member=member: formation.query(member, "SHOW log_connections") == [("on",)],  # type: ignore[misc]
            60,
        )


def logins_from(member: MemberLayout, hosts: set[str], since: int) -> list[str]:
    """The `connection authorized` lines, after byte offset since, of sessions that came from hosts."""
    text = member.log_path.read_bytes()[since:].decode(errors="replace")
    received = re.findall(r"\[(\d+)\] LOG:  connection received: host=([\d.]+)", text)
    pids = {pid for pid, host in received if host in hosts}
    return [
        line
        for line in text.splitlines()
        if "connection authorized" in line
        and (found := re.search(r"\[(\d+)\]", line))
        and found.group(1) in pids
    ]


def test_killed_worker_primary_fails_over_over_tls_and_status_converges(
    formation: LocalFormation, cli_env: dict[str, str]
) -> None:
    log_connections_on(formation)
    coordinators = formation.layout.group_members(0)
    offsets = {m.name: m.log_path.stat().st_size for m in coordinators}
    old = leader_of(formation, 1)
    assert old is not None
    run_cli("local", "stop-member", "--base-dir", str(formation.base), "--kill", old)
    wait_until("group 1 to elect a new leader", lambda: leader_of(formation, 1) not in (None, old), 90)
    new = leader_of(formation, 1)
    assert new is not None
    wait_until("group 1's row to move to its new leader", lambda: metadata_matches_leaders(formation), 60)
    worker_hosts = {m.host for m in formation.layout.group_members(1)}
    logins = [line for m in coordinators for line in logins_from(m, worker_hosts, offsets[m.name])]
    assert logins, "no callback login from the worker group seen on the coordinator"
    assert all("SSL enabled" in line for line in logins), logins
    restore(formation, old)  # rejoins through pg_rewind / streaming from the new primary, over TLS
    wait_until("status to be healthy after the failover", lambda: status_code(formation, cli_env) == 0, 120)
    status = json.loads(cli("status", *dcs_arguments(formation), "--json", env=cli_env).stdout)
    new_member = member_named(formation, new)
    group = next(g for g in status["groups"] if g["group"] == 1)
    assert group["leader"] == new and group["pg_dist_node"]["points_at_leader"], group
    row = group["pg_dist_node"]
    assert (row["host"], row["port"]) == (new_member.host, new_member.postgres_port), group


def test_patroni_never_lacked_an_etcd_permission(formation: LocalFormation) -> None:
    """readwrite on the namespace prefix is all Patroni 4.1.5 needs (leases and member list are unchecked)."""
    for member in formation.layout.all_members():
        log = member.log_path.read_text(errors="replace")
        assert "permission denied" not in log.lower(), f"{member.name}: {member.log_path}"


def test_no_password_in_any_cli_output(formation: LocalFormation) -> None:
    assert OUTPUTS, "no CLI output was recorded"
    text = "\n".join(OUTPUTS)
    for name, secret in passwords(formation).items():
        assert secret not in text, f"the password in {name} appears in the CLI's output"
    assert "not-the-password-of-anyone" not in text, "the wrong password was echoed"
