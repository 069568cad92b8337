"""The exporter of a real formation, scraped by a real Prometheus: drift, a worker failover, a lost DCS.

`local up --metrics` starts the exporter; Debian's Prometheus scrapes it every second, and each
scenario reads back through Prometheus's HTTP API that the series changed as they should. A second
exporter, pointed at a DCS that is not there and served over TLS with basic auth, is scraped the
same way (so Prometheus's own TLS and login settings are checked against it too).
"""

from __future__ import annotations

import base64
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
from harness import CLI, LocalFormation, free_port, local_formation, run_cli, wait_until
from prometheus_server import PrometheusServer, Target, prometheus, require_prometheus

from patroni_citus import pki

pytestmark = pytest.mark.integration
EXPORTER_JOB, DEAD_DCS_JOB = "patroni-citus", "dead-dcs"
JOB = f'job="{EXPORTER_JOB}"'  # the formation's exporter, as PromQL selects it
USER, PASSWORD = "prometheus", "scrape-Secret-pw-7"


@dataclass(frozen=True)
class Setup:
    formation: LocalFormation
    prometheus: PrometheusServer
    dead_dcs_url: str
    ca_file: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    require_prometheus()
    files = tmp_path_factory.mktemp("metrics-web")
    ca_file = web_files(files)
    with (
        local_formation(workers=1, members=2, extra_args=("--metrics",)) as formation,
        dead_dcs_exporter(files) as dead_dcs_address,
    ):
        targets = [
            Target(EXPORTER_JOB, f"127.0.0.1:{formation.layout.metrics_port}"),
            Target(DEAD_DCS_JOB, dead_dcs_address, ca_file, USER, files / "password"),
        ]
        with prometheus(targets) as server:
            yield Setup(formation, server, f"https://{dead_dcs_address}", ca_file)


def web_files(directory: Path) -> Path:
    """A CA, the exporter's certificate for 127.0.0.1, its web config (bcrypt), Prometheus's password file."""
    ca = pki.make_ca("patroni-citus metrics test")
    pki.write_pair(ca, directory / "ca.crt", directory / "ca.key")
    server = pki.issue(ca, "exporter", server_names=["127.0.0.1"])
    pki.write_pair(server, directory / "tls.crt", directory / "tls.key")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=6)).decode()
    (directory / "web.yml").write_text(
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n"
        f"basic_auth_users:\n  {USER}: '{hashed}'\n"
    )
    (directory / "password").write_text(PASSWORD + "\n")
    return directory / "ca.crt"


@contextmanager
def dead_dcs_exporter(files: Path) -> Iterator[str]:
    """`patroni-citus metrics` for a DCS nobody listens on, over TLS with basic auth; always stopped."""
    nowhere = free_port()
    argv = [
        CLI,
        "metrics",
        "--dcs",
        f"http://127.0.0.1:{nowhere}",
        "--formation",
        "nowhere",
        "--dcs-timeout",
        "1",
        "--read-timeout",
        "0.5",
        "--listen",
        "127.0.0.1:0",
        "--web-config",
        str(files / "web.yml"),
    ]
    log_path = files / "dead-dcs-exporter.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        found = wait_until(
            "the exporter's startup line naming its URL",
            lambda: re.search(r"https://(127\.0\.0\.1:\d+)/metrics", log_path.read_text()),
            30,
        )
        yield found.group(1)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def leader_of(setup: Setup, group: int) -> str:
    series = setup.prometheus.wait_for(
        f"group {group}'s leader", f'patroni_citus_member_role{{{JOB}, group="{group}", role="leader"}} == 1'
    )
    assert len(series) == 1, series
    return series[0][0]["member"]


def point_row_elsewhere(setup: Setup, group: int) -> None:
    """Drift no callback mends (nothing changes in Patroni): the group's primary row moves to 127.0.0.9.

    Written on the coordinator group's leader (with two members, member 0 may be its replica).
    """
    layout = setup.formation.layout
    coordinator = leader_of(setup, 0)
    (primary,) = [m for m in layout.group_members(0) if m.name == coordinator]
    setup.formation.query(
        primary,
        "SELECT citus_update_node(nodeid, %s, %s) FROM pg_dist_node"
        " WHERE groupid = %s AND noderole = 'primary'",
        dbname="citus",
        params=("127.0.0.9", layout.member(group, 0).postgres_port, group),
    )


def test_a_healthy_formation_as_prometheus_sees_it(setup: Setup) -> None:
    server, job = setup.prometheus, JOB
    server.wait_for("a formation without problems", f"sum(patroni_citus_problems{{{job}}}) == 0")
    for group in (0, 1):
        server.expect(f'patroni_citus_group_leader_present{{{job}, group="{group}"}} == 1')
        server.expect(f'patroni_citus_group_primary_row_at_leader{{{job}, group="{group}"}} == 1')
        server.expect(f'patroni_citus_group_secondary_rows_match{{{job}, group="{group}"}} == 1')
    server.expect(f'patroni_citus_worker_metadata_synced{{{job}, group="1"}} == 1')
    server.expect(f"patroni_citus_up{{{job}}} == 1")
    server.expect(f'patroni_citus_read_duration_seconds{{{job}, part="total"}}')
    series = server.expect(f"patroni_citus_callback_last_success_timestamp_seconds{{{job}}}")
    assert {labels["member"] for labels, _ in series} == {
        m.name for m in setup.formation.layout.all_members()
    }


