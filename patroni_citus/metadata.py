"""Citus metadata SQL: connect, read pg_dist_node, apply planned changes, ensure the extension.

The project's one PostgreSQL driver module: every other module talks to PostgreSQL through the
functions here and meets only project errors (first_line is the one place a driver error becomes
its one-line reason). All SQL lives in patroni_citus/sql/*.sql with named parameters; nothing here
formats SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from patroni_citus.errors import PatroniCitusError, UnreachableError
from patroni_citus.planner import (
    AddNode,
    Change,
    EnableShards,
    Endpoint,
    NodeRow,
    PromoteSecondary,
    RemoveNode,
    SetCoordinator,
    UpdateNode,
)
from patroni_citus.settings import Credentials

Connection = psycopg2.extensions.connection
STATEMENT_TIMEOUT_MS = 30000
DEFAULT_LOCK_COOLDOWN_MS = 10000


class MetadataError(PatroniCitusError):
    """A Citus metadata statement failed; the message carries PostgreSQL's reason."""

    def __init__(self, doing: str, reason: str) -> None:
        super().__init__(f"{doing}: {reason}")
        self.reason = reason


def first_line(exc: psycopg2.Error, empty: str | None = None) -> str:
    """PostgreSQL's reason for a driver error, as one line (its DETAIL and HINT lines dropped).

    Only the first line, also because a syntax error's later lines quote the statement (a verifier,
    a password) back. empty is the reason for an error without text (default: its class name).
    """
    text = (exc.pgerror or str(exc)).strip()
    return text.splitlines()[0] if text else empty or type(exc).__name__


def _failed(doing: str, exc: psycopg2.Error) -> MetadataError:
    """The project error for a driver error met while doing something."""
    return MetadataError(doing, first_line(exc))


@cache
def query(name: str) -> str:
    """The SQL of patroni_citus/sql/<name>.sql, read once."""
    return files("patroni_citus").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def connect(
    endpoints: Sequence[tuple[str, int]],
    database: str,
    credentials: Credentials,
    read_write: bool = False,
    connect_timeout: int = 3,
    application_name: str = "patroni-citus",
    idle_in_transaction_timeout_ms: int = 0,
) -> Connection:
    """Connect to the first reachable endpoint (the primary with read_write, via libpq multi-host).

    idle_in_transaction_timeout_ms bounds, on the server, how long a transaction of this session may
    stay open while its client waits: the server ends it even if the client hangs.
    """
    hosts = ",".join(host for host, _ in endpoints)
    ports = ",".join(str(port) for _, port in endpoints)
    # No password at all (not an empty one) lets libpq fall back to PGPASSWORD / PGPASSFILE, as psql does.
    password: dict[str, Any] = {"password": credentials.password} if credentials.password else {}
    options = f"-c statement_timeout={STATEMENT_TIMEOUT_MS:d}"
    if idle_in_transaction_timeout_ms:
        options += f" -c idle_in_transaction_session_timeout={idle_in_transaction_timeout_ms:d}"
    try:
        connection: Connection = psycopg2.connect(
            host=hosts,
            port=ports,
            dbname=database,
            user=credentials.username,
            connect_timeout=connect_timeout,
            target_session_attrs="read-write" if read_write else "any",
            application_name=application_name,
            options=options,
            **password,
        )
    except psycopg2.OperationalError as exc:
        reason = first_line(exc, "connection failed")
        raise UnreachableError(f"cannot connect to {database} at {hosts} port {ports}: {reason}") from None
    connection.autocommit = True
    return connection


def connect_dsn(dsn: str, connect_timeout: int, options: str | None = None) -> Connection:
    """An autocommit session from a libpq connection string as given (a drill's client load).

    options are startup settings (-c name=value); None sends none (PgBouncer 1.18 refuses them).
    """
    startup: dict[str, Any] = {} if options is None else {"options": options}
    try:
        connection: Connection = psycopg2.connect(dsn, connect_timeout=connect_timeout, **startup)
    except psycopg2.Error as exc:
        raise UnreachableError(f"cannot connect: {first_line(exc, 'connection failed')}") from None
    connection.autocommit = True
    return connection


def _execute(
    connection: Connection, name: str, parameters: dict[str, object] | None = None
) -> list[tuple[object, ...]]:
    try:
        with connection.cursor() as cursor:
            cursor.execute(query(name), parameters)
            return cursor.fetchall() if cursor.description else []
    except psycopg2.Error as exc:
        raise _failed(name, exc) from None


def _optional_text(connection: Connection, name: str, parameters: dict[str, object]) -> str | None:
    """The first column of the first row as text; None for no row or NULL."""
    rows = _execute(connection, name, parameters)
    return None if not rows or rows[0][0] is None else str(rows[0][0])


def read_nodes(connection: Connection) -> list[NodeRow]:
    """pg_dist_node as planner rows."""
    return [
        NodeRow(
            nodeid=int(str(nodeid)),
            groupid=int(str(groupid)),
            endpoint=Endpoint(str(host), int(str(port))),
            noderole=str(role),
            isactive=bool(active),
            hasmetadata=bool(has_metadata),
            metadatasynced=bool(synced),
            shouldhaveshards=bool(shards),
        )
        for nodeid, groupid, host, port, role, active, has_metadata, synced, shards in _execute(
            connection, "read_nodes"
        )
    ]


