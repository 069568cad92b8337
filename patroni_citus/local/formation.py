"""Bring a local formation (etcd + one Patroni cluster per Citus group) up and down on this machine.

Each member is a real Patroni managing a real PostgreSQL, configured by the same settings and
template an operator's container uses, so the local formation exercises the product itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from patroni_citus import callback_state, convergence, patroni_api, rotation
from patroni_citus.errors import ConfigurationError, PatroniCitusError, UnreachableError
from patroni_citus.local import certs, etcd, network, pgtree, pooler, processes, zookeeper
from patroni_citus.local.layout import (
    ETCD_CLI_USER,
    ETCD_PATRONI_USER,
    LOOPBACK,
    FormationLayout,
    FormationState,
    MemberLayout,
)
from patroni_citus.member_config import load_member_config
from patroni_citus.settings import load_settings
from patroni_citus.template import CALLBACK_SCRIPTS, default_scripts_dir, render_config, write_private_file
from patroni_citus.topology import FormationAddress, formation_clusters

Reporter = Callable[[str], None]
SUPERUSER = "postgres"
DATABASE = "citus"
CITUS_CHOICES = ("auto", "real", "standin")
STANDIN_BANNER = "*** USING THE CITUS STAND-IN: a test double, NOT real Citus; no data is distributed ***"
INSTALL_CITUS_HINT = (
    "Citus is not installed for the PostgreSQL in {bindir}. Install it from Citus's packages "
    "(curl https://install.citusdata.com/community/deb.sh | bash; "
    "apt-get install postgresql-{major}-citus-13.2), "
    "or pass --citus standin to run with the test stand-in (not real Citus)."
)
_PASSWORD_NAMES = ("superuser", "replication", "restapi")


class FormationError(PatroniCitusError):
    """The local formation could not be brought up, down or read."""


class NoFormationError(FormationError):
    """There is no local formation in the directory: a usage error, not an unhealthy formation."""

    exit_code = 2


@dataclass(frozen=True)
class MemberReport:
    """One member as `local status` shows it."""

    group: int
    name: str
    postgres_port: int
    rest_port: int
    pid: int | None
    running: bool
    role: str
    state: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def resolve_postgres(
    choice: str, source_bindir: Path | None, private_tree: Path, report: Reporter
) -> tuple[Path, str]:
    """Pick the PostgreSQL binaries: real Citus where installed, the stand-in only when asked."""
    source = source_bindir or pgtree.find_system_bindir()
    if choice != "standin":
        if pgtree.citus_available(source):
            return source, "real"
        major = source.parent.name if source.parent.name.isdigit() else "15"
        raise FormationError(INSTALL_CITUS_HINT.format(bindir=source, major=major))
    report(STANDIN_BANNER)
    report(f"installing the stand-in into a private copy of {source.parent} under {private_tree}")
    return pgtree.install_standin(private_tree, source), "standin"


def dcs_environment(layout: FormationLayout) -> dict[str, str]:
    """A member's DCS settings: ZooKeeper's hosts, or etcd's (--tls: https, Patroni's certificate, user)."""
    if layout.dcs == "zookeeper":
        return {"PATRONI_ZOOKEEPER_HOSTS": layout.dcs_hosts}
    variables = {"PATRONI_ETCD3_HOSTS": layout.dcs_hosts}
    if layout.tls:
        client = layout.client_tls(ETCD_PATRONI_USER)
        variables |= {
            "PATRONI_ETCD3_PROTOCOL": "https",
            "PATRONI_ETCD3_CACERT": str(layout.ca.cert),
            "PATRONI_ETCD3_CERT": str(client.cert),
            "PATRONI_ETCD3_KEY": str(client.key),
            "PATRONI_ETCD3_USERNAME": ETCD_PATRONI_USER,
            "PATRONI_ETCD3_PASSWORD_FILE": str(layout.secret(f"etcd-{ETCD_PATRONI_USER}")),
        }
    return variables


def tls_environment(layout: FormationLayout, member: MemberLayout) -> dict[str, str]:
    """--tls: the member's own server certificate, hostssl on the formation's network, verified node links."""
    if not layout.tls:
        return {}
    return {
        "PG_SSL_CERT_FILE": str(member.server_tls.cert),
        "PG_SSL_KEY_FILE": str(member.server_tls.key),
        "PG_SSL_CA_FILE": str(layout.ca.cert),
        "PG_HBA_HOSTSSL": "true",
        "CITUS_NODE_SSLMODE": "verify-full",
        "CITUS_NODE_SSLROOTCERT": str(layout.ca.cert),
    }


def member_environment(layout: FormationLayout, member: MemberLayout, bindir: Path) -> dict[str, str]:
    """The settings a member's container would get, as environment variables."""
    return {
        "PATRONI_SCOPE": member.scope,
        "PATRONI_NAME": member.name,
        **dcs_environment(layout),
        "PATRONI_RESTAPI_LISTEN": f"{member.host}:{member.rest_port}",
        "PATRONI_RESTAPI_CONNECT_ADDRESS": f"{member.host}:{member.rest_port}",
        "PATRONI_RESTAPI_PASSWORD_FILE": str(layout.secret("restapi")),
        "PATRONI_POSTGRESQL_LISTEN": f"{member.host}:{member.postgres_port}",
        "PATRONI_POSTGRESQL_CONNECT_ADDRESS": f"{member.host}:{member.postgres_port}",
        "PATRONI_POSTGRESQL_DATA_DIR": str(member.data_dir),
        "PATRONI_POSTGRESQL_BIN_DIR": str(bindir),
        "PATRONI_POSTGRESQL_PGPASS": str(Path(member.directory) / "pgpass"),
        "PATRONI_SUPERUSER_USERNAME": SUPERUSER,
        "PATRONI_SUPERUSER_PASSWORD_FILE": str(layout.secret("superuser")),
        "PATRONI_REPLICATION_PASSWORD_FILE": str(layout.secret("replication")),
        "PATRONI_TTL": "20",
        "PATRONI_LOOP_WAIT": "2",
        "PATRONI_RETRY_TIMEOUT": "5",
        "PATRONI_SYNCHRONOUS_MODE": "true" if layout.synchronous else "false",
        "PG_SOCKET_DIR": str(member.socket_dir),
        "PG_ALLOWED_NETWORKS": layout.allowed_networks,
        "CITUS_ENABLE": "true",
        "CITUS_ROLE": "coordinator" if member.group == 0 else "worker",
        "CITUS_GROUP": str(member.group),
        "CITUS_COORDINATOR_HOST": layout.coordinator_hosts(),
        "CITUS_DATABASE": DATABASE,
        "CITUS_STANDALONE": "true" if layout.workers == 0 else "false",
        **tls_environment(layout, member),
        **pooler.member_variables(layout, member.group),
    }