def test_a_row_pointing_elsewhere_shows_until_reconciled(setup: Setup) -> None:
    server, job = setup.prometheus, JOB
    point_row_elsewhere(setup, 1)
    server.wait_for(
        "the row off its leader", f'patroni_citus_group_primary_row_at_leader{{{job}, group="1"}} == 0'
    )
    server.wait_for("the problem by kind", f'patroni_citus_problems{{{job}, kind="row_not_at_leader"}} == 1')
    server.wait_for(
        "the outage growing", f'patroni_citus_group_primary_row_not_at_leader_seconds{{{job}, group="1"}} > 0'
    )
    run_cli("reconcile", "-c", str(setup.formation.layout.member(0, 0).config_path))
    server.wait_for(
        "the row back at its leader", f'patroni_citus_group_primary_row_at_leader{{{job}, group="1"}} == 1'
    )
    server.expect(f'patroni_citus_group_primary_row_not_at_leader_seconds{{{job}, group="1"}} == 0')


def test_a_worker_failover_moves_the_leader_and_the_row(setup: Setup) -> None:
    server, job, formation = setup.prometheus, JOB, setup.formation
    server.wait_for(
        "group 1 registered at its leader",
        f'patroni_citus_group_primary_row_at_leader{{{job}, group="1"}} == 1',
    )
    old = leader_of(setup, 1)
    (new,) = {m.name for m in formation.layout.group_members(1)} - {old}
    killed_at = time.time()
    run_cli("local", "stop-member", "--base-dir", str(formation.base), old, "--kill")
    server.wait_for(
        f"{new} as group 1's leader",
        f'patroni_citus_member_role{{{job}, group="1", member="{new}", role="leader"}} == 1',
        timeout=120,
    )
    server.wait_for(
        "the row at the new leader", f'patroni_citus_group_primary_row_at_leader{{{job}, group="1"}} == 1'
    )
    # What happened in between, from Prometheus's own history: the old primary stopped answering.
    server.expect(f'min_over_time(patroni_citus_member_reachable{{{job}, member="{old}"}}[10m]) == 0')
    server.wait_for(
        "the new leader's successful on_role_change",
        f'patroni_citus_callback_last_run_info{{{job}, member="{new}", event="on_role_change",'
        ' role="primary", result="success"} == 1',
    )
    server.expect(
        f'patroni_citus_callback_last_success_timestamp_seconds{{{job}, member="{new}"}} > {killed_at}'
    )
    server.expect(f'patroni_citus_callback_duration_seconds{{{job}, member="{new}"}}')


def test_an_unreachable_dcs_reads_as_up_zero_while_health_answers(setup: Setup) -> None:
    server = setup.prometheus
    job = f'job="{DEAD_DCS_JOB}"'
    # Prometheus scraped it (TLS verified, basic auth accepted): the scrape is up, the read is not.
    server.wait_for("the scrape over TLS with basic auth", f"up{{{job}}} == 1")
    server.wait_for("the failed read", f"patroni_citus_up{{{job}}} == 0")
    server.wait_for("failures counted", f"patroni_citus_read_failures_total{{{job}}} > 1")
    assert get(setup, "/health") == (200, b"ok\n")  # no login needed, no DCS touched
    assert get(setup, "/metrics")[0] == 401
    code, body = get(setup, "/metrics", (USER, PASSWORD))
    assert code == 200 and b"patroni_citus_up 0.0" in body


def get(setup: Setup, path: str, login: tuple[str, str] | None = None) -> tuple[int, bytes]:
    """GET from the TLS exporter, verifying its certificate against the test CA."""
    headers = {}
    if login is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(login).encode()).decode()
    request = urllib.request.Request(f"{setup.dead_dcs_url}{path}", headers=headers)  # noqa: S310 - https
    context = ssl.create_default_context(cafile=str(setup.ca_file))
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as answer:  # noqa: S310
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, b""


@pytest.mark.parametrize("listen", ["9645", "127.0.0.1:99999", "nohost:"])
def test_a_bad_listen_is_one_line_and_exit_two(listen: str) -> None:
    result = run_cli(
        "metrics", "--listen", listen, "--dcs", "http://127.0.0.1:1", "--formation", "x", check=False
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "--listen" in result.stderr, result.stderr


def test_local_up_refuses_metrics_for_builtin_mode(tmp_path: Path) -> None:
    result = run_cli(
        "local", "up", "--base-dir", str(tmp_path), "--mode", "builtin", "--metrics", check=False
    )
    assert result.returncode == 2 and "--metrics" in result.stderr, result.stderr
    assert not (tmp_path / "formation.json").exists()
