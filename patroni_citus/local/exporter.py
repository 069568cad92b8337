"""The formation's metrics exporter (`local up --metrics`): `patroni-citus metrics`, started and stopped."""

from __future__ import annotations

import pwd
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from patroni_citus import callback_state
from patroni_citus.local import commands, processes
from patroni_citus.local.layout import LOOPBACK, FormationLayout, FormationState
from patroni_citus.local.member_setup import daemon_environment

Reporter = Callable[[str], None]
MARKER = " metrics "  # in its command line (`patroni-citus metrics -c ...`): tells ours from a reused pid
START_TIMEOUT_S = 30.0


def _answers(layout: FormationLayout) -> bool:
    try:
        with urllib.request.urlopen(f"{layout.metrics_url}/health", timeout=1) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def start(state: FormationState, user: pwd.struct_passwd, report: Reporter) -> int:
    """`patroni-citus metrics` for this formation as the service user, with every member's callback state."""
    layout = state.layout
    argv = [
        commands.cli_path(),
        "metrics",
        "-c",
        str(layout.member(0, 0).config_path),  # mode 0600, the service user's: the exporter runs as it
        "--listen",
        f"{LOOPBACK}:{layout.metrics_port}",
        *(f"--callback-state={callback_state.state_path(m.config_path)}" for m in layout.all_members()),
    ]
    daemon = processes.Daemon(
        what="the metrics exporter (pid {pid})",
        argv=argv,
        log_path=layout.metrics_log_path,
        cwd=layout.base,
        env=daemon_environment(Path(state.bindir), layout.base),
        marker=MARKER,
        ready=lambda: _answers(layout),
        timeout=START_TIMEOUT_S,
        pause=0.2,
    )

    def started(pid: int) -> None:
        state.metrics_pid = pid
        state.save()

    pid = processes.start_unless_running(daemon, started, state.metrics_pid, user)
    report(f"metrics: {layout.metrics_url}/metrics (exporter pid {pid}, log {layout.metrics_log_path})")
    return pid


def stop(state: FormationState, report: Reporter) -> None:
    pid = state.metrics_pid
    if pid is not None and processes.is_ours(pid, MARKER):
        processes.stop(pid, 10)
        report("metrics exporter: stopped")
    state.metrics_pid = None