def _daemon_environment(bindir: Path, home: Path) -> dict[str, str]:
    """A clean environment: no PATRONI_* variables, so the rendered file is the only source of truth."""
    return {
        "PATH": f"{default_scripts_dir()}:{bindir}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(home),
    }


def _check_python_readable(user: Any) -> None:
    """Patroni and the callbacks run as the service user: this Python and package must be readable by it."""
    if os.geteuid() != 0:
        return
    probe = subprocess.run(
        [sys.executable, "-c", "import patroni, patroni_citus"],
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        cwd="/",
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        raise FormationError(
            f"the OS user {user.pw_name!r} cannot run {sys.executable} with patroni and patroni_citus "
            "(a Python or venv under /root is not readable by it); install into a venv made from "
            "/usr/bin/python3 outside /root, as the README's install command does"
        )


def _prepare_member(layout: FormationLayout, member: MemberLayout, bindir: Path, user: Any) -> None:
    directory = Path(member.directory)
    directory.mkdir(parents=True, exist_ok=True)
    member.socket_dir.mkdir(exist_ok=True)
    for path in (directory, member.socket_dir):
        processes.hand_over(path, user)
    os.chmod(member.socket_dir, 0o700)
    environment = member_environment(layout, member, bindir)
    if layout.mode == "builtin":
        environment["CITUS_ENABLE"] = "false"
    text = render_config(load_settings(environment), member.config_path, default_scripts_dir())
    if layout.mode == "builtin":
        text = builtin_mode_config(text, member.group)
    owner = (user.pw_uid, user.pw_gid) if os.geteuid() == 0 else None
    write_private_file(member.config_path, text, owner=owner)


def builtin_mode_config(text: str, group: int) -> str:
    """Turn a rendered Citus-disabled config into one for Patroni's built-in Citus mode (comparison only).

    The product's template refuses this mode; the local formation builds it so drills can compare.
    """
    config = yaml.safe_load(text)
    config["citus"] = {"group": group, "database": DATABASE}
    parameters = config["bootstrap"]["dcs"]["postgresql"]["parameters"]
    parameters["max_prepared_transactions"] = 200
    return str(yaml.safe_dump(config, sort_keys=False))


def pgpass_escape(value: str) -> str:
    r"""A pgpass field: backslash and colon escaped with a backslash.

    >>> pgpass_escape("a:b\\c")
    'a\\:b\\\\c'
    """
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _pgpass_text(layout: FormationLayout) -> str:
    """Every member's PostgreSQL and (with --pooler) PgBouncer, as the superuser."""
    password = pgpass_escape(layout.secret("superuser").read_text().rstrip("\r\n"))
    lines = [f"{m.host}:{m.postgres_port}:*:{SUPERUSER}:{password}" for m in layout.all_members()]
    if layout.pooler:
        lines.append(f"{LOOPBACK}:{layout.pooler_port}:*:{SUPERUSER}:{password}")
    return "\n".join(lines) + "\n"


def _write_operator_pgpass(layout: FormationLayout) -> None:
    write_private_file(layout.pgpass_path, _pgpass_text(layout))


def _start_dcs(layout: FormationLayout, report: Reporter) -> int:
    return zookeeper.start(layout, report) if layout.dcs == "zookeeper" else etcd.start(layout, report)


def _stop_dcs(state: FormationState, report: Reporter) -> None:
    pid, kind = state.dcs_pid, state.layout.dcs
    is_ours = zookeeper.is_ours if kind == "zookeeper" else etcd.is_ours
    if pid and processes.is_alive(pid) and is_ours(pid):
        processes.stop(pid, 15)
        report(f"{kind}: stopped")


def _member_role(member: MemberLayout) -> tuple[str, str]:
    """(role, state) from the member's REST API, or ('', why not) while it does not answer."""
    try:
        answer = patroni_api.member_status(member.rest_url, timeout=1.0)
    except UnreachableError:
        return "", "not answering yet"
    return str(answer.get("role", "")), str(answer.get("state", ""))


def _log_tail(member: MemberLayout, lines: int = 8) -> str:
    """The last lines of a member's log, to say at once why it stopped (a test's files may not outlive it)."""
    try:
        tail = member.log_path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n    {line[:300]}" for line in tail)


def _wait_for_members(state: FormationState, report: Reporter, timeout: float) -> None:
    """Poll every member until it runs as primary or replica; one progress line per change."""
    layout = state.layout
    started = time.monotonic()
    pending = {m.name: m for m in layout.all_members()}
    last_seen: dict[str, str] = {}
    while pending:
        for name, member in list(pending.items()):
            if not processes.is_alive(state.member_pids.get(name)):
                raise FormationError(f"{name}: Patroni exited; see {member.log_path}{_log_tail(member)}")
            role, member_state = _member_role(member)
            seen = f"{role or '-'} / {member_state}"
            elapsed = time.monotonic() - started
            if member_state == "running" and role in ("primary", "master", "replica", "standby_leader"):
                report(f"{name}: running as {role} after {elapsed:.1f}s")
                del pending[name]
            elif last_seen.get(name) != seen:
                report(f"{name}: waiting ({seen}, {elapsed:.1f}s)")
                last_seen[name] = seen
        if pending and time.monotonic() - started > timeout:
            logs = ", ".join(str(m.log_path) for m in pending.values())
            raise FormationError(f"not ready within {timeout:.0f}s: {', '.join(pending)}; see {logs}")
        time.sleep(0.5)
    for group in range(layout.workers + 1):
        leaders = [m.name for m in layout.group_members(group) if _member_role(m)[0] in ("primary", "master")]
        if len(leaders) != 1:
            raise FormationError(
                f"group {group} has {len(leaders)} primaries ({leaders}); expected exactly one"
            )


def formation_address(layout: FormationLayout) -> FormationAddress:
    """How status/reconcile reach this formation (by config in callbacks mode, by name in built-in mode)."""
    config = load_member_config(layout.member(0, 0).config_path)
    if layout.mode == "callbacks":
        return convergence.member_address(config)
    endpoints = tuple((m.host, m.postgres_port) for m in layout.group_members(0))
    return FormationAddress(
        dcs=config.dcs,
        credentials=config.superuser,
        database=DATABASE,
        name=layout.name,
        coordinator_endpoints=endpoints,
        rest_auth=config.rest_auth,
        standalone=layout.workers == 0,
    )


def _unregistered(layout: FormationLayout, address: FormationAddress) -> str:
    """What still keeps pg_dist_node from matching the DCS; empty once every group is registered.

    A group whose leader key is not written yet (Patroni writes it after post_bootstrap) plans no
    change, so it counts as pending here rather than as registered.
    """
    clusters = formation_clusters(address)
    led = {leader.group for leader in convergence.formation_leaders(clusters, address)}
    leaderless = sorted(set(range(layout.workers + 1)) - led)
    if leaderless:
        return f"no running leader in the DCS yet for group(s) {', '.join(map(str, leaderless))}"
    return "; ".join(change.describe() for change in convergence.reconcile(address, dry_run=True))


def _wait_for_metadata(layout: FormationLayout, report: Reporter, timeout: float) -> None:
    """Wait until every group's leader is registered in the coordinator's pg_dist_node."""
    address = formation_address(layout)
    started = time.monotonic()
    last = ""
    while True:
        try:
            seen = _unregistered(layout, address)
        except PatroniCitusError as exc:
            seen = str(exc)
        if not seen:
            report(f"citus metadata: every group registered after {time.monotonic() - started:.1f}s")
            return
        if seen != last:
            report(f"citus metadata: waiting ({seen})")
            last = seen
        if time.monotonic() - started > timeout:
            raise FormationError(f"Citus metadata did not converge within {timeout:.0f}s: {seen}")
        time.sleep(0.5)


def _spawn_member(state: FormationState, member: MemberLayout, user: Any) -> int:
    bindir = Path(state.bindir)
    argv = [str(default_scripts_dir() / "patroni"), str(member.config_path)]
    if state.layout.network == "netns":  # root enters the namespace, then setpriv drops to the user
        argv, user = network.run_inside(state.layout, member, user, argv), None
    pid = processes.spawn(
        argv,
        member.log_path,
        cwd=Path(member.directory),
        env=_daemon_environment(bindir, Path(member.directory)),
        user=user,
    )
    state.member_pids[member.name] = pid
    state.save()
    return pid


def _exporter_answers(layout: FormationLayout) -> bool:
    try:
        with urllib.request.urlopen(f"{layout.metrics_url}/health", timeout=1) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _start_metrics(state: FormationState, user: Any, report: Reporter) -> None:
    """`up --metrics`: `patroni-citus metrics` for this formation, reading every member's callback state."""
    layout = state.layout
    argv = [
        str(default_scripts_dir() / "patroni-citus"),
        "metrics",
        "-c",
        str(layout.member(0, 0).config_path),  # mode 0600, the service user's: the exporter runs as it
        "--listen",
        f"{LOOPBACK}:{layout.metrics_port}",
        *(f"--callback-state={callback_state.state_path(m.config_path)}" for m in layout.all_members()),
    ]
    env = _daemon_environment(Path(state.bindir), layout.base)
    pid = processes.spawn(argv, layout.metrics_log_path, cwd=layout.base, env=env, user=user)
    state.metrics_pid = pid
    state.save()
    what = f"the metrics exporter (pid {pid})"
    processes.wait_ready(pid, what, lambda: _exporter_answers(layout), layout.metrics_log_path, 30, 0.2)
    report(f"metrics: {layout.metrics_url}/metrics (exporter pid {pid}, log {layout.metrics_log_path})")


def _stop_metrics(state: FormationState, report: Reporter) -> None:
    pid = state.metrics_pid
    if pid and processes.is_alive(pid) and " metrics " in processes.command_line(pid):
        processes.stop(pid, 10)
        report("metrics exporter: stopped")
    state.metrics_pid = None


def up(
    layout: FormationLayout,
    citus: str,
    source_bindir: Path | None,
    report: Reporter,
    timeout: float = 240.0,
    with_metrics: bool = False,
) -> FormationState:
    """Start the DCS and every member, wait until each group has a leader; stop everything on failure.

    with_metrics also starts the formation's exporter (`patroni-citus metrics`) on layout.metrics_port.
    """
    if with_metrics and layout.mode != "callbacks":
        raise ConfigurationError(
            "--metrics",
            "on",
            "local up starts the exporter for --mode callbacks only; for builtin, run "
            "`patroni-citus metrics --dcs URL --formation NAME` yourself",
        )
    existing = FormationState.load(layout.base)
    if existing is not None:
        started = [
            existing.dcs_pid,
            existing.metrics_pid,
            existing.pooler_pid,
            existing.watcher_pid,
            *existing.member_pids.values(),
        ]
        if any(processes.is_alive(pid) for pid in started):
            raise FormationError(f"a formation is already running in {layout.base}; run `local down` first")
        if existing.layout != layout:
            old = existing.layout
            raise FormationError(
                f"{layout.base} holds a formation of another shape ({old.workers} workers, "
                f"{old.members} members, port base {old.port_base}, --dcs {old.dcs}"
                f"{', --tls' if old.tls else ''}, --network {old.network}); "
                "use those options, another --base-dir, or `local down --purge`"
            )
    if layout.network == "netns":
        if os.geteuid() != 0:
            raise ConfigurationError("--network", layout.network, "netns needs root (ip netns); use loopback")
        network.ensure_free(layout)  # before the try below, whose clean-up would remove that network
    user = processes.service_user()
    layout.base.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.base, 0o755)  # noqa: S103 - the service user must traverse it to reach its own directories
    _check_python_readable(user)
    bindir, flavour = resolve_postgres(citus, source_bindir, layout.private_tree, report)
    report(f"PostgreSQL binaries: {bindir} (Citus: {flavour})")
    state = FormationState(layout=layout, bindir=str(bindir), citus=flavour)
    try:
        if layout.tls:
            made = certs.ensure_formation_certificates(layout, user)
            report(f"tls: {len(made)} certificate(s) made under {layout.tls_dir}" if made else "tls: reusing")
        superuser_password = layout.secret("superuser").read_text().rstrip("\r\n")
        pooler.prepare(layout, user, superuser_password)
        for member in layout.all_members():
            _prepare_member(layout, member, bindir, user)
        _write_operator_pgpass(layout)
        state.save()
        if layout.network == "netns":
            network.create(layout, report)
        state.dcs_pid = _start_dcs(layout, report)
        state.save()
        for member in layout.all_members():
            pid = _spawn_member(state, member, user)
            report(f"{member.name}: Patroni started (pid {pid}), PostgreSQL port {member.postgres_port}")
        _wait_for_members(state, report, timeout)
        _wait_for_metadata(layout, report, timeout)
        if layout.pooler:
            pooler.start(state, user, report)
        if with_metrics:
            _start_metrics(state, user, report)
    except BaseException:
        report("start failed: stopping what was started (files and logs are kept)")
        down(layout.base, purge=False, report=report)
        raise
    if flavour == "standin":
        report(STANDIN_BANNER)
    if layout.pooler:
        report(f"coordinator (through PgBouncer): psql '{layout.pooler_dsn(DATABASE, SUPERUSER)}'")
        report(f"coordinator (direct, multi-host): psql '{layout.coordinator_dsn(DATABASE, SUPERUSER)}'")
    else:
        report(f"coordinator: psql '{layout.coordinator_dsn(DATABASE, SUPERUSER)}'")
    return state


