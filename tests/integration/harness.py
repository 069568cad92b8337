"""Test harness for integration scenarios: which Citus to use, a local formation, polling.

Formations are started through the real CLI (`patroni-citus local up`) in a private base
directory and always torn down with `local down --purge`, also when a test fails.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import polling
import psycopg2
import psycopg2.extensions
import pytest
from polling import TIMEOUT_MULTIPLIER

from patroni_citus.local import commands, pgtree
from patroni_citus.local import network as local_network
from patroni_citus.local.layout import FormationLayout, FormationState, MemberLayout
from patroni_citus.settings import Credentials
from patroni_citus.template import CALLBACK_SCRIPTS

T = TypeVar("T")
CLI = commands.cli_path()


def citus_choice() -> str:
    """real or standin, from PATRONI_CITUS_TEST_CITUS=real|standin|auto (auto: real where installed)."""
    wanted = os.environ.get("PATRONI_CITUS_TEST_CITUS", "auto")
    if wanted not in ("real", "standin", "auto"):
        raise RuntimeError(f"PATRONI_CITUS_TEST_CITUS={wanted!r}: use real, standin or auto")
    available = pgtree.citus_available(source_bindir())
    if wanted == "real" and not available:
        raise RuntimeError(
            f"PATRONI_CITUS_TEST_CITUS=real but Citus is not installed for {source_bindir()} "
            "(set PATRONI_CITUS_PG_BINDIR to a PostgreSQL tree with Citus)"
        )
    if wanted == "auto":
        return "real" if available else "standin"
    return wanted


def source_bindir() -> Path:
    configured = os.environ.get("PATRONI_CITUS_PG_BINDIR")
    return Path(configured) if configured else pgtree.find_system_bindir()


RUNNING: list[LocalFormation] = []
"""Formations started by local_formation() and not yet torn down; timeouts print the newest one's state."""


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = 60.0,
    interval: float = 0.5,
    explain: Callable[[], str] | None = None,
) -> T:
    """polling.wait_until; a timeout is explained by the running formation's DCS and logs by default."""
    if explain is None and RUNNING:
        newest = RUNNING[-1]
        explain = lambda: diagnostics(newest)  # noqa: E731 - evaluated only on a timeout
    return polling.wait_until(what, probe, timeout, interval, explain)


