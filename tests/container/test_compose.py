"""compose.yaml for real under podman: the formation registers, serves a distributed table, and a
killed worker primary's pg_dist_node row follows Patroni's new leader; etcd and PostgreSQL speak
only TLS, and etcd only to its users.

One scenario on one formation (module scope), step by step, as an operator would drill it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg2
import pytest
from container_harness import (
    CONFIG_IN_CONTAINER,
    IMAGE,
    SECRET_NAMES,
    TLS_IN_CONTAINER,
    ComposeFormation,
    compose_formation,
    exec_in,
    private_directory,
    progress,
    wait_until,
)

from patroni_citus import drill

if TYPE_CHECKING:
    import docker.models.containers

pytestmark = pytest.mark.container

WORKER_SCOPE, WORKER_GROUP = "demo-1", 1


@pytest.fixture(scope="module")
def formation(docker_api: tuple[str, docker.DockerClient]) -> Iterator[ComposeFormation]:
    docker_host, client = docker_api
    with (
        private_directory("patroni-citus-ct-compose-") as workdir,
        compose_formation(client, docker_host, workdir) as started,
    ):
        yield started


def registered(formation: ComposeFormation) -> dict[int, str] | None:
    """pg_dist_node's primary rows, once they name every group's current Patroni leader."""
    leaders = formation.leaders()
    rows = formation.primary_rows()
    expected = {int(scope.rsplit("-", 1)[1]): member for scope, member in leaders.items()}
    return rows if len(leaders) == 3 and rows == expected else None


def citus_is_real(formation: ComposeFormation) -> bool:
    (version,) = formation.query("SELECT citus_version()")[0]
    return "stand-in" not in str(version)


def test_formation_registers_every_group(formation: ComposeFormation) -> None:
    rows = wait_until(
        "every group's leader in the coordinator's pg_dist_node",
        lambda: registered(formation),
        timeout=180,
        interval=2,
        explain=formation.explain,
    )
    progress(f"registered: {rows}")
    assert set(rows) == {0, 1, 2}
    (version,) = formation.query("SELECT citus_version()")[0]
    progress(f"citus_version(): {version}")
    if formation.client.images.get(IMAGE).labels["io.patroni-citus.citus-flavor"] == "standin":
        assert "NOT real Citus" in version, "the stand-in must say what it is"


def ensure_distributed_table(formation: ComposeFormation) -> int:
    """The drill's distributed table (made once per formation); returns its row count."""
    formation.query("CREATE TABLE IF NOT EXISTS drill_events (tenant_id int NOT NULL, payload text)")
    if not formation.query("SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'drill_events'::regclass"):
        formation.query("SELECT create_distributed_table('drill_events', 'tenant_id')")
    return int(formation.query("SELECT count(*) FROM drill_events")[0][0])


def test_distributed_table_through_the_coordinator(formation: ComposeFormation) -> None:
    wait_until("registration", lambda: registered(formation), timeout=120, explain=formation.explain)
    before = ensure_distributed_table(formation)
    formation.query("INSERT INTO drill_events SELECT i % 10, 'before' FROM generate_series(1, 100) AS i")
    assert formation.query("SELECT count(*) FROM drill_events") == [(before + 100,)]
    assert formation.query(
        "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'drill_events'::regclass"
    ) == [(1,)]
    if citus_is_real(formation):
        # Real Citus spreads the shards over both worker groups; the stand-in records the table only.
        placed = formation.query(
            "SELECT count(DISTINCT nodename) FROM citus_shards WHERE table_name = 'drill_events'::regclass"
        )
        assert placed[0][0] >= 2


#: Run with the image's python inside a member: fetch URL (with the CA, and a client certificate
#: and key, when given) and say whether etcd answered.
_HTTP_PROBE = """
import ssl, sys, urllib.request
url, *tls = sys.argv[1:]
context = ssl.create_default_context(cafile=tls[0]) if tls else None
if len(tls) == 3:
    context.load_cert_chain(tls[1], tls[2])
try:
    urllib.request.urlopen(url, timeout=5, context=context).read()
    print("answered")
except Exception as exc:
    print(f"refused: {type(exc).__name__}: {exc}")
"""