def _stop_members(state: FormationState, report: Reporter) -> None:
    alive = {
        name: pid
        for name, pid in state.member_pids.items()
        if processes.is_alive(pid) and "patroni" in processes.command_line(pid)
    }
    for pid in alive.values():
        processes.signal_process(pid, signal.SIGTERM)
    survivors = processes.wait_gone(list(alive.values()), 60)
    for pid in survivors:
        report(f"Patroni pid {pid} ignored SIGTERM for 60s; killing it")
        processes.stop(pid, 0, signal.SIGKILL)
    for name in alive:
        report(f"{name}: stopped")
    # A Patroni killed with -9 leaves its postmaster behind; stop those too (fast shutdown).
    for member in state.layout.all_members():
        postmaster = processes.postmaster_pid(member.data_dir)
        if postmaster is not None:
            report(f"{member.name}: stopping orphaned PostgreSQL (pid {postmaster})")
            processes.stop(postmaster, 30, signal.SIGINT)
    _stop_callbacks(state.layout, report)


def _stop_callbacks(layout: FormationLayout, report: Reporter) -> None:
    """Callbacks outlive their Patroni (one may still be retrying a registration): stop them too.

    Each is safe to kill at any point, by design; they are found by the member's config in their argv.
    """
    for member in layout.all_members():
        pids = [
            pid
            for pid in processes.pids_mentioning(str(member.config_path))
            if any(script in processes.command_line(pid) for script in CALLBACK_SCRIPTS.values())
        ]
        for pid in pids:
            processes.stop(pid, 5)
        if pids:
            report(f"{member.name}: stopped {len(pids)} callback(s) still running")


