"""The Citus stand-in (a test double, NOT Citus): private install, and Citus 13.2's metadata semantics.

Every expectation here was checked against a real Citus 13.2.2 build (signatures, flags, error
texts and SQLSTATEs), so a test that passes on the stand-in means the same call behaves so on Citus.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest
from harness import free_port, processes_mentioning, source_bindir, wait_until
from pg_server import (
    as_server_user,
    give_to_server_user,
    running_server,
    server_base,
    start_server,
    stop_server,
)

from patroni_citus.local import pgtree

pytestmark = pytest.mark.integration

needs_standin = pytest.mark.skipif(
    os.environ.get("PATRONI_CITUS_TEST_CITUS") == "real",
    reason="PATRONI_CITUS_TEST_CITUS=real: this run tests real Citus, not the stand-in",
)

COORDINATOR = ("127.0.0.1", 6601)
WORKER_1 = ("127.0.0.1", 6602)
WORKER_2 = ("127.0.0.1", 6603)
NODES_QUERY = (
    "SELECT nodeid, groupid, nodename, nodeport, hasmetadata, isactive, noderole::text, metadatasynced, "
    "shouldhaveshards FROM pg_dist_node ORDER BY nodeid"
)

#: `\df` of a real Citus 13.2.2 (pg_get_function_arguments), the stand-in must match exactly.
CITUS_13_2_ARGUMENTS = {
    "citus_add_node": "nodename text, nodeport integer, groupid integer DEFAULT '-1'::integer, "
    "noderole noderole DEFAULT 'primary'::noderole, nodecluster name DEFAULT 'default'::name",
    "citus_update_node": "node_id integer, new_node_name text, new_node_port integer, "
    "force boolean DEFAULT false, lock_cooldown integer DEFAULT 10000",
    "citus_set_coordinator_host": "host text, port integer DEFAULT (current_setting('port'::text))::integer, "
    "node_role noderole DEFAULT 'primary'::noderole, node_cluster name DEFAULT 'default'::name",
    "citus_set_node_property": "nodename text, nodeport integer, property text, value boolean",
    "citus_remove_node": "nodename text, nodeport integer",
    "citus_get_active_worker_nodes": "OUT node_name text, OUT node_port bigint",
    "create_distributed_table": "table_name regclass, distribution_column text, "
    "distribution_type citus.distribution_type DEFAULT 'hash'::citus.distribution_type, "
    "colocate_with text DEFAULT 'default'::text, shard_count integer DEFAULT NULL::integer",
}


@dataclass(frozen=True)
class StandinServer:
    """A throwaway PostgreSQL running from a private tree with the stand-in preloaded."""

    tree: Path
    bindir: Path
    port: int
    log_path: Path

    def connect(self, dbname: str = "postgres") -> psycopg2.extensions.connection:
        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, connect_timeout=5
        )
        connection.autocommit = True
        return connection


@pytest.fixture(scope="module")
def standin_server() -> Iterator[StandinServer]:
    with server_base("patroni-citus-standin-") as base:
        tree = base / "tree"
        bindir = pgtree.install_standin(tree, source_bindir())
        with running_server(bindir, base, "-c shared_preload_libraries=citus") as server:
            yield StandinServer(tree, bindir, server.port, server.log_path)


_database_numbers = itertools.count()


@pytest.fixture
def citus_db(standin_server: StandinServer) -> Iterator[psycopg2.extensions.connection]:
    """A fresh database with the stand-in extension: pg_dist_node starts empty for every test."""
    name = f"standin_{os.getpid()}_{next(_database_numbers)}"
    admin = standin_server.connect()
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        connection = standin_server.connect(name)
        try:
            run(connection, "CREATE EXTENSION citus")
            yield connection
        finally:
            connection.close()
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def run(connection: psycopg2.extensions.connection, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def scalar(connection: psycopg2.extensions.connection, sql: str, params: Any = None) -> Any:
    return run(connection, sql, params)[0][0]


def node_row(connection: psycopg2.extensions.connection, nodeid: int) -> tuple[Any, ...]:
    (row,) = [row for row in run(connection, NODES_QUERY) if row[0] == nodeid]
    return row


def citus_error(connection: psycopg2.extensions.connection, sql: str, params: Any = None) -> psycopg2.Error:
    with pytest.raises(psycopg2.Error) as caught:
        run(connection, sql, params)
    return caught.value


def add_coordinator(connection: psycopg2.extensions.connection) -> None:
    run(connection, "SELECT citus_set_coordinator_host(%s, %s)", COORDINATOR)


def add_worker(connection: psycopg2.extensions.connection, node: tuple[str, int], group: int) -> int:
    return int(scalar(connection, "SELECT citus_add_node(%s, %s, groupid => %s)", (*node, group)))


# --- the installed tree and server -----------------------------------------------------------


@needs_standin
def test_private_tree_is_labelled_and_loads_the_library(
    standin_server: StandinServer, citus_db: psycopg2.extensions.connection
) -> None:
    assert pgtree.is_standin(standin_server.bindir)
    assert not pgtree.citus_available(standin_server.bindir)
    assert not pgtree.is_standin(source_bindir()), "the system tree must never receive the stand-in"
    assert (
        "citus stand-in loaded (patroni-citus test double, not real Citus)"
        in standin_server.log_path.read_text()
    )
    assert scalar(citus_db, "SHOW shared_preload_libraries") == "citus"
    version = scalar(citus_db, "SELECT citus_version()")
    assert version.startswith("Citus 13.2.2 ") and "stand-in" in version and "NOT real Citus" in version
    comment = scalar(citus_db, "SELECT comment FROM pg_available_extensions WHERE name = 'citus'")
    assert "NOT Citus" in comment


@needs_standin
def test_install_is_idempotent(standin_server: StandinServer) -> None:
    started = time.monotonic()
    assert pgtree.install_standin(standin_server.tree, source_bindir()) == standin_server.bindir
    assert time.monotonic() - started < 1, "a complete install must be reused, not copied again"


@needs_standin
def test_signatures_match_citus_13_2(citus_db: psycopg2.extensions.connection) -> None:
    rows = run(
        citus_db,
        "SELECT p.proname, pg_get_function_arguments(p.oid) FROM pg_proc p "
        "WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY(%s)",
        (list(CITUS_13_2_ARGUMENTS),),
    )
    assert dict(rows) == CITUS_13_2_ARGUMENTS
    columns = run(
        citus_db,
        "SELECT attname FROM pg_attribute WHERE attrelid = 'pg_dist_node'::regclass AND attnum > 0 "
        "ORDER BY attnum",
    )
    assert [name for (name,) in columns] == [
        "nodeid", "groupid", "nodename", "nodeport", "noderack", "hasmetadata", "isactive", "noderole",
        "nodecluster", "metadatasynced", "shouldhaveshards", "nodeisclone", "nodeprimarynodeid",
    ]  # fmt: skip
    assert run(citus_db, "SELECT groupid FROM pg_dist_local_group") == [(0,)]


# --- citus_set_coordinator_host --------------------------------------------------------------


@needs_standin
def test_set_coordinator_host_inserts_then_moves_the_same_row(
    citus_db: psycopg2.extensions.connection,
) -> None:
    add_coordinator(citus_db)
    (nodeid,) = run(citus_db, "SELECT nodeid FROM pg_dist_node")[0]
    assert node_row(citus_db, nodeid) == (nodeid, 0, *COORDINATOR, True, True, "primary", True, False)
    run(citus_db, "SELECT citus_set_coordinator_host('127.0.0.1', 6699)")
    run(citus_db, "SELECT citus_set_coordinator_host('coordinator-b')")  # port defaults to the server's
    server_port = int(scalar(citus_db, "SHOW port"))
    assert node_row(citus_db, nodeid) == (
        nodeid,
        0,
        "coordinator-b",
        server_port,
        True,
        True,
        "primary",
        True,
        False,
    )
    assert scalar(citus_db, "SELECT count(*) FROM pg_dist_node") == 1
    assert scalar(citus_db, "SELECT last_value FROM pg_dist_node_nodeid_seq") == 1


@needs_standin
def test_set_coordinator_host_cannot_take_a_workers_address(citus_db: psycopg2.extensions.connection) -> None:
    add_coordinator(citus_db)
    add_worker(citus_db, WORKER_1, 1)
    error = citus_error(citus_db, "SELECT citus_set_coordinator_host(%s, %s)", WORKER_1)
    assert error.pgcode == "23505"
    assert error.diag.constraint_name == "pg_dist_node_nodename_nodeport_key"


# --- citus_add_node ---------------------------------------------------------------------------


@needs_standin
def test_add_node_is_idempotent_per_address(citus_db: psycopg2.extensions.connection) -> None:
    add_coordinator(citus_db)
    nodeid = add_worker(citus_db, WORKER_1, 1)
    assert node_row(citus_db, nodeid) == (nodeid, 1, *WORKER_1, True, True, "primary", True, True)
    assert add_worker(citus_db, WORKER_1, 1) == nodeid
    assert scalar(citus_db, "SELECT citus_add_node(%s, %s)", WORKER_1) == nodeid
    assert add_worker(citus_db, WORKER_1, 7) == nodeid, "a known address returns its row whatever the group"
    assert scalar(citus_db, "SELECT count(*) FROM pg_dist_node") == 2


@needs_standin
def test_add_node_allocates_a_group_when_none_is_given(citus_db: psycopg2.extensions.connection) -> None:
    add_coordinator(citus_db)
    first = scalar(citus_db, "SELECT citus_add_node(%s, %s)", WORKER_1)
    second = scalar(citus_db, "SELECT citus_add_node(%s, %s)", WORKER_2)
    assert [node_row(citus_db, nodeid)[1] for nodeid in (first, second)] == [1, 2]


@needs_standin
def test_second_primary_in_a_group_is_refused(citus_db: psycopg2.extensions.connection) -> None:
    add_coordinator(citus_db)
    add_worker(citus_db, WORKER_1, 1)
    error = citus_error(citus_db, "SELECT citus_add_node(%s, %s, groupid => 1)", WORKER_2)
    assert (error.pgcode, error.diag.message_primary) == ("XX000", "group 1 already has a primary node")
    error = citus_error(citus_db, "SELECT citus_add_node('10.0.0.9', 5432, groupid => 0)")
    assert error.diag.message_primary == "group 0 already has a primary node"
    secondary = scalar(
        citus_db, "SELECT citus_add_node(%s, %s, groupid => 1, noderole => 'secondary')", WORKER_2
    )
    assert node_row(citus_db, secondary) == (secondary, 1, *WORKER_2, False, True, "secondary", False, True)


@needs_standin
def test_add_node_refuses_workers_while_the_coordinator_is_localhost(
    citus_db: psycopg2.extensions.connection,
) -> None:
    run(citus_db, "SELECT citus_set_coordinator_host('localhost', 6601)")
    error = citus_error(citus_db, "SELECT citus_add_node(%s, %s, groupid => 1)", WORKER_1)
    assert (
        error.diag.message_primary
        == "cannot add a worker node when the coordinator hostname is set to localhost"
    )
    assert error.diag.message_hint == (
        "Use SELECT citus_set_coordinator_host('<hostname>') to configure the coordinator hostname"
    )


@needs_standin
def test_worker_side_metadata_calls_are_refused(citus_db: psycopg2.extensions.connection) -> None:
    add_coordinator(citus_db)
    nodeid = add_worker(citus_db, WORKER_1, 1)
    run(citus_db, "UPDATE pg_dist_local_group SET groupid = 1")  # what metadata sync does on a worker
    for call in (
        "SELECT citus_add_node('127.0.0.1', 6603, groupid => 2)",
        "SELECT citus_add_node('127.0.0.1', 6602, groupid => 1)",
        "SELECT citus_set_node_property('127.0.0.1', 6602, 'shouldhaveshards', false)",
        "SELECT citus_remove_node('127.0.0.1', 6602)",
    ):
        error = citus_error(citus_db, call)
        assert (error.pgcode, error.diag.message_primary) == (
            "XX000",
            "operation is not allowed on this node",
        ), call
        assert error.diag.message_hint == "Connect to the coordinator and run it again."
    # Citus 13.2.2 lets citus_update_node rewrite a worker's local copy: so does the stand-in
    run(citus_db, "SELECT citus_update_node(%s, '127.0.0.1', 6603)", (nodeid,))
    assert node_row(citus_db, nodeid)[2:4] == ("127.0.0.1", 6603)


# --- citus_update_node ------------------------------------------------------------------------


@needs_standin
def test_update_node_moves_the_row_and_unsyncs_every_worker(citus_db: psycopg2.extensions.connection) -> None:
    add_coordinator(citus_db)
    first = add_worker(citus_db, WORKER_1, 1)
    second = add_worker(citus_db, WORKER_2, 2)
    run(citus_db, "SELECT citus_update_node(%s, '127.0.0.2', 6612)", (first,))
    assert node_row(citus_db, first) == (first, 1, "127.0.0.2", 6612, True, True, "primary", False, True)
    assert node_row(citus_db, second)[7] is False, (
        "Citus marks every metadata worker stale, not only the moved one"
    )
    assert run(citus_db, "SELECT metadatasynced FROM pg_dist_node WHERE groupid = 0") == [(True,)]

    # until the resync, Citus refuses metadata changes that must reach the workers
    error = citus_error(
        citus_db, "SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', false)", WORKER_2
    )
    assert (error.pgcode, error.diag.message_primary) == (
        "55000",
        "127.0.0.2:6612 is a metadata node, but is out of sync",
    )
    assert (
        error.diag.message_hint == "If the node is up, wait until metadata gets synced to it and try again."
    )
    assert citus_error(citus_db, "SELECT citus_set_coordinator_host(%s, %s)", COORDINATOR).pgcode == "55000"
    run(citus_db, "SELECT citus_update_node(%s, '127.0.0.1', 6612)", (first,))  # moves stay allowed

    assert scalar(citus_db, "SELECT citus_standin_mark_synced()") == 2
    assert run(citus_db, "SELECT bool_and(metadatasynced) FROM pg_dist_node") == [(True,)]
    run(citus_db, "SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', false)", WORKER_2)


@needs_standin
def test_update_node_resync_happens_on_its_own_after_a_second(
    citus_db: psycopg2.extensions.connection,
) -> None:
    add_coordinator(citus_db)
    nodeid = add_worker(citus_db, WORKER_1, 1)
    # the same worker under another name: real Citus resyncs it within about a second
    run(citus_db, "SELECT citus_update_node(%s, 'localhost', %s)", (nodeid, WORKER_1[1]))
    time.sleep(1.5)
    run(citus_db, "SELECT citus_set_coordinator_host(%s, %s)", COORDINATOR)
    assert node_row(citus_db, nodeid)[7] is True


@needs_standin
def test_update_node_refuses_taken_addresses_and_unknown_ids(
    citus_db: psycopg2.extensions.connection,
) -> None:
    add_coordinator(citus_db)
    nodeid = add_worker(citus_db, WORKER_1, 1)
    add_worker(citus_db, WORKER_2, 2)
    error = citus_error(citus_db, "SELECT citus_update_node(%s, %s, %s)", (nodeid, *WORKER_2))
    assert (error.pgcode, error.diag.message_primary) == (
        "55000",
        "there is already another node with the specified hostname and port",
    )
    error = citus_error(citus_db, "SELECT citus_update_node(999, '127.0.0.1', 6609)")
    assert (error.pgcode, error.diag.message_primary) == ("P0002", "node 999 not found")
    run(
        citus_db,
        "SELECT citus_update_node(%s, %s, %s, force => true, lock_cooldown => 2000)",
        (nodeid, *WORKER_1),
    )
    assert run(citus_db, "SELECT bool_and(metadatasynced) FROM pg_dist_node") == [(True,)], (
        "a no-op move unsyncs nothing"
    )


# --- the background resync (the stand-in's model of Citus's maintenance daemon) --------------

DAEMON_TYPES = ("patroni-citus stand-in metadata sync launcher", "patroni-citus stand-in metadata sync")
DAEMON_QUERY = (
    "SELECT backend_type, datname FROM pg_stat_activity "
    "WHERE backend_type LIKE 'patroni-citus stand-in%' ORDER BY backend_type"
)
ALL_SYNCED_QUERY = "SELECT bool_and(metadatasynced) FROM pg_dist_node"


def all_synced(connection: psycopg2.extensions.connection) -> bool:
    """A plain read, the way `patroni-citus status` looks: no stand-in function runs."""
    return bool(scalar(connection, ALL_SYNCED_QUERY))


def launcher_running(connection: psycopg2.extensions.connection) -> bool:
    return (DAEMON_TYPES[0], None) in run(connection, DAEMON_QUERY)


@contextmanager
def daemon_database(server: StandinServer, database: str) -> Iterator[None]:
    """Point citus_standin.database at database (ALTER SYSTEM + reload), and back afterwards."""
    admin = server.connect()
    try:
        run(admin, "ALTER SYSTEM SET citus_standin.database = %s", (database,))
        run(admin, "SELECT pg_reload_conf()")
        yield
    finally:
        run(admin, "ALTER SYSTEM RESET citus_standin.database")
        run(admin, "SELECT pg_reload_conf()")
        admin.close()


def unsync_two_workers(connection: psycopg2.extensions.connection) -> None:
    add_coordinator(connection)
    first = add_worker(connection, WORKER_1, 1)
    add_worker(connection, WORKER_2, 2)
    run(connection, "SELECT citus_update_node(%s, '127.0.0.2', 6612)", (first,))


@needs_standin
def test_daemon_resyncs_what_a_plain_select_sees(
    standin_server: StandinServer, citus_db: psycopg2.extensions.connection
) -> None:
    database = scalar(citus_db, "SELECT current_database()")
    with daemon_database(standin_server, database):  # a reload (SIGHUP) retargets the daemon
        wait_until(
            "the reload to reach the sessions",
            lambda: scalar(citus_db, "SHOW citus_standin.database") == database,
            timeout=5,
            interval=0.05,
        )
        unsync_two_workers(citus_db)
        unsynced = time.monotonic()
        assert run(citus_db, "SELECT metadatasynced FROM pg_dist_node ORDER BY nodeid") == [
            (True,),
            (False,),
            (False,),
        ]
        wait_until(
            "the stand-in daemon to resync the workers",
            lambda: all_synced(citus_db),
            timeout=5,
            interval=0.1,
            explain=lambda: repr(run(citus_db, NODES_QUERY)),
        )
        assert time.monotonic() - unsynced > 0.5, "like Citus, the resync comes after the commit, not in it"
    assert (
        f'patroni-citus stand-in marked 2 metadata worker(s) synced in database "{database}"'
        in standin_server.log_path.read_text()
    )
    run(citus_db, "SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', false)", WORKER_2)


@needs_standin
def test_daemon_waits_quietly_for_its_database_and_never_blocks_drop_database(
    standin_server: StandinServer,
) -> None:
    admin = standin_server.connect()
    try:
        # the launcher holds no database open; until now there was no database "citus" at all
        wait_until("the stand-in launcher", lambda: launcher_running(admin), timeout=10)
        log = standin_server.log_path.read_text()
        assert "patroni-citus stand-in metadata sync started" in log
        assert 'database "citus" does not exist' not in log
        assert "stand-in metadata resync in database" not in log, "no failed resync may be logged"
        assert f'"{DAEMON_TYPES[0]}" (PID' not in log, "the launcher must never have exited"
        assert scalar(admin, "SHOW citus_standin.database") == "citus"

        run(admin, "CREATE DATABASE citus")
        connection = standin_server.connect("citus")
        try:
            run(connection, "CREATE EXTENSION citus")
            unsync_two_workers(connection)
            wait_until(
                "the resync in database citus", lambda: all_synced(connection), timeout=5, interval=0.1
            )
        finally:
            connection.close()
        started = time.monotonic()
        run(admin, "DROP DATABASE citus")  # no FORCE: a session held open would make this fail
        assert time.monotonic() - started < 3
    finally:
        run(admin, "DROP DATABASE IF EXISTS citus WITH (FORCE)")
        admin.close()


@needs_standin
def test_daemon_runs_on_primaries_only_and_stops_with_the_server(
    standin_server: StandinServer, citus_db: psycopg2.extensions.connection
) -> None:
    """A standby gets no daemon; promoted, it resyncs; a fast stop is prompt; LOAD starts none."""
    database = scalar(citus_db, "SELECT current_database()")
    unsync_two_workers(citus_db)  # stays unsynced here: this server's daemon looks at "citus"
    base = Path(tempfile.mkdtemp(prefix="patroni-citus-standin-replica-"))
    os.chmod(base, 0o755)  # noqa: S103 - the postgres OS user works in here
    data_dir, run_dir = base / "data", base / "run"
    bindir = standin_server.bindir
    try:
        give_to_server_user(data_dir)
        data_dir.chmod(0o700)
        give_to_server_user(run_dir)
        source = ["-h", "127.0.0.1", "-p", str(standin_server.port), "-U", "postgres"]
        as_server_user(
            [str(bindir / "pg_basebackup"), *source, "-D", str(data_dir), "-R", "-c", "fast"], base
        )
        port = free_port()
        settings = f"-c shared_preload_libraries=citus -c citus_standin.database={database}"
        log_path = start_server(bindir, data_dir, run_dir, port, settings)
        replica = StandinServer(standin_server.tree, bindir, port, log_path)
        connection = replica.connect(database)
        try:
            assert scalar(connection, "SELECT pg_is_in_recovery()") is True
            time.sleep(2)  # a daemon would have started and resynced by now
            assert run(connection, DAEMON_QUERY) == [], "a standby must not run the daemon"
            assert not all_synced(connection)

            as_server_user([str(bindir / "pg_ctl"), "-D", str(data_dir), "-w", "promote"], base)
            wait_until("the promoted server's daemon to resync", lambda: all_synced(connection), timeout=8)
            assert launcher_running(connection)
        finally:
            connection.close()

        started = time.monotonic()
        stop_server(bindir, data_dir)
        assert time.monotonic() - started < 5, "pg_ctl stop -m fast must not wait for the daemon"
        assert "database system is shut down" in log_path.read_text()
        assert not processes_mentioning(str(base))

        # not preloaded: loading the library defines the setting but starts no daemon
        start_server(bindir, data_dir, run_dir, port, "-c shared_preload_libraries=''")
        connection = replica.connect(database)
        try:
            run(connection, "LOAD 'citus'")
            assert scalar(connection, "SHOW citus_standin.database") == "citus"
            time.sleep(1.5)
            assert run(connection, DAEMON_QUERY) == []
        finally:
            connection.close()
        stop_server(bindir, data_dir)
    finally:
        if (data_dir / "postmaster.pid").exists():
            stop_server(bindir, data_dir)
        leftovers = processes_mentioning(str(base))
        shutil.rmtree(base, ignore_errors=True)
        assert not leftovers, f"processes left behind by the replica: {leftovers}"


# --- citus_set_node_property, citus_remove_node, citus_get_active_worker_nodes --------------


@needs_standin
def test_set_node_property_only_knows_shouldhaveshards(citus_db: psycopg2.extensions.connection) -> None:
    add_coordinator(citus_db)
    run(citus_db, "SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', true)", COORDINATOR)
    assert run(citus_db, "SELECT shouldhaveshards FROM pg_dist_node") == [(True,)]
    error = citus_error(citus_db, "SELECT citus_set_node_property(%s, %s, 'isactive', false)", COORDINATOR)
    assert error.diag.message_primary == "only the 'shouldhaveshards' property can be set using this function"
    error = citus_error(
        citus_db, "SELECT citus_set_node_property('127.0.0.1', 6655, 'shouldhaveshards', true)"
    )
    assert error.diag.message_primary == 'node at "127.0.0.1:6655" does not exist'


@needs_standin
def test_remove_node_and_active_worker_list(citus_db: psycopg2.extensions.connection) -> None:
    add_coordinator(citus_db)
    add_worker(citus_db, WORKER_1, 1)
    add_worker(citus_db, WORKER_2, 2)
    run(citus_db, "SELECT citus_add_node('127.0.0.1', 6604, groupid => 1, noderole => 'secondary')")
    assert run(citus_db, "SELECT * FROM citus_get_active_worker_nodes()") == [WORKER_1, WORKER_2]
    run(citus_db, "SELECT citus_remove_node(%s, %s)", WORKER_1)
    assert run(citus_db, "SELECT * FROM citus_get_active_worker_nodes()") == [WORKER_2]
    error = citus_error(citus_db, "SELECT citus_remove_node(%s, %s)", WORKER_1)
    assert error.diag.message_primary == 'node at "127.0.0.1:6602" does not exist'


# --- create_distributed_table -----------------------------------------------------------------


@needs_standin
def test_create_distributed_table_needs_a_node_that_takes_shards(
    citus_db: psycopg2.extensions.connection,
) -> None:
    add_coordinator(citus_db)  # the coordinator joins with shouldhaveshards = false
    run(citus_db, "CREATE TABLE events (id bigint PRIMARY KEY, payload text)")
    error = citus_error(citus_db, "SELECT create_distributed_table('events', 'id')")
    assert (error.pgcode, error.diag.message_primary) == (
        "22023",
        "replication_factor (1) exceeds number of worker nodes (0)",
    )
    assert error.diag.message_hint == "Add more worker nodes or try again with a lower replication factor."

    run(citus_db, "SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', true)", COORDINATOR)
    run(citus_db, "SELECT create_distributed_table('events', 'id')")
    assert run(citus_db, "SELECT logicalrelid::text, partmethod FROM pg_dist_partition") == [("events", "h")]
    run(citus_db, "INSERT INTO events SELECT g, 'e' || g FROM generate_series(1, 10) g")
    assert scalar(citus_db, "SELECT count(*) FROM events") == 10, "the stand-in keeps the data local"
    error = citus_error(citus_db, "SELECT create_distributed_table('events', 'id')")
    assert error.diag.message_primary == 'table "events" is already distributed'


@needs_standin
def test_create_distributed_table_counts_workers(citus_db: psycopg2.extensions.connection) -> None:
    add_coordinator(citus_db)
    add_worker(citus_db, WORKER_1, 1)
    run(citus_db, "CREATE TABLE events (id bigint PRIMARY KEY)")
    error = citus_error(citus_db, "SELECT create_distributed_table('events', 'nope')")
    assert error.diag.message_primary == 'column "nope" of relation "events" does not exist'
    run(citus_db, "SELECT create_distributed_table('events', 'id')")


@needs_standin
def test_create_distributed_table_on_an_empty_cluster_registers_the_coordinator(
    citus_db: psycopg2.extensions.connection,
) -> None:
    run(citus_db, "CREATE TABLE events (id bigint PRIMARY KEY)")
    run(citus_db, "SELECT create_distributed_table('events', 'id')")
    server_port = int(scalar(citus_db, "SHOW port"))
    rows = run(citus_db, NODES_QUERY)
    assert [row[1:] for row in rows] == [(0, "localhost", server_port, True, True, "primary", True, True)]


# --- pgtree against fake trees (no server) ----------------------------------------------------


def _fake_bindir(root: Path, control_text: str | None) -> Path:
    """A bin directory whose pg_config answers --sharedir like a real one."""
    bindir, sharedir = root / "bin", root / "share"
    bindir.mkdir(parents=True)
    (sharedir / "extension").mkdir(parents=True)
    pg_config = bindir / "pg_config"
    pg_config.write_text(f'#!/bin/sh\n[ "$1" = --sharedir ] && echo "{sharedir}"\n')
    pg_config.chmod(0o755)
    if control_text is not None:
        (sharedir / "extension" / "citus.control").write_text(control_text)
    return bindir


@pytest.mark.parametrize(
    ("control_text", "available", "standin"),
    [
        (None, False, False),
        ("comment = 'Citus distributed database'\ndefault_version = '13.2-1'\n", True, False),
        ("# patroni-citus stand-in\ncomment = 'patroni-citus stand-in (NOT Citus)'\n", False, True),
    ],
    ids=["no-citus", "real-citus", "stand-in"],
)
def test_citus_available_and_is_standin_read_the_control_file(
    tmp_path: Path, control_text: str | None, available: bool, standin: bool
) -> None:
    bindir = _fake_bindir(tmp_path, control_text)
    assert pgtree.citus_available(bindir) is available
    assert pgtree.is_standin(bindir) is standin


def test_a_directory_without_pg_config_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(pgtree.PgTreeError, match="not a PostgreSQL bin directory"):
        pgtree.citus_available(tmp_path)


def test_install_without_gcc_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = source_bindir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    dest = tmp_path / "tree"
    with pytest.raises(pgtree.PgTreeError, match="apt-get install gcc"):
        pgtree.install_standin(dest, source)
    assert not dest.exists(), "nothing may be written before the prerequisites are known"