def test_etcd_answers_only_tls_clients_with_a_certificate_and_a_user(formation: ComposeFormation) -> None:
    wait_until("registration", lambda: registered(formation), timeout=180, explain=formation.explain)
    # The control: as the patroni user, Patroni's keys are there.
    code, stdout, stderr = formation.etcdctl("get", "--prefix", "--keys-only", "/service/", user="patroni")
    assert code == 0 and "/service/demo-0/leader" in stdout, stdout + stderr
    # With a valid client certificate but no etcd user: refused.
    code, stdout, stderr = formation.etcdctl("get", "--prefix", "--keys-only", "/service/")
    assert code != 0 and "permission denied" in stderr, stdout + stderr
    assert "/service/" not in stdout
    # The patroni user may use Patroni's namespace only.
    code, stdout, stderr = formation.etcdctl("put", "/elsewhere", "x", user="patroni")
    assert code != 0 and "permission denied" in stderr, stdout + stderr

    member = formation.container("coordinator-a")
    ca, cert, key = (f"{TLS_IN_CONTAINER}/{name}" for name in ("ca.crt", "tls.crt", "tls.key"))
    probes = {
        "plain http": ["http://etcd:2379/version"],
        "https without a client certificate": ["https://etcd:2379/version", ca],
        "https with the member's certificate": ["https://etcd:2379/version", ca, cert, key],
    }
    answers = {}
    for what, arguments in probes.items():
        code, stdout, stderr = exec_in(member, ["python3", "-c", _HTTP_PROBE, *arguments])
        assert code == 0, stderr
        answers[what] = stdout.strip()
    progress(f"etcd from coordinator-a: {answers}")
    assert answers["plain http"].startswith("refused"), answers
    assert answers["https without a client certificate"].startswith("refused"), answers
    assert answers["https with the member's certificate"] == "answered", answers


def test_patroni_keeps_unconsumed_variables_and_no_password(formation: ComposeFormation) -> None:
    """The entrypoint hands Patroni every variable it did not render (PATRONI_LOG_LEVEL, set in
    compose.yaml) and none it did: no password, no DCS login, no TLS path."""
    member = formation.container("coordinator-a")
    code, environ, stderr = exec_in(member, ["cat", "/proc/1/environ"])
    assert code == 0, stderr
    code, cmdline, _ = exec_in(member, ["cat", "/proc/1/cmdline"])
    assert "bin/patroni\0" in cmdline, f"PID 1 must be Patroni, not {cmdline!r}"
    variables = dict(item.split("=", 1) for item in environ.split("\0") if "=" in item)
    assert variables.get("PATRONI_LOG_LEVEL") == "INFO", sorted(variables)
    assert not [name for name in variables if "PASSWORD" in name], sorted(variables)
    rendered = ("PATRONI_ETCD3_", "PATRONI_SCOPE", "PG_SSL_", "CITUS_")
    assert not [name for name in variables if name.startswith(rendered)], sorted(variables)
    leaked = [name for name in SECRET_NAMES if formation.passwords[name] in environ]
    assert not leaked, f"secrets in Patroni's environment: {leaked}"


def test_postgresql_between_nodes_speaks_only_tls(formation: ComposeFormation) -> None:
    wait_until("registration", lambda: registered(formation), timeout=120, explain=formation.explain)

    def replication_is_tls(member: str) -> tuple[int, bool] | None:
        code, stdout, stderr = exec_in(
            formation.container(member),
            [
                "psql",
                "-AtX",
                "-h",
                "/var/run/postgresql",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                "SELECT count(*), coalesce(bool_and(s.ssl), false) "
                "FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)",
            ],
            environment={"PGPASSWORD": formation.superuser_password},
        )
        if code != 0:
            raise RuntimeError(stderr)
        count, all_tls = stdout.strip().split("|")
        return (int(count), all_tls == "t") if int(count) > 0 else None

    for scope, leader in formation.leaders().items():
        count, all_tls = wait_until(
            f"{leader} to stream to its replica", lambda leader=leader: replication_is_tls(leader), timeout=90
        )
        assert all_tls, f"{scope}: {leader} streams to {count} replica(s), not all over TLS"

    # A client outside: verify-full against the demo CA (every certificate names 127.0.0.1 too).
    ca = str(formation.tls_dir / "ca.crt")
    verified = formation.connect(sslmode="verify-full", sslrootcert=ca)
    with contextlib.closing(verified) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cursor.fetchone() == (True,)
        cursor.execute("SHOW citus.node_conninfo")
        (node_conninfo,) = cursor.fetchone() or ("",)
    assert f"sslmode=verify-full sslrootcert={TLS_IN_CONTAINER}/ca.crt" in node_conninfo
    with pytest.raises(psycopg2.OperationalError, match=r"no pg_hba\.conf entry"):
        formation.connect(sslmode="disable").close()