def down(base_dir: Path, purge: bool, report: Reporter) -> None:
    """Stop every process the formation in base_dir started; remove its files only with purge."""
    state = _load_state(base_dir)
    pooler.stop(state, report)
    _stop_metrics(state, report)
    _stop_members(state, report)
    _stop_dcs(state, report)
    state.dcs_pid = None
    state.member_pids = {}
    state.save()
    if state.layout.network == "netns":
        network.remove(state.layout, report)
    if purge:
        shutil.rmtree(base_dir)
        report(f"removed {base_dir}")


def _find_member(state: FormationState, name: str) -> MemberLayout:
    for member in state.layout.all_members():
        if member.name == name:
            return member
    names = ", ".join(m.name for m in state.layout.all_members())
    raise FormationError(f"no member named {name!r}; members are: {names}")


def _load_state(base_dir: Path) -> FormationState:
    state = FormationState.load(base_dir)
    if state is None:
        raise NoFormationError(f"no local formation in {base_dir} (no formation.json)")
    return state


def shell_environment(base_dir: Path) -> dict[str, str]:
    """libpq and patroni-citus variables that point a shell at this formation's coordinator.

    A --tls formation gets the CLI's own etcd login (read-only user, its client certificate) and
    PATRONI_CITUS_DCS / PATRONI_CITUS_FORMATION instead of PATRONI_CITUS_CONFIG: a member's patroni.yml holds
    Patroni's read-write etcd login and the superuser's password, more than status and reconcile need.
    """
    layout = _load_state(base_dir).layout
    coordinators = layout.group_members(0)
    variables = {
        "PGHOST": ",".join(m.host for m in coordinators),
        "PGPORT": ",".join(str(m.postgres_port) for m in coordinators),
        "PGUSER": SUPERUSER,
        "PGDATABASE": DATABASE,
        "PGPASSFILE": str(layout.pgpass_path),
        "PGTARGETSESSIONATTRS": "read-write",
    }
    if not layout.tls:
        return {"PATRONI_CITUS_CONFIG": str(layout.member(0, 0).config_path), **variables}
    client = layout.client_tls(ETCD_CLI_USER)
    return {
        "PATRONI_CITUS_DCS": layout.dcs_url,
        "PATRONI_CITUS_FORMATION": layout.name,
        "PATRONI_ETCD3_CACERT": str(layout.ca.cert),
        "PATRONI_ETCD3_CERT": str(client.cert),
        "PATRONI_ETCD3_KEY": str(client.key),
        "PATRONI_ETCD3_USERNAME": ETCD_CLI_USER,
        "PATRONI_ETCD3_PASSWORD_FILE": str(layout.password_file(f"etcd-{ETCD_CLI_USER}")),
        **variables,
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": str(layout.ca.cert),
    }


