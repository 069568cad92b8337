"""Each member's lifecycle: spawn its Patroni, stop or kill it, start it again, cut it off the network."""

from __future__ import annotations

import pwd
import signal
from collections.abc import Callable
from pathlib import Path

from patroni_citus import patroni_api
from patroni_citus.errors import UnreachableError
from patroni_citus.local import network, processes
from patroni_citus.local.layout import FormationError, FormationLayout, FormationState, MemberLayout
from patroni_citus.local.member_setup import daemon_environment
from patroni_citus.template import CALLBACK_SCRIPTS, default_scripts_dir

Reporter = Callable[[str], None]


def member_role(member: MemberLayout) -> tuple[str, str]:
    """(role, state) from the member's REST API, or ('', why not) while it does not answer."""
    try:
        answer = patroni_api.member_status(member.rest_url, timeout=1.0)
    except UnreachableError:
        return "", "not answering yet"
    return str(answer.get("role", "")), str(answer.get("state", ""))


def spawn_member(state: FormationState, member: MemberLayout, user: pwd.struct_passwd) -> int:
    """Start the member's Patroni (inside its namespace with netns) and record its pid in the state."""
    argv = [str(default_scripts_dir() / "patroni"), str(member.config_path)]
    run_as: pwd.struct_passwd | None = user
    if state.layout.network == "netns":  # root enters the namespace, then setpriv drops to the user
        argv, run_as = network.run_inside(state.layout, member, user, argv), None
    pid = processes.spawn(
        argv,
        member.log_path,
        cwd=Path(member.directory),
        env=daemon_environment(Path(state.bindir), Path(member.directory)),
        user=run_as,
    )
    state.member_pids[member.name] = pid
    state.save()
    return pid


def stop_all(state: FormationState, report: Reporter) -> None:
    """Every member's Patroni (SIGTERM, then SIGKILL after 60 s), orphaned postmasters, leftover callbacks."""
    alive = {name: pid for name, pid in state.member_pids.items() if processes.is_ours(pid, "patroni")}
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


def stop_member(base_dir: Path, name: str, kill: bool, report: Reporter) -> None:
    """Stop one member: SIGTERM to Patroni (clean), or SIGKILL to Patroni and its postmaster (a crash)."""
    state = FormationState.load_existing(base_dir)
    member = state.layout.find_member(name)
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
    state = FormationState.load_existing(base_dir)
    member = state.layout.find_member(name)
    if processes.is_alive(state.member_pids.get(name)):
        raise FormationError(f"{name} is already running (pid {state.member_pids[name]})")
    leftover = processes.postmaster_pid(member.data_dir)
    if leftover is not None:
        processes.stop(leftover, 30, signal.SIGINT)
    pid = spawn_member(state, member, processes.service_user())
    report(f"{name}: Patroni started (pid {pid})")
    return pid


def set_member_connected(base_dir: Path, name: str, connected: bool, report: Reporter) -> None:
    """Cut one member off the network (a partition) or join it again; needs ``up --network netns``."""
    state = FormationState.load_existing(base_dir)
    member = state.layout.find_member(name)
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