def test_killed_worker_primary_row_moves_to_the_new_leader(formation: ComposeFormation) -> None:
    wait_until("registration", lambda: registered(formation), timeout=120, explain=formation.explain)
    rows_before = ensure_distributed_table(formation)
    old_leader = formation.leaders()[WORKER_SCOPE]
    assert formation.primary_rows()[WORKER_GROUP] == old_leader
    victim = formation.container(old_leader)  # the service is named like its host and member
    progress(f"docker kill {victim.name} (leader of {WORKER_SCOPE})")
    victim.kill()

    def moved() -> str | None:
        new_leader = formation.leaders().get(WORKER_SCOPE)
        if new_leader is None or new_leader == old_leader:
            return None
        return new_leader if formation.primary_rows().get(WORKER_GROUP) == new_leader else None

    # Patroni's TTL (30 s) must expire before the replica may take over.
    new_leader = wait_until(
        f"{WORKER_SCOPE}'s pg_dist_node row to move off {old_leader}",
        moved,
        timeout=150,
        interval=2,
        explain=formation.explain,
    )
    progress(f"pg_dist_node group {WORKER_GROUP} now points at {new_leader}")

    def group_rows() -> list[tuple[str, str]]:
        return sorted(
            formation.query(
                "SELECT nodename, noderole::text FROM pg_dist_node WHERE groupid = %s", (WORKER_GROUP,)
            )
        )

    assert [name for name, role in group_rows() if role == "primary"] == [new_leader], group_rows()
    # The promotion parks the dead primary in the promoted member's secondary row; the new leader's
    # callback removes it once Citus has resynced its metadata: only the primary row stays.
    wait_until(
        f"{old_leader}'s row to go while it is down",
        lambda: group_rows() == [(new_leader, "primary")],
        timeout=60,
        explain=formation.explain,
    )
    formation.query("INSERT INTO drill_events SELECT i % 10, 'after' FROM generate_series(1, 10) AS i")
    assert formation.query("SELECT count(*) FROM drill_events") == [(rows_before + 10,)]

    progress(f"docker start {victim.name}: it must rejoin as a replica")
    victim.start()

    def rejoined() -> bool:
        members = {m["Member"]: m for m in formation.members() if m["Cluster"] == WORKER_SCOPE}
        old = members.get(old_leader, {})
        return old.get("Role") == "Replica" and old.get("State") in ("streaming", "running")

    wait_until(
        f"{old_leader} to rejoin {WORKER_SCOPE}", rejoined, timeout=150, interval=2, explain=formation.explain
    )
    assert formation.leaders()[WORKER_SCOPE] == new_leader
    wait_until(
        f"{old_leader} to be a secondary of group {WORKER_GROUP} again",
        lambda: group_rows() == sorted([(new_leader, "primary"), (old_leader, "secondary")]),
        timeout=60,
        explain=formation.explain,
    )


def test_status_and_reconcile_inside_a_container_report_healthy(formation: ComposeFormation) -> None:
    wait_until("registration", lambda: registered(formation), timeout=120, explain=formation.explain)
    container = formation.running_coordinator()

    def status_healthy() -> str | None:
        code, stdout, stderr = exec_in(container, ["patroni-citus", "status", "-c", CONFIG_IN_CONTAINER])
        if code != 0:
            raise RuntimeError(f"patroni-citus status exited {code}:\n{stdout}{stderr}")
        return stdout

    # A short unsynced window right after a move is converging, not drift: allow it to settle.
    report = wait_until(
        "patroni-citus status to exit 0", status_healthy, timeout=60, interval=3, explain=formation.explain
    )
    progress("patroni-citus status:\n" + report)

    code, stdout, stderr = exec_in(
        container, ["patroni-citus", "reconcile", "-c", CONFIG_IN_CONTAINER, "--dry-run"]
    )
    assert code == 0, stdout + stderr
    assert "nothing to change" in stdout, stdout + stderr


def test_documented_switchover_drill_moves_the_row(formation: ComposeFormation) -> None:
    """docs/container.md's drill: a planned worker switchover from inside a container, without -c
    (the image's PATRONI_CITUS_CONFIG points at the rendered patroni.yml)."""
    wait_until("registration", lambda: registered(formation), timeout=120, explain=formation.explain)
    scope, group = "demo-2", 2
    old_leader = formation.leaders()[scope]
    container = formation.running_coordinator()
    # A switchover needs a replica to hand over to: right after registration it may still be
    # starting (seen here: "demo-2: no member is a running replica that could take over"), so the
    # drill waits for one, as docs/container.md's does.
    command = ["patroni-citus", "switchover", "--group", str(group), "--wait", "120"]
    progress(f"{' '.join(command)} (leader {old_leader})")
    code, stdout, stderr = exec_in(container, command)
    assert code == 0, stdout + stderr
    progress(stderr)
    new_leader = wait_until(
        f"{scope} to have a new leader",
        lambda: leader if (leader := formation.leaders().get(scope)) not in (None, old_leader) else None,
        timeout=90,
        explain=formation.explain,
    )
    wait_until(
        f"pg_dist_node group {group} to point at {new_leader}",
        lambda: formation.primary_rows().get(group) == new_leader,
        timeout=90,
        explain=formation.explain,
    )

    def status_exit_code() -> bool:
        code, stdout, stderr = exec_in(container, ["patroni-citus", "status"])
        if code != 0:
            raise RuntimeError(f"patroni-citus status exited {code}:\n{stdout}{stderr}")
        return True

    wait_until(
        "patroni-citus status (no -c) to exit 0",
        status_exit_code,
        timeout=60,
        interval=3,
        explain=formation.explain,
    )


