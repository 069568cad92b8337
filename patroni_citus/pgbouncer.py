"""PgBouncer's admin console: where a pooler points, and the fixed commands that pause, repoint, resume it.

The console is not PostgreSQL metadata, so this module keeps its own driver connection (an
asynchronous one for a bounded PAUSE); its errors read as metadata's do (metadata.first_line).

Checked on PgBouncer 1.18: ``PAUSE db`` returns once every server connection of db is released
(in transaction pooling: once the running transactions end) and closes them; clients then wait,
new logins included, until ``RESUME db``. A PAUSE whose console session goes away stays pending
and RESUME ends it. Only a database's own pause shows in SHOW DATABASES (a bare ``PAUSE`` does
not), so pauses always name the database. ``RELOAD`` rereads pgbouncer.ini and its include; a
changed host closes the old server connections, and ``RECONNECT`` closes any still open once
released. Commands are fixed strings; the one argument, the database, must be a plain identifier.
"""

from __future__ import annotations

import re
import select
import time
from collections.abc import Iterable, Mapping
from contextlib import closing, suppress
from dataclasses import dataclass
from typing import Any, Literal

import psycopg2
import psycopg2.extensions

from patroni_citus.errors import ConfigurationError, PatroniCitusError, UnreachableError
from patroni_citus.metadata import first_line
from patroni_citus.planner import Endpoint
from patroni_citus.settings import (
    DEFAULT_POOLER_ADMIN_USER,
    CitusSettings,
    Credentials,
    parse_address_list,
    read_password_file,
)

Command = Literal["RELOAD", "RECONNECT"]
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
PAUSE_WAIT_S = 2.0
"""How long a planned stop waits for PgBouncer's PAUSE (running transactions finish first); past it
the pause is taken back and the stop goes on, as it would without a pooler."""


class PoolerError(PatroniCitusError):
    """A pooler's admin console could not be reached or refused a command."""


@dataclass(frozen=True)
class PoolerLogin:
    """One PgBouncer's admin console and the login for it."""

    address: Endpoint
    admin: Credentials

    def __str__(self) -> str:
        return str(self.address)


@dataclass(frozen=True)
class PooledDatabase:
    """One line of SHOW DATABASES: where PgBouncer sends a database, and whether it is paused."""

    name: str
    target: Endpoint | None
    paused: bool


def _connect(login: PoolerLogin, timeout: float, async_: bool = False) -> Any:
    try:
        return psycopg2.connect(
            host=login.address.host,
            port=login.address.port,
            dbname="pgbouncer",
            user=login.admin.username,
            password=login.admin.password,
            connect_timeout=max(1, int(timeout)),
            application_name="patroni-citus",
            async_=async_,
        )
    except psycopg2.OperationalError as exc:
        raise UnreachableError(f"pooler {login}: {first_line(exc, 'connection failed')}") from None


def connect(login: PoolerLogin, timeout: float = 2.0) -> psycopg2.extensions.connection:
    """An admin console session (autocommit: the console knows no transactions)."""
    connection: psycopg2.extensions.connection = _connect(login, timeout)
    connection.autocommit = True
    return connection


def show_databases(connection: psycopg2.extensions.connection) -> list[PooledDatabase]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW DATABASES")
            names = [column.name for column in cursor.description or ()]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    except psycopg2.Error as exc:
        raise PoolerError(f"SHOW DATABASES: {first_line(exc)}") from None
    return [_database(row) for row in rows]


def _database(row: Mapping[str, Any]) -> PooledDatabase:
    host, port = row.get("host"), row.get("port")
    target = Endpoint(str(host), int(port)) if host and port else None
    return PooledDatabase(str(row.get("name")), target, bool(int(row.get("paused") or 0)))


def _for_database(verb: Literal["PAUSE", "RESUME"], database: str) -> str:
    """PAUSE db / RESUME db, for a database name that is a plain identifier (nothing else is sent).

    >>> _for_database("RESUME", "citus")
    'RESUME citus'
    """
    if not _IDENTIFIER.fullmatch(database):
        raise ConfigurationError(
            "CITUS_DATABASE", database, "a database behind a pooler must be letters, digits and _ only"
        )
    return f"{verb} {database}"


