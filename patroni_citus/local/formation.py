"""Bring a local formation (a DCS + one Patroni cluster per Citus group) up and down, and show its members.

This module orchestrates; each step is another module's job: member_setup renders the configs,
etcd/zookeeper start the DCS, members starts and stops each Patroni, readiness waits, pooler and
exporter run the optional daemons.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from patroni_citus.errors import ConfigurationError
from patroni_citus.local import (
    access,
    certs,
    etcd,
    exporter,
    members,
    network,
    pgtree,
    pooler,
    processes,
    readiness,
    zookeeper,
)
from patroni_citus.local.layout import (
    DATABASE,
    SUPERUSER,
    FormationError,
    FormationLayout,
    FormationState,
)
from patroni_citus.local.member_setup import prepare_member

Reporter = Callable[[str], None]
CITUS_CHOICES = ("auto", "real", "standin")
STANDIN_BANNER = "*** USING THE CITUS STAND-IN: a test double, NOT real Citus; no data is distributed ***"
INSTALL_CITUS_HINT = (
    "Citus is not installed for the PostgreSQL in {bindir}. Install it from Citus's packages "
    "(curl https://install.citusdata.com/community/deb.sh | bash; "
    "apt-get install postgresql-{major}-citus-13.2), "
    "or pass --citus standin to run with the test stand-in (not real Citus)."
)


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

    def as_dict(self) -> dict[str, int | str | bool | None]:
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


def _start_dcs(state: FormationState, report: Reporter) -> int:
    def record(pid: int) -> None:
        state.dcs_pid = pid
        state.save()

    start = zookeeper.start if state.layout.dcs == "zookeeper" else etcd.start
    return start(state.layout, report, record)


def _stop_dcs(state: FormationState, report: Reporter) -> None:
    pid, kind = state.dcs_pid, state.layout.dcs
    is_ours = zookeeper.is_ours if kind == "zookeeper" else etcd.is_ours
    if pid and is_ours(pid):
        processes.stop(pid, 15)
        report(f"{kind}: stopped")


def _refuse_to_start(layout: FormationLayout, with_metrics: bool) -> None:
    """Refusals before anything is written: --metrics outside callbacks mode, a running or other formation."""
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
        network.ensure_free(layout)  # before up's clean-up, which would remove that network


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
    _refuse_to_start(layout, with_metrics)
    user = processes.service_user()
    layout.base.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.base, 0o755)  # noqa: S103 - the service user must traverse it to reach its own directories
    processes.check_python_readable(user)
    bindir, flavour = resolve_postgres(citus, source_bindir, layout.private_tree, report)
    report(f"PostgreSQL binaries: {bindir} (Citus: {flavour})")
    state = FormationState(layout=layout, bindir=str(bindir), citus=flavour)
    try:
        if layout.tls:
            made = certs.ensure_formation_certificates(layout, user)
            report(f"tls: {len(made)} certificate(s) made under {layout.tls_dir}" if made else "tls: reusing")
        pooler.prepare(layout, user, layout.password("superuser"))
        for member in layout.all_members():
            prepare_member(layout, member, bindir, user)
        access.write_operator_pgpass(layout)
        state.save()
        if layout.network == "netns":
            network.create(layout, report)
        state.dcs_pid = _start_dcs(state, report)
        state.save()
        for member in layout.all_members():
            pid = members.spawn_member(state, member, user)
            report(f"{member.name}: Patroni started (pid {pid}), PostgreSQL port {member.postgres_port}")
        readiness.wait_for_members(state, report, timeout)
        readiness.wait_for_metadata(layout, report, timeout)
        if layout.pooler:
            pooler.start(state, user, report)
        if with_metrics:
            exporter.start(state, user, report)
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


def down(base_dir: Path, purge: bool, report: Reporter) -> None:
    """Stop every process the formation in base_dir started; remove its files only with purge."""
    state = FormationState.load_existing(base_dir)
    pooler.stop(state, report)
    exporter.stop(state, report)
    members.stop_all(state, report)
    _stop_dcs(state, report)
    state.dcs_pid = None
    state.member_pids = {}
    state.save()
    if state.layout.network == "netns":
        network.remove(state.layout, report)
    if purge:
        shutil.rmtree(base_dir)
        report(f"removed {base_dir}")


def status(base_dir: Path) -> tuple[FormationState, list[MemberReport]]:
    """Each member's process and Patroni view, for `local status`."""
    state = FormationState.load_existing(base_dir)
    reports = []
    for member in state.layout.all_members():
        pid = state.member_pids.get(member.name)
        running = processes.is_alive(pid)
        role, member_state = members.member_role(member) if running else ("", "stopped")
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
