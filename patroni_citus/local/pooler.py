"""The local formation's PgBouncer and its watcher (`local up --pooler`): files, start, stop.

Both run as the service user, like the members. The watcher starts first and writes the include
file from the DCS; PgBouncer starts once that file exists, so it never serves a guessed target.
Everything either of them reads lives under BASE/pooler, owned by that user, mode 0600.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from patroni_citus import pgbouncer
from patroni_citus.errors import PatroniCitusError
from patroni_citus.local import commands, processes
from patroni_citus.local.layout import (
    DATABASE,
    LOOPBACK,
    SUPERUSER,
    FormationError,
    FormationLayout,
    FormationState,
)
from patroni_citus.planner import Endpoint
from patroni_citus.pooler_config import PoolerFiles, write_config
from patroni_citus.settings import Credentials, load_pooler_settings
from patroni_citus.template import default_scripts_dir, write_private_file

Reporter = Callable[[str], None]
ADMIN_USER = "pooler_admin"
CLIENT_USER = SUPERUSER
START_TIMEOUT_S = 30.0
#: In each daemon's command line: tells ours from a process that reused its pid.
MARKERS = {"pgbouncer": "pgbouncer", "watcher": "pooler watch"}


class PoolerStartError(PatroniCitusError):
    """The local PgBouncer or its watcher did not start."""


def files(layout: FormationLayout) -> PoolerFiles:
    return PoolerFiles(layout.pooler_dir)


def _admin_password_file(layout: FormationLayout) -> Path:
    return layout.pooler_dir / "admin.password"


def _client_password_file(layout: FormationLayout) -> Path:
    return layout.pooler_dir / "client.password"


def member_variables(layout: FormationLayout, group: int) -> dict[str, str]:
    """What a coordinator member's before_stop needs: where the pooler is and how to log in to it."""
    if not layout.pooler or group != 0:
        return {}
    return {
        "CITUS_POOLERS": f"{LOOPBACK}:{layout.pooler_port}",
        "CITUS_POOLER_ADMIN_USER": ADMIN_USER,
        "CITUS_POOLER_ADMIN_PASSWORD_FILE": str(_admin_password_file(layout)),
    }


def pooler_variables(layout: FormationLayout) -> dict[str, str]:
    """The CITUS_POOLER_* settings `pooler render` and `pooler watch` read, as a container would get them."""
    return {
        "CITUS_POOLER_CONFIG_DIR": str(layout.pooler_dir),
        "CITUS_POOLER_LISTEN": f"{LOOPBACK}:{layout.pooler_port}",
        "CITUS_POOLER_ADMIN_USER": ADMIN_USER,
        "CITUS_POOLER_ADMIN_PASSWORD_FILE": str(_admin_password_file(layout)),
        "CITUS_POOLER_CLIENT_USER": CLIENT_USER,
        "CITUS_POOLER_CLIENT_PASSWORD_FILE": str(_client_password_file(layout)),
        "CITUS_POOLER_MAX_CLIENT_CONN": "100",
        "CITUS_DATABASE": DATABASE,
    }


def admin_login(layout: FormationLayout) -> pgbouncer.PoolerLogin:
    password = _admin_password_file(layout).read_text(encoding="utf-8").strip()
    return pgbouncer.PoolerLogin(Endpoint(LOOPBACK, layout.pooler_port), Credentials(ADMIN_USER, password))


def prepare(layout: FormationLayout, user: pwd.struct_passwd, superuser_password: str) -> None:
    """The pooler's directory and password files (before the members render: their tags name them)."""
    if not layout.pooler:
        return
    layout.pooler_dir.mkdir(parents=True, exist_ok=True)
    processes.hand_over(layout.pooler_dir, user)
    owner = (user.pw_uid, user.pw_gid) if os.geteuid() == 0 else None
    if not _admin_password_file(layout).exists():
        write_private_file(_admin_password_file(layout), secrets.token_urlsafe(24) + "\n", owner=owner)
    write_private_file(_client_password_file(layout), superuser_password + "\n", owner=owner)
    write_config(load_pooler_settings(pooler_variables(layout)), files(layout), owner)


def refresh(state: FormationState, user: pwd.struct_passwd, superuser_password: str) -> str:
    """A new superuser password: render the userlist again and have a running PgBouncer reread it."""
    prepare(state.layout, user, superuser_password)
    if not is_ours(state.pooler_pid, "pgbouncer"):
        return f"did rewrite {files(state.layout).userlist}; PgBouncer is not running, it reads it at start"
    try:
        pgbouncer.reload_once(admin_login(state.layout))
    except PatroniCitusError as exc:
        return f"did rewrite {files(state.layout).userlist}; RELOAD of PgBouncer FAILED ({exc}): reload it"
    return f"did rewrite {files(state.layout).userlist} and RELOAD PgBouncer"


