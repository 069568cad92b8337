"""Render a PgBouncer for the coordinator group: pgbouncer.ini, its userlist, its [databases] include.

The target lives in an include file of its own (``%include``) that only the watcher rewrites, so
the operator's settings and the current primary never share a file, and a PgBouncer that starts or
restarts reads the target the watcher last wrote. Every value is validated before it gets here
(settings.py); hosts written into the include are checked again, because they come from the DCS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from patroni_citus.errors import ConfigurationError
from patroni_citus.planner import Endpoint
from patroni_citus.settings import PoolerSettings, is_valid_host
from patroni_citus.template import write_private_file

INI_NAME = "pgbouncer.ini"
USERLIST_NAME = "userlist.txt"
DATABASES_NAME = "databases.ini"


@dataclass(frozen=True)
class PoolerFiles:
    """Where one pooler's files are."""

    directory: Path

    @property
    def ini(self) -> Path:
        return self.directory / INI_NAME

    @property
    def userlist(self) -> Path:
        return self.directory / USERLIST_NAME

    @property
    def databases(self) -> Path:
        return self.directory / DATABASES_NAME


def _quoted(value: str) -> str:
    """A userlist field: double quotes around, a double quote inside doubled (PgBouncer's rule).

    >>> _quoted('pa"ss')
    '"pa""ss"'
    """
    return '"' + value.replace('"', '""') + '"'


def render_userlist(settings: PoolerSettings) -> str:
    """The client login and the admin login, with plain passwords: PgBouncer then speaks SCRAM to
    clients and logs in to the coordinator with the same password (the file is mode 0600)."""
    logins = (settings.client, settings.admin)
    return "".join(f"{_quoted(login.username)} {_quoted(login.password)}\n" for login in logins)


def render_ini(settings: PoolerSettings, files: PoolerFiles) -> str:
    """pgbouncer.ini: transaction pooling by default, SCRAM logins, the admin console for one user.

    >>> from patroni_citus.settings import Credentials
    >>> settings = PoolerSettings(Credentials("adm", "x"), Credentials("app", "y"))
    >>> ini = render_ini(settings, PoolerFiles(Path("/p")))
    >>> [line for line in ini.splitlines() if line.startswith(("%include", "pool_mode", "listen_port"))]
    ['%include /p/databases.ini', 'listen_port = 6432', 'pool_mode = transaction']
    """
    host, _, port = settings.listen.rpartition(":")
    lines = [
        "; Rendered by `patroni-citus pooler render`: change the environment and render again.",
        f"; The target is {files.databases.name}, which `patroni-citus pooler watch` keeps current.",
        "[databases]",
        f"%include {files.databases}",
        "",
        "[pgbouncer]",
        f"listen_addr = {'*' if host in ('0.0.0.0', '*') else host.strip('[]')}",  # noqa: S104
        f"listen_port = {port}",
        f"unix_socket_dir = {files.directory}",
        "auth_type = scram-sha-256",
        f"auth_file = {files.userlist}",
        f"admin_users = {settings.admin.username}",
        f"pool_mode = {settings.pool_mode}",
        f"max_client_conn = {settings.max_client_conn}",
        f"default_pool_size = {settings.pool_size}",
        f"query_wait_timeout = {settings.query_wait_timeout}",
        f"server_tls_sslmode = {settings.server_sslmode}",
    ]
    if settings.server_sslrootcert is not None:
        lines.append(f"server_tls_ca_file = {settings.server_sslrootcert}")
    lines += [
        "ignore_startup_parameters = extra_float_digits",
        # After a login to a dead primary fails, PgBouncer waits server_login_retry before it tries
        # again, even at a new host after RELOAD, and meanwhile refuses new clients: 15 s by default.
        "server_login_retry = 0.25",
        "server_connect_timeout = 5",
        "",
    ]
    return "\n".join(lines)


def render_databases(database: str, target: Endpoint) -> str:
    """The include file: the Citus database at the coordinator group's primary.

    >>> render_databases("citus", Endpoint("10.0.0.5", 5432))
    'citus = host=10.0.0.5 port=5432 dbname=citus\\n'
    >>> render_databases("citus", Endpoint("x y", 5432))
    Traceback (most recent call last):
    ...
    patroni_citus.errors.ConfigurationError: pooler target='x y' is invalid: the DCS names no valid host
    """
    if not is_valid_host(target.host) or not 1 <= target.port <= 65535:
        raise ConfigurationError("pooler target", target.host, "the DCS names no valid host")
    return f"{database} = host={target.host.strip('[]')} port={target.port} dbname={database}\n"


def write_config(settings: PoolerSettings, files: PoolerFiles, owner: tuple[int, int] | None) -> list[Path]:
    """pgbouncer.ini and the userlist, each written whole (temp file + rename, mode 0600)."""
    write_private_file(files.userlist, render_userlist(settings), owner=owner)
    write_private_file(files.ini, render_ini(settings, files), owner=owner)
    return [files.ini, files.userlist]


def write_target(files: PoolerFiles, database: str, target: Endpoint) -> None:
    """Point the include file at target, atomically: PgBouncer never reads half a file."""
    write_private_file(files.databases, render_databases(database, target))


def read_target(files: PoolerFiles) -> Endpoint | None:
    """What the include file names now (None when absent or not ours)."""
    try:
        text = files.databases.read_text(encoding="utf-8")
    except OSError:
        return None
    fields = dict(part.partition("=")[::2] for part in text.partition("=")[2].split())
    host, port = fields.get("host"), fields.get("port", "")
    return Endpoint(host, int(port)) if host and port.isdigit() else None