def apply_change(
    connection: Connection, change: Change, lock_cooldown_ms: int = DEFAULT_LOCK_COOLDOWN_MS
) -> None:
    """Run the one Citus function that performs a planned change."""
    match change:
        case SetCoordinator(endpoint):
            _execute(connection, "set_coordinator", {"host": endpoint.host, "port": endpoint.port})
        case AddNode(group, endpoint, role):
            _execute(
                connection,
                "add_node",
                {"host": endpoint.host, "port": endpoint.port, "group": group, "role": role},
            )
        case RemoveNode(_nodeid, _group, endpoint):
            _execute(connection, "remove_node", {"host": endpoint.host, "port": endpoint.port})
        case UpdateNode(nodeid, _group, _old, new, _role):
            _update_node(connection, nodeid, new, lock_cooldown_ms)
        case PromoteSecondary(moves=moves):
            # Only the last state is ever committed: no session sees a parked name.
            for row, endpoint in moves:
                _update_node(connection, row, endpoint, lock_cooldown_ms)
        case EnableShards(endpoint):
            _execute(connection, "enable_shards", {"host": endpoint.host, "port": endpoint.port})


def _update_node(connection: Connection, nodeid: int, endpoint: Endpoint, lock_cooldown_ms: int) -> None:
    _execute(
        connection,
        "update_node",
        {"nodeid": nodeid, "host": endpoint.host, "port": endpoint.port, "lock_cooldown": lock_cooldown_ms},
    )


@contextmanager
def transaction(connection: Connection) -> Iterator[Connection]:
    """One transaction on an autocommit connection: committed on success, rolled back on any error."""
    previous = connection.autocommit
    begin(connection)
    try:
        yield connection
        commit(connection)
    except BaseException:
        if not connection.closed:  # a lost server already ended the transaction
            with suppress(psycopg2.Error):
                connection.rollback()
        raise
    finally:
        if not connection.closed:
            connection.autocommit = previous


def begin(connection: Connection) -> None:
    """Leave autocommit: the statements that follow form one transaction until commit (or close)."""
    connection.autocommit = False


def commit(connection: Connection) -> None:
    """Commit the open transaction; MetadataError (its reason PostgreSQL's) if the server refuses."""
    try:
        connection.commit()
    except psycopg2.Error as exc:
        raise _failed("commit", exc) from None


def apply_changes(
    connection: Connection,
    changes: Sequence[Change],
    fence: Callable[[Change], None],
    lock_cooldown_ms: int = DEFAULT_LOCK_COOLDOWN_MS,
) -> None:
    """One group's changes in one transaction, the fence checked before each: all of them or none."""
    with transaction(connection):
        for change in changes:
            fence(change)
            apply_change(connection, change, lock_cooldown_ms)


def lock_distributed_tables(connection: Connection, lock_timeout_ms: int) -> int:
    """In the open transaction: queue every client statement on distributed tables behind it.

    ACCESS EXCLUSIVE on the coordinator only (DDL propagation off for the transaction): reads and
    writes wait on the coordinator instead of reaching a worker that is going away. Returns how many
    tables are held; a lock not granted within lock_timeout_ms raises MetadataError.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL citus.enable_ddl_propagation TO off")
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", (f"{lock_timeout_ms:d}ms",))
            cursor.execute(query("distributed_tables"))
            tables = cursor.fetchall()
            for schema, table in tables:
                cursor.execute(
                    sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                        sql.Identifier(str(schema), str(table))
                    )
                )
    except psycopg2.Error as exc:
        raise _failed("lock distributed tables", exc) from None
    return len(tables)


def postmaster_facts(connection: Connection) -> tuple[bool, datetime]:
    """(in recovery, postmaster start time): which PostgreSQL this is, and whether it is a primary."""
    in_recovery, started = _execute(connection, "postmaster_facts")[0]
    assert isinstance(started, datetime)
    return bool(in_recovery), started


HOLD_NAME_PREFIX = "patroni-citus hold group "
"""A hold session's application_name, before its group number (hold.hold_name)."""


def open_holds(connection: Connection) -> dict[int, float]:
    """Every group's hold open on this coordinator: group -> seconds its transaction has run."""
    holds: dict[int, float] = {}
    for name, seconds in _execute(connection, "open_holds", {"pattern": HOLD_NAME_PREFIX + "%"}):
        group = str(name).removeprefix(HOLD_NAME_PREFIX)
        if group.isdigit() and seconds is not None:
            holds[int(group)] = max(holds.get(int(group), 0.0), float(str(seconds)))
    return holds


def ping(connection: Connection) -> None:
    """A round trip on the connection: MetadataError once the server or the session is gone."""
    _execute(connection, "ping")


def is_in_recovery(connection: Connection) -> bool:
    return bool(_execute(connection, "is_in_recovery")[0][0])