def _daemon_env(layout: FormationLayout) -> dict[str, str]:
    return {
        "PATH": f"{default_scripts_dir()}:/usr/local/bin:/usr/bin:/bin:/usr/sbin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(layout.pooler_dir),
        **pooler_variables(layout),
    }


def _pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if found is None:
        raise PoolerStartError("pgbouncer is not installed; apt-get install pgbouncer")
    return found


def _daemon(
    layout: FormationLayout, kind: str, what: str, argv: list[str], ready: Callable[[], bool]
) -> processes.Daemon:
    """kind (pgbouncer, watcher) names its log and its marker; both run as the service user in pooler_dir."""
    return processes.Daemon(
        what=what,
        argv=argv,
        log_path=layout.pooler_dir / f"{kind}.log",
        cwd=layout.pooler_dir,
        env=_daemon_env(layout),
        marker=MARKERS[kind],
        ready=ready,
        timeout=START_TIMEOUT_S,
        pause=0.1,
    )


def start_watcher(state: FormationState, user: pwd.struct_passwd, report: Reporter) -> int:
    layout = state.layout
    argv = [commands.cli_path(), "pooler", "watch", "--dcs", layout.dcs_url, "--formation", layout.name]
    daemon = _daemon(layout, "watcher", "the pooler watcher", argv, files(layout).databases.exists)

    def started(pid: int) -> None:
        state.watcher_pid = pid
        state.save()
        report(f"pooler watcher started (pid {pid})")

    return processes.start_unless_running(daemon, started, state.watcher_pid, user)


def _answers(layout: FormationLayout) -> bool:
    try:
        return pgbouncer.database(admin_login(layout), DATABASE) is not None
    except PatroniCitusError:
        return False


def start_pgbouncer(state: FormationState, user: pwd.struct_passwd, report: Reporter) -> int:
    layout = state.layout
    argv = [_pgbouncer_binary(), str(files(layout).ini)]
    daemon = _daemon(layout, "pgbouncer", "PgBouncer", argv, lambda: _answers(layout))

    def started(pid: int) -> None:
        state.pooler_pid = pid
        state.save()
        report(f"PgBouncer started (pid {pid}), port {layout.pooler_port}")

    return processes.start_unless_running(daemon, started, state.pooler_pid, user)


def start(state: FormationState, user: pwd.struct_passwd, report: Reporter) -> None:
    """The watcher, then PgBouncer (which then reads the target the watcher wrote)."""
    start_watcher(state, user, report)
    start_pgbouncer(state, user, report)


def is_ours(pid: int | None, what: str) -> bool:
    return processes.is_ours(pid, MARKERS[what])


def stop(
    state: FormationState,
    report: Reporter,
    which: tuple[str, ...] = ("watcher", "pgbouncer"),
    kill: bool = False,
) -> None:
    """Stop the watcher and/or PgBouncer (SIGKILL with kill, as a crash would)."""
    for what in which:
        pid = state.watcher_pid if what == "watcher" else state.pooler_pid
        if pid is not None and is_ours(pid, what):
            if kill:
                processes.signal_process(pid, signal.SIGKILL)
                processes.wait_gone([pid], 10)
            else:
                processes.stop(pid, 10)
            report(
                f"{'pooler watcher' if what == 'watcher' else 'PgBouncer'}: {'killed' if kill else 'stopped'}"
            )
        if what == "watcher":
            state.watcher_pid = None
        else:
            state.pooler_pid = None
    state.save()


def _pooled_state(base_dir: Path) -> FormationState:
    state = FormationState.load_existing(base_dir)
    if not state.layout.pooler:
        raise FormationError(f"the formation in {base_dir} has no pooler (start it with `local up --pooler`)")
    return state


def stop_in(base_dir: Path, which: tuple[str, ...], kill: bool, report: Reporter) -> None:
    """`local stop-pooler`: stop the formation's PgBouncer and/or its watcher (a crash with kill)."""
    stop(_pooled_state(base_dir), report, which, kill)


def start_in(base_dir: Path, report: Reporter) -> None:
    """`local start-pooler`: start whichever of the watcher and PgBouncer is not running (watcher first)."""
    start(_pooled_state(base_dir), processes.service_user(), report)