def stop_member(base_dir: Path, name: str, kill: bool, report: Reporter) -> None:
    """Stop one member: SIGTERM to Patroni (clean), or SIGKILL to Patroni and its postmaster (a crash)."""
    state = _load_state(base_dir)
    member = _find_member(state, name)
    pid = state.member_pids.get(name)
    postmaster = processes.postmaster_pid(member.data_dir)
    if kill:
        for victim in (pid, postmaster):
            if victim is not None and processes.is_alive(victim):
                processes.signal_process(victim, signal.SIGKILL)
        processes.wait_gone([p for p in (pid, postmaster) if p], 10)
        report(f"{name}: killed with SIGKILL (Patroni {pid}, postmaster {postmaster})")
    else:
        if pid is not None:
            processes.stop(pid, 60)
        report(f"{name}: stopped")


def start_member(base_dir: Path, name: str, report: Reporter) -> int:
    """Start one stopped member again with its existing data."""
    state = _load_state(base_dir)
    member = _find_member(state, name)
    if processes.is_alive(state.member_pids.get(name)):
        raise FormationError(f"{name} is already running (pid {state.member_pids[name]})")
    leftover = processes.postmaster_pid(member.data_dir)
    if leftover is not None:
        processes.stop(leftover, 30, signal.SIGINT)
    pid = _spawn_member(state, member, processes.service_user())
    report(f"{name}: Patroni started (pid {pid})")
    return pid