def citus_loaded(connection: Connection) -> bool:
    return bool(_execute(connection, "citus_loaded")[0][0])


def citus_version(connection: Connection) -> str:
    return str(_execute(connection, "citus_version")[0][0])


def ensure_database(connection: Connection, database: str) -> bool:
    """Create the Citus database if missing; True if it was created."""
    if _execute(connection, "database_exists", {"database": database}):
        return False
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    except psycopg2.errors.DuplicateDatabase:
        return False
    except psycopg2.Error as exc:
        raise _failed(f"create database {database}", exc) from None
    return True


def ensure_extension(connection: Connection) -> None:
    """CREATE EXTENSION IF NOT EXISTS citus (idempotent)."""
    _execute(connection, "create_extension")


def conninfo_quote(value: str) -> str:
    r"""Quote a value for a libpq conninfo string (single quotes; backslash-escape ' and \).

    >>> conninfo_quote("it's")
    "'it\\'s'"
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def authinfo(credentials: Credentials) -> str:
    """The pg_dist_authinfo value that gives Citus this login's password (a libpq conninfo fragment)."""
    return f"password={conninfo_quote(credentials.password)}"


def store_authinfo(connection: Connection, credentials: Credentials) -> None:
    """Give Citus the superuser password for its node-to-node connections (pg_dist_authinfo)."""
    _execute(
        connection,
        "store_authinfo",
        {"rolename": credentials.username, "authinfo": authinfo(credentials)},
    )


def store_authinfo_quietly(connection: Connection, credentials: Credentials) -> None:
    """store_authinfo in its own short transaction whose statement text never reaches the server log."""
    with transaction(connection):
        quiet_rotation(connection)
        store_authinfo(connection, credentials)


def stored_authinfo(connection: Connection, rolename: str) -> str | None:
    """This node's pg_dist_authinfo value for rolename towards every node (nodeid 0), if any."""
    return _optional_text(connection, "read_authinfo", {"rolename": rolename})


def role_secret(connection: Connection, rolename: str) -> str | None:
    """The role's stored password verifier (pg_authid.rolpassword), to compare, never to show."""
    return _optional_text(connection, "role_secret", {"rolename": rolename})


def quiet_rotation(connection: Connection) -> None:
    """In the open transaction: no statement text in the log or pg_stat_statements, no ALTER ROLE
    propagation by Citus (see sql/rotation_quiet.sql)."""
    _execute(connection, "rotation_quiet")


def scram_verifier(connection: Connection, rolename: str, password: str) -> str:
    """libpq's SCRAM-SHA-256 verifier for password, made on this client (PQencryptPasswordConn).

    libpq needs the connection for SCRAM: it takes the iteration count the server announces
    (scram_iterations, PostgreSQL 16+; 4096 before). Every call draws a new random salt.
    """
    try:
        return str(psycopg2.extensions.encrypt_password(password, rolename, connection, "scram-sha-256"))
    except psycopg2.Error as exc:
        raise _failed(f"scram verifier for {rolename}", exc) from None


def set_role_password(connection: Connection, rolename: str, password: str) -> None:
    """ALTER ROLE ... PASSWORD with libpq's verifier (scram_verifier): the server never sees the password."""
    verifier = scram_verifier(connection, rolename, password)
    statement = sql.SQL("ALTER ROLE {} PASSWORD %(verifier)s").format(sql.Identifier(rolename))
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, {"verifier": verifier})
    except psycopg2.Error as exc:
        raise _failed(f"alter role {rolename}", exc) from None  # one line: never the verifier


def member_facts(connection: Connection) -> tuple[str, bool, str | None, float | None]:
    """(shared_preload_libraries, in recovery, citus extension version, replay lag seconds) of one member.

    The version is None without the extension; the lag is None on a primary (see member_facts.sql).
    """
    preload, in_recovery, version, replay_lag = _execute(connection, "member_facts")[0]
    return (
        str(preload),
        bool(in_recovery),
        None if version is None else str(version),
        None if replay_lag is None else float(str(replay_lag)),
    )


def prepare_drill_table(connection: Connection) -> None:
    """The drill's distributed table (sql/drill_*.sql name it), created and distributed once."""
    _execute(connection, "drill_create_table")
    _execute(connection, "drill_distribute_table")


def drill_ids_on_group(connection: Connection, group: int, start: int) -> list[int]:
    """Up to 20000 drill row ids from start on whose shard lives on group."""
    return [
        int(str(row_id))
        for (row_id,) in _execute(connection, "drill_ids_on_group", {"start": start, "group": group})
    ]


def drill_write(connection: Connection, row_id: int) -> None:
    _execute(connection, "drill_write", {"id": row_id})


def drill_read(connection: Connection, row_id: int) -> None:
    _execute(connection, "drill_read", {"id": row_id})


def drill_rows_present(connection: Connection, row_ids: Sequence[int]) -> set[int]:
    """Which of row_ids the drill's table holds."""
    return {
        int(str(row_id)) for (row_id,) in _execute(connection, "drill_rows_present", {"ids": list(row_ids)})
    }