@contextmanager
def in_background(run: Callable[[], None], stop: threading.Event) -> Iterator[None]:
    """Run a load loop in a daemon thread for the length of the block; set stop and join after it."""
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def free_port_base() -> int:
    """A port base whose whole block (etcd, PostgreSQL, REST) is free right now."""
    for _ in range(50):
        base = 30000 + (os.getpid() * 7 + int(time.time() * 1000)) % 300 * 100
        if all(_port_free(base + offset) for offset in (0, 1, 80, 90, *range(100, 190), *range(200, 290))):
            return base
        time.sleep(0.05)
    raise RuntimeError("no free port block found")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_cli(
    *args: str, check: bool = True, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed patroni-citus CLI; env entries are added to (or, if empty, removed from) ours."""
    environment = {**os.environ, **(env or {})}
    environment = {name: value for name, value in environment.items() if value != ""}
    result = subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=timeout, check=False, env=environment
    )
    if check and result.returncode != 0:
        raise AssertionError(f"patroni-citus {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


@dataclass
class LocalFormation:
    """A running local formation and ways to talk to its members."""

    layout: FormationLayout
    citus: str

    @property
    def base(self) -> Path:
        return self.layout.base

    @property
    def password(self) -> str:
        return self.layout.password("superuser")

    @property
    def rest_auth(self) -> Credentials:
        return self.layout.rest_auth()

    def state(self) -> FormationState:
        state = FormationState.load(self.base)
        assert state is not None
        return state

    def connect(self, member: MemberLayout, dbname: str = "postgres") -> psycopg2.extensions.connection:
        connection = psycopg2.connect(
            host=member.host,
            port=member.postgres_port,
            user="postgres",
            password=self.password,
            dbname=dbname,
            connect_timeout=3,
        )
        connection.autocommit = True
        return connection

    def query(
        self, member: MemberLayout, sql: str, dbname: str = "postgres", params: tuple[Any, ...] | None = None
    ) -> list[tuple[Any, ...]]:
        connection = self.connect(member, dbname)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def status(self) -> dict[str, Any]:
        result = run_cli("local", "status", "--base-dir", str(self.base), "--json", check=False)
        payload: dict[str, Any] = json.loads(result.stdout)
        payload["exit_code"] = result.returncode
        return payload


def processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line mentions text (e.g. a formation's base directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline[:160]}")
    return found


def callbacks_running(base: Path) -> list[str]:
    """patroni-citus callbacks still running for the formation in base."""
    scripts = CALLBACK_SCRIPTS.values()
    return [line for line in processes_mentioning(str(base)) if any(script in line for script in scripts)]


@contextmanager
def local_formation(
    workers: int = 1,
    members: int = 2,
    extra_args: tuple[str, ...] = (),
    network: str = "loopback",
    dcs: str = "etcd",
) -> Iterator[LocalFormation]:
    """Start a formation through the CLI; always stop it and remove its directory afterwards.

    extra_args are more `local up` flags (--synchronous, --tls, --pooler, --metrics).
    """
    base = Path(tempfile.mkdtemp(prefix="patroni-citus-it-"))
    os.chmod(base, 0o755)  # noqa: S103 - the postgres OS user must traverse it
    choice = citus_choice()
    layout = FormationLayout(str(base), "it", workers, members, free_port_base(), network=network, dcs=dcs)
    args = [*commands.up_args(layout, choice, source_bindir()), *extra_args]
    try:
        run_cli(*args, timeout=400 * TIMEOUT_MULTIPLIER)
        state = FormationState.load(base)
        assert state is not None, "local up wrote no formation.json"
        # Callbacks may still be converging (retrying with backoff) after `up` returns; scenarios that
        # create drift on purpose must not race them, so start from a settled formation.
        wait_until("the start-up callbacks to finish", lambda: not callbacks_running(base), 120)
        running = LocalFormation(state.layout, choice)
        RUNNING.append(running)
        yield running
    finally:
        RUNNING[:] = [f for f in RUNNING if f.base != base]
        if (base / "formation.json").exists():
            run_cli(*commands.down_args(base), check=False)
        leftovers = processes_mentioning(str(base))
        for line in leftovers:
            os.kill(int(line.split(":")[0]), 9)
        shutil.rmtree(base, ignore_errors=True)
        assert not leftovers, f"processes left behind by the formation: {leftovers}"
        if network == "netns":
            left = network_leftovers(layout)
            assert not left, f"network left behind by the formation: {left}"


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root for ip netns"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"ip netns does not work here: {probe.stderr.strip()}"


def require_netns() -> None:
    """Skip a netns scenario where namespaces cannot be made; fail if PATRONI_CITUS_REQUIRE_NETNS=1 (CI)."""
    reason = netns_unavailable()
    if reason is not None:
        if os.environ.get("PATRONI_CITUS_REQUIRE_NETNS") == "1":
            pytest.fail(f"PATRONI_CITUS_REQUIRE_NETNS=1 but {reason}")
        pytest.skip(reason)


def exported_variables(script: str) -> dict[str, str]:
    """NAME -> value of the `export NAME=VALUE` lines a shell would eval (e.g. `local env`'s output)."""
    variables = {}
    for line in script.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            (variables[name],) = shlex.split(value)
    return variables


def network_leftovers(layout: FormationLayout) -> list[str]:
    """The formation's namespaces and bridge if still there (removed by `local down`, else here)."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    left = [name for name in names.split() if name.startswith(f"{local_network.bridge(layout)}-")]
    left += [local_network.bridge(layout)] if local_network.exists(layout) else []
    if left:
        local_network.remove(layout, lambda _line: None)
    return left


def diagnostics(formation: LocalFormation, log_lines: int = 25) -> str:
    """The DCS's clusters and every member's log tail: what a failed scenario needs to be understood."""
    from patroni_citus import dcs, patroni_dcs
    from patroni_citus.member_config import load_member_config

    parts = []
    try:
        config = load_member_config(formation.layout.member(0, 0).config_path).dcs
        for scope, cluster in sorted(dcs.read_clusters(config).items()):
            members = ", ".join(f"{m.name}={m.role}/{m.state}" for m in cluster.members)
            parts.append(f"{scope}: leader={cluster.leader} members: {members}")
            parts.append(f"{scope}: config = {json.dumps(cluster.config)[:300]}")
    except Exception as exc:  # diagnostics must never hide the original failure
        parts.append(f"(DCS unreadable: {exc})")
    finally:
        patroni_dcs.close_all()  # the formation is going away: no client may keep reconnecting to it
    for member in formation.layout.all_members():
        try:
            lines = member.log_path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        interesting = [line for line in lines if "no action" not in line][-log_lines:]
        parts.append(f"--- {member.name} ({member.log_path})")
        parts.extend(interesting)
    dcs_log = formation.layout.dcs_log_path  # etcd's, or ZooKeeper's with --dcs zookeeper
    try:
        slow = [line for line in dcs_log.read_text(errors="replace").splitlines() if "too long" in line]
    except OSError:
        slow = []
    parts.append(f"--- {formation.layout.dcs}: {len(slow)} slow-request warnings ({dcs_log})")
    parts.extend(line[:300] for line in slow[-5:])
    return "\n".join(parts)