def _execute(connection: psycopg2.extensions.connection, command: str) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute(command)
    except psycopg2.Error as exc:
        reason = first_line(exc)
        if command.startswith("RESUME") and "not paused" in reason:
            return  # resuming a pooler that is not paused is not an error
        raise PoolerError(f"{command}: {reason}") from None


def run(connection: psycopg2.extensions.connection, command: Command) -> None:
    """RELOAD or RECONNECT."""
    _execute(connection, command)


def resume(connection: psycopg2.extensions.connection, database: str) -> None:
    """RESUME database (a no-op when it is not paused)."""
    _execute(connection, _for_database("RESUME", database))


def reload_once(login: PoolerLogin) -> None:
    """RELOAD on a fresh console session: the pooler rereads its files."""
    with closing(connect(login)) as connection:
        run(connection, "RELOAD")


def resume_once(login: PoolerLogin, database: str) -> None:
    """RESUME database on a fresh console session."""
    with closing(connect(login)) as connection:
        resume(connection, database)


def database(login: PoolerLogin, name: str) -> PooledDatabase | None:
    """The named database as this pooler serves it now (None: it serves no such database)."""
    with closing(connect(login)) as connection:
        return next((db for db in show_databases(connection) if db.name == name), None)


def _ready(connection: Any, deadline: float) -> bool:
    """Drive an asynchronous connection until its current step is done, or the deadline passes."""
    while True:
        state = connection.poll()
        if state == psycopg2.extensions.POLL_OK:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        descriptor = [connection.fileno()]
        if state == psycopg2.extensions.POLL_READ:
            select.select(descriptor, [], [], remaining)
        else:
            select.select([], descriptor, [], remaining)


def pause_within(login: PoolerLogin, database: str, seconds: float) -> bool:
    """PAUSE database, waiting at most seconds for running transactions; False (and resumed) past that."""
    command = _for_database("PAUSE", database)
    deadline = time.monotonic() + seconds
    try:
        connection = _connect(login, seconds, async_=True)
        with closing(connection):
            if not _ready(connection, deadline):
                raise PoolerError(f"pooler {login}: no answer within {seconds:.0f}s")
            cursor = connection.cursor()
            cursor.execute(command)
            paused = _ready(connection, deadline)
    except psycopg2.Error as exc:
        with suppress(PatroniCitusError):  # it may have been issued: never leave it behind
            resume_once(login, database)
        raise PoolerError(f"PAUSE on {login}: {first_line(exc)}") from None
    if not paused:  # the PAUSE stays pending without its session: take it back
        resume_once(login, database)
    return paused


def logins(addresses: Iterable[str], user: str, password_file: str | None) -> list[PoolerLogin]:
    """The admin logins of the poolers at addresses (host:port), the password read from its file."""
    listed = list(addresses)
    if not listed:
        return []
    if password_file is None:
        raise ConfigurationError("CITUS_POOLER_ADMIN_PASSWORD_FILE", None, "required with CITUS_POOLERS")
    password = read_password_file("CITUS_POOLER_ADMIN_PASSWORD_FILE", password_file)
    found = []
    for entry in listed:
        host, _, port = entry.rpartition(":")
        found.append(PoolerLogin(Endpoint(host.strip("[]"), int(port)), Credentials(user, password)))
    return found


def settings_logins(citus: CitusSettings) -> list[PoolerLogin]:
    """A member's configured poolers (CITUS_POOLERS and the admin login)."""
    return logins(citus.poolers, citus.pooler_admin_user, citus.pooler_admin_password_file)


def tag_logins(tags: Mapping[str, Any]) -> list[PoolerLogin]:
    """The poolers a coordinator member announces in its Patroni tags (what status and switchover use)."""
    listed = tags.get("citus_poolers")
    if not listed:
        return []
    addresses = parse_address_list("citus_poolers", str(listed), "pgbouncer-1:6432")
    user = str(tags.get("citus_pooler_admin_user") or DEFAULT_POOLER_ADMIN_USER)
    password_file = tags.get("citus_pooler_admin_password_file")
    return logins(addresses, user, None if password_file is None else str(password_file))