def test_the_compose_exporter_reads_the_formation(formation: ComposeFormation) -> None:
    """compose.yaml's `metrics` service (docs/monitoring.md) serves series read from etcd and every member."""
    wait_until("registration", lambda: registered(formation), timeout=120, explain=formation.explain)
    url = f"http://127.0.0.1:{formation.metrics_port}/metrics"

    def formation_read() -> str | None:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return text if "patroni_citus_up 1.0" in text else None

    text = wait_until("the exporter to read the formation", formation_read, timeout=60, interval=3)
    for group in (0, 1, 2):
        assert f'patroni_citus_group_leader_present{{group="{group}"}} 1.0' in text, text
    assert "patroni_citus_metadata_up 1.0" in text, text


def pooler_report(formation: ComposeFormation) -> tuple[str, dict[str, Any]] | None:
    """(the coordinator leader, compose's one pooler as `status --json` reports it), once it points there."""
    code, stdout, stderr = exec_in(formation.running_coordinator(), ["patroni-citus", "status", "--json"])
    if not stdout.strip():
        raise RuntimeError(f"patroni-citus status --json exited {code} with no report: {stderr.strip()}")
    report = json.loads(stdout)
    poolers = report.get("poolers") or []
    leader = formation.leaders().get("demo-0")
    if leader is None or len(poolers) != 1 or not poolers[0]["points_at_leader"]:
        return None
    return leader, poolers[0]


def test_pgbouncer_holds_clients_across_a_coordinator_switchover(formation: ComposeFormation) -> None:
    """compose's PgBouncer and watcher (docs/container.md): status sees it on the coordinator leader, and a
    writer and a reader through it every 50 ms see no failed statement across `switchover --group 0`."""
    wait_until("registration", lambda: registered(formation), timeout=120, explain=formation.explain)
    old_leader, pooler = wait_until(
        "status to see PgBouncer on the coordinator leader",
        lambda: pooler_report(formation),
        timeout=90,
        interval=3,
        explain=formation.explain,
    )
    progress(f"pooler {pooler['address']} -> {pooler['host']}:{pooler['port']} (leader {old_leader})")
    assert pooler["address"] == "pgbouncer:6432" and pooler["host"] == old_leader, pooler
    dsn = formation.pooler_dsn()
    drill.prepare_table(dsn)
    load = drill.Load(dsn, ids=itertools.count(1), pooled=True)
    load.start()
    try:
        time.sleep(2)
        code, stdout, stderr = exec_in(
            formation.running_coordinator(), ["patroni-citus", "switchover", "--group", "0", "--wait", "120"]
        )
        assert code == 0, stdout + stderr
        progress(" | ".join((stdout + stderr).strip().splitlines()[-2:]))
        new_leader, pooler = wait_until(
            "PgBouncer on the new coordinator leader",
            lambda: found if (found := pooler_report(formation)) and found[0] != old_leader else None,
            timeout=90,
            interval=2,
            explain=formation.explain,
        )
        time.sleep(2)
    finally:
        load.stop()
    failed = [outcome for outcome in load.outcomes if not outcome.ok]
    longest = max(outcome.finished - outcome.started for outcome in load.outcomes)
    progress(
        f"switchover {old_leader} -> {new_leader} through PgBouncer: {len(load.outcomes)} statements, "
        f"{len(failed)} failed, longest {longest:.2f} s"
    )
    assert pooler["host"] == new_leader, pooler
    assert {outcome.kind for outcome in load.outcomes} == {"write", "read"}
    assert not failed, f"{len(failed)} statements failed through PgBouncer: {failed[:5]}"
    (count,) = formation.query(f"SELECT count(*) FROM {drill.TABLE}")[0]  # noqa: S608 - constant
    assert count >= len(load.acknowledged), (count, len(load.acknowledged))