def set_member_connected(base_dir: Path, name: str, connected: bool, report: Reporter) -> None:
    """Cut one member off the network (a partition) or join it again; needs ``up --network netns``."""
    state = _load_state(base_dir)
    member = _find_member(state, name)
    if state.layout.network != "netns":
        raise FormationError(
            f"{name} shares 127.0.0.1 with everything else, so its traffic cannot be cut alone; "
            "start the formation with `local up --network netns` (as root)"
        )
    network.set_connected(state.layout, member, connected)
    if connected:
        report(f"{name}: link {network.machine_link(state.layout, member)} up: connected again")
    else:
        report(f"{name}: link {network.machine_link(state.layout, member)} down: cut off from everything")


def status(base_dir: Path) -> tuple[FormationState, list[MemberReport]]:
    """Each member's process and Patroni view, for `local status`."""
    state = _load_state(base_dir)
    reports = []
    for member in state.layout.all_members():
        pid = state.member_pids.get(member.name)
        running = processes.is_alive(pid)
        role, member_state = _member_role(member) if running else ("", "stopped")
        reports.append(
            MemberReport(
                member.group,
                member.name,
                member.postgres_port,
                member.rest_port,
                pid,
                running,
                role,
                member_state,
            )
        )
    return state, reports


@dataclass(frozen=True)
class LocalRotation:
    """What `local rotate-password` did (or would do): per group in SQL, per member in its config."""

    groups: list[rotation.GroupRotation]
    files: list[str]
    members: list[str]
    dry_run: bool
    unreloaded: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "groups": [group.as_dict() for group in self.groups],
            "files": self.files,
            "members": self.members,
            "unreloaded": self.unreloaded,
        }


