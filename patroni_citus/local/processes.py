"""Start and stop the local formation's daemons as the right OS user, and find them again."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from patroni_citus.errors import PatroniCitusError
from patroni_citus.poll import poll_until

POSTGRES_OS_USER = "postgres"


class ProcessError(PatroniCitusError):
    """A daemon of the local formation could not be started or stopped."""


def service_user() -> pwd.struct_passwd:
    """PostgreSQL refuses to run as root, so root runs the formation as ``postgres``; others as themselves."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError:
        raise ProcessError(
            "running as root needs the OS user 'postgres' to run PostgreSQL; "
            "install PostgreSQL's packages (they create it) or run as an unprivileged user"
        ) from None


def check_python_readable(user: pwd.struct_passwd) -> None:
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
        raise ProcessError(
            f"the OS user {user.pw_name!r} cannot run {sys.executable} with patroni and patroni_citus "
            "(a Python or venv under /root is not readable by it); install into a venv made from "
            "/usr/bin/python3 outside /root, as the README's install command does"
        )


def hand_over(path: Path, user: pwd.struct_passwd) -> None:
    """Give a directory the daemons write to to the service user (a no-op when that is us)."""
    if os.geteuid() == 0:
        os.chown(path, user.pw_uid, user.pw_gid)


def spawn(
    argv: Sequence[str],
    log_path: Path,
    cwd: Path,
    env: Mapping[str, str],
    user: pwd.struct_passwd | None = None,
) -> int:
    """Start a daemon detached in its own session, output to log_path; returns its pid."""
    switch_user = user is not None and os.geteuid() == 0
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user.pw_uid if switch_user and user else None,
            group=user.pw_gid if switch_user and user else None,
            extra_groups=[] if switch_user else None,
        )
    return int(process.pid)


def is_alive(pid: int | None) -> bool:
    """True while pid names a live, non-zombie process."""
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def is_ours(pid: int | None, marker: str) -> bool:
    """pid still runs the daemon we started: alive, and marker in its command line (not a reused pid)."""
    return pid is not None and is_alive(pid) and marker in command_line(pid)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pids_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains text."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if text in command_line(pid) and is_alive(pid):
                found.append(pid)
    return found


def reap_children() -> None:
    """Collect exit statuses of daemons we started in this process, so they do not linger as zombies."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def wait_gone(pids: Sequence[int], timeout: float) -> list[int]:
    """Wait until the pids are gone; returns the ones still alive at the deadline."""
    alive = list(pids)

    def all_gone() -> bool:
        reap_children()
        alive[:] = [pid for pid in alive if is_alive(pid)]
        return not alive

    poll_until(all_gone, timeout, 0.1)
    return alive


def signal_process(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def postmaster_pid(data_dir: Path) -> int | None:
    """The postmaster's pid from postmaster.pid, if that process is still alive."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if is_alive(pid) and "postgres" in command_line(pid) else None


def stop(pid: int, timeout: float, signum: signal.Signals = signal.SIGTERM) -> bool:
    """Ask politely, then SIGKILL after timeout; True if it had to be killed."""
    if not is_alive(pid):
        return False
    signal_process(pid, signum)
    if not wait_gone([pid], timeout):
        return False
    signal_process(pid, signal.SIGKILL)
    if wait_gone([pid], 10):
        raise ProcessError(f"process {pid} ({command_line(pid)[:80]}) survived SIGKILL")
    return True


def wait_ready(
    pid: int, what: str, ready: Callable[[], bool], log: Path, timeout: float, pause: float
) -> None:
    """Poll ready() until it holds; a server that exits or stays silent past timeout is a ProcessError."""

    def answers() -> bool:
        if ready():
            return True
        if not is_alive(pid):
            raise ProcessError(f"{what} exited at start; see {log}")
        return False

    if not poll_until(answers, timeout, pause):
        raise ProcessError(f"{what} did not answer within {timeout:.0f} s; see {log}")


@dataclass(frozen=True)
class Daemon:
    """A daemon of the formation: how to start it, how to tell it from a reused pid, when it is ready."""

    what: str  # in messages: "PgBouncer", "the pooler watcher"; a {pid} in it is replaced by the pid
    argv: Sequence[str]
    log_path: Path
    cwd: Path
    env: Mapping[str, str]
    marker: str  # a piece of its command line (see is_ours)
    ready: Callable[[], bool]
    timeout: float
    pause: float


def start_unless_running(
    daemon: Daemon,
    started: Callable[[int], None],
    pid: int | None = None,
    user: pwd.struct_passwd | None = None,
) -> int:
    """Spawn daemon (as user, else as the caller) unless pid is still ours, then wait until it is ready.

    started(pid) hears of a new pid before the wait, so a caller can record it where `down` finds
    it even if the wait fails. Returns the daemon's pid.
    """
    running = pid if is_ours(pid, daemon.marker) else None
    if running is None:
        running = spawn(daemon.argv, daemon.log_path, daemon.cwd, daemon.env, user)
        started(running)
    wait_ready(
        running, daemon.what.format(pid=running), daemon.ready, daemon.log_path, daemon.timeout, daemon.pause
    )
    return running
