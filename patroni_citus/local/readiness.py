"""Waiting until a starting formation is ready: every member running, every group registered in Citus.

Both waits print a progress line whenever what they see changes, and fail naming what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from patroni_citus import convergence
from patroni_citus.errors import PatroniCitusError
from patroni_citus.local import processes
from patroni_citus.local.access import formation_address
from patroni_citus.local.layout import FormationError, FormationLayout, FormationState, MemberLayout
from patroni_citus.local.members import member_role
from patroni_citus.poll import poll_until
from patroni_citus.topology import FormationAddress, formation_clusters

Reporter = Callable[[str], None]
POLL_INTERVAL_S = 0.5
RUNNING_ROLES = ("primary", "master", "replica", "standby_leader")


def _log_tail(member: MemberLayout, lines: int = 8, error_lines: int = 5) -> str:
    """The last lines of a member's log, to say at once why it stopped (a test's files may not outlive it).

    Patroni's own last lines are often only its traceback of "Failed to bootstrap cluster"; the last
    error lines before them (the callbacks', Patroni's, PostgreSQL's) say why, so they come first.
    """
    try:
        logged = member.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    tail = logged[-lines:]
    errors = [line for line in logged[:-lines] if any(word in line for word in (" ERROR", "FATAL", "PANIC"))]
    return "".join(f"\n    {line[:300]}" for line in [*errors[-error_lines:], *tail])


def wait_for_members(state: FormationState, report: Reporter, timeout: float) -> None:
    """Poll every member until it runs as primary or replica; one progress line per change."""
    layout = state.layout
    started = time.monotonic()
    pending = {m.name: m for m in layout.all_members()}
    last_seen: dict[str, str] = {}

    def all_running() -> bool:
        for name, member in list(pending.items()):
            if not processes.is_alive(state.member_pids.get(name)):
                raise FormationError(f"{name}: Patroni exited; see {member.log_path}{_log_tail(member)}")
            role, member_state = member_role(member)
            seen = f"{role or '-'} / {member_state}"
            elapsed = time.monotonic() - started
            if member_state == "running" and role in RUNNING_ROLES:
                report(f"{name}: running as {role} after {elapsed:.1f}s")
                del pending[name]
            elif last_seen.get(name) != seen:
                report(f"{name}: waiting ({seen}, {elapsed:.1f}s)")
                last_seen[name] = seen
        return not pending

    if not poll_until(all_running, timeout, POLL_INTERVAL_S):
        logs = ", ".join(str(m.log_path) for m in pending.values())
        raise FormationError(f"not ready within {timeout:.0f}s: {', '.join(pending)}; see {logs}")
    for group in range(layout.workers + 1):
        leaders = [m.name for m in layout.group_members(group) if member_role(m)[0] in ("primary", "master")]
        if len(leaders) != 1:
            raise FormationError(
                f"group {group} has {len(leaders)} primaries ({leaders}); expected exactly one"
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


def wait_for_metadata(layout: FormationLayout, report: Reporter, timeout: float) -> None:
    """Wait until every group's leader is registered in the coordinator's pg_dist_node."""
    address = formation_address(layout)
    started = time.monotonic()
    seen = ""

    def registered() -> bool:
        nonlocal seen
        last = seen
        try:
            seen = _unregistered(layout, address)
        except PatroniCitusError as exc:
            seen = str(exc)
        if not seen:
            report(f"citus metadata: every group registered after {time.monotonic() - started:.1f}s")
            return True
        if seen != last:
            report(f"citus metadata: waiting ({seen})")
        return False

    if not poll_until(registered, timeout, POLL_INTERVAL_S):
        raise FormationError(f"Citus metadata did not converge within {timeout:.0f}s: {seen}")