def rotate_password(base_dir: Path, new_password: str, dry_run: bool) -> LocalRotation:
    """Rotate the superuser password in every group, then in the secret, pgpass and every member's config.

    The SQL part comes first: until it is done the old password must keep working for Patroni and
    the callbacks. Re-running after any failure completes the rotation.
    """
    state = _load_state(base_dir)
    layout = state.layout
    address = formation_address(layout)
    groups = rotation.rotate_password(address, new_password, dry_run)
    secret = layout.password_file("superuser")
    verb = "would" if dry_run else "did"
    files = [f"{verb} rewrite {path}" for path in (secret, layout.pgpass_path)]
    members: list[str] = []
    unreloaded: list[str] = []
    user = processes.service_user()
    if not dry_run:
        write_private_file(secret, new_password + "\n")
        _write_operator_pgpass(layout)
        if layout.pooler:  # PgBouncer logs in to the coordinator with the client's password
            files.append(pooler.refresh(state, user, new_password))
    for member in layout.all_members():
        if dry_run:
            members.append(f"{member.name}: would re-render {member.config_path} and reload Patroni")
            continue
        _prepare_member(layout, member, Path(state.bindir), user)
        if not processes.is_alive(state.member_pids.get(member.name)):
            members.append(f"{member.name}: did re-render its config; not running, it reads it at start")
            continue
        # REST credentials did not change: the re-rendered config carries the same ones.
        try:
            patroni_api.reload(member.rest_url, load_member_config(member.config_path).rest_auth)
        except UnreachableError as exc:
            unreloaded.append(member.name)
            members.append(f"{member.name}: did re-render its config; reload FAILED ({exc}): reload it")
            continue
        members.append(f"{member.name}: did re-render its config and reload Patroni")
    return LocalRotation(groups, files, members, dry_run, unreloaded)


def stop_pooler(base_dir: Path, which: tuple[str, ...], kill: bool, report: Reporter) -> None:
    """Stop the formation's PgBouncer and/or its watcher (a crash with kill)."""
    state = _load_state(base_dir)
    if not state.layout.pooler:
        raise FormationError(f"the formation in {base_dir} has no pooler (start it with `local up --pooler`)")
    pooler.stop(state, report, which, kill)


def start_pooler(base_dir: Path, report: Reporter) -> None:
    """Start whichever of the watcher and PgBouncer is not running (the watcher first)."""
    state = _load_state(base_dir)
    if not state.layout.pooler:
        raise FormationError(f"the formation in {base_dir} has no pooler (start it with `local up --pooler`)")
    pooler.start(state, processes.service_user(), report)
