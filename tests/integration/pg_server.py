"""A throwaway PostgreSQL server (initdb + pg_ctl, no Patroni, no DCS) for tests that need one server.

PostgreSQL refuses to run as root, so as root everything runs as the postgres OS user, in a
directory it can enter (not pytest's tmp_path: /tmp/pytest-of-root is 0700).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness import free_port, processes_mentioning

POSTGRES_OS_USER = "postgres"


def as_server_user(command: list[str], cwd: Path) -> None:
    """Run a PostgreSQL program; root runs it as the postgres OS user."""
    as_root = os.geteuid() == 0
    environment = dict(os.environ)
    if as_root:  # libpq and PostgreSQL look for files under HOME, which must be postgres's own
        environment["HOME"] = pwd.getpwnam(POSTGRES_OS_USER).pw_dir
    result = subprocess.run(
        command,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        user=POSTGRES_OS_USER if as_root else None,
        group=POSTGRES_OS_USER if as_root else None,
        extra_groups=[] if as_root else None,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )


def give_to_server_user(path: Path) -> None:
    path.mkdir()
    if os.geteuid() == 0:
        shutil.chown(path, POSTGRES_OS_USER, POSTGRES_OS_USER)


def start_server(bindir: Path, data_dir: Path, run_dir: Path, port: int, settings: str) -> Path:
    """pg_ctl start (waiting until it accepts connections); returns the server log."""
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={run_dir} "
        f"-c fsync=off {settings}"
    )
    log_path = run_dir / "server.log"
    command = [str(bindir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_path), "-w", "-t", "60"]
    as_server_user([*command, "-o", options, "start"], run_dir.parent)
    return log_path


def stop_server(bindir: Path, data_dir: Path) -> None:
    as_server_user(
        [str(bindir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "-t", "60", "stop"], data_dir.parent
    )


@contextmanager
def server_base(prefix: str) -> Iterator[Path]:
    """A directory the postgres OS user can work in; removed after, and nothing may be left running."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)  # noqa: S103 - the postgres OS user runs binaries from here
    try:
        yield base
    finally:
        leftovers = processes_mentioning(str(base))
        shutil.rmtree(base, ignore_errors=True)
        assert not leftovers, f"processes left behind in {base}: {leftovers}"


@dataclass(frozen=True)
class Server:
    bindir: Path
    data_dir: Path
    port: int
    log_path: Path


@contextmanager
def running_server(bindir: Path, base: Path, settings: str = "", hba: str | None = None) -> Iterator[Server]:
    """initdb (superuser postgres, trust unless hba replaces pg_hba.conf) and start; stopped after."""
    data_dir, run_dir = base / "data", base / "run"
    give_to_server_user(data_dir)
    give_to_server_user(run_dir)
    as_server_user([str(bindir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "postgres", "-N"], base)
    if hba is not None:
        (data_dir / "pg_hba.conf").write_text(hba)  # rewritten in place: still the server user's file
    port = free_port()
    try:
        log_path = start_server(bindir, data_dir, run_dir, port, settings)
        yield Server(bindir, data_dir, port, log_path)
    finally:
        if (data_dir / "postmaster.pid").exists():
            stop_server(bindir, data_dir)
