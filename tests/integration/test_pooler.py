"""The client entry point: a real PgBouncer in front of the coordinator group (`local up --pooler`).

One formation (coordinator group + one worker group, two members each) with Debian's PgBouncer and
`patroni-citus pooler watch`. Through PgBouncer a writer and a reader (the drill's load, every
50 ms) must see no failed statement across `patroni-citus switchover --group 0`, only a pause;
with the stand-in, which distributes nothing, the pause and the repoint are what back that up, so
both are checked. A crash of the coordinator primary must repoint PgBouncer after the promotion;
a PgBouncer killed and started again must come back at the leader; and `status` must flag a
pooler that points at a replica.
"""

from __future__ import annotations

import json
import os
import pwd
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager

import psycopg2
import pytest
from formation_steps import leader_of, member_named, wait_ready_to_fail_over
from harness import LocalFormation, in_background, local_formation, run_cli, wait_until

from patroni_citus import drill, patroni_api, pgbouncer, switchover
from patroni_citus.errors import PatroniCitusError
from patroni_citus.local import pooler
from patroni_citus.planner import Endpoint
from patroni_citus.pooler_config import write_target

pytestmark = pytest.mark.integration
DATABASE = "citus"


@pytest.fixture(scope="module")
def formation() -> Iterator[LocalFormation]:
    with local_formation(workers=1, members=2, extra_args=("--pooler",)) as running:
        yield running


def pooled_dsn(formation: LocalFormation) -> str:
    return formation.layout.pooler_dsn(DATABASE, "postgres")


def pooler_target(formation: LocalFormation) -> pgbouncer.PooledDatabase | None:
    try:
        return pgbouncer.database(pooler.admin_login(formation.layout), DATABASE)
    except PatroniCitusError:
        return None


def leader_endpoint(formation: LocalFormation) -> Endpoint:
    leader = leader_of(formation, 0)
    assert leader is not None
    member = member_named(formation, leader)
    return Endpoint(member.host, member.postgres_port)


def points_at_leader(formation: LocalFormation) -> bool:
    seen = pooler_target(formation)
    return seen is not None and not seen.paused and seen.target == leader_endpoint(formation)


def served_by(formation: LocalFormation) -> int:
    """The port of the PostgreSQL that answers through PgBouncer."""
    with (
        closing(psycopg2.connect(pooled_dsn(formation), connect_timeout=5)) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT inet_server_port()")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def pooled_load(formation: LocalFormation) -> Iterator[drill.Load]:
    """The drill's writer and reader through PgBouncer, every 50 ms, on the coordinator's table."""
    drill.prepare_table(formation.layout.coordinator_dsn(DATABASE, "postgres"))
    start = int(time.time() * 1000) % 10**9 * 100
    load = drill.Load(pooled_dsn(formation), iter(range(start, start + 10**8)), interval=0.05, pooled=True)
    load.start()
    try:
        wait_until("the pooled load to get going", lambda: len(load.acknowledged) > 10, 30)
        yield load
        time.sleep(1.0)  # statements after the operation, too
    finally:
        load.stop()


def test_local_up_prints_both_entry_points_and_pgbouncer_serves_the_leader(formation: LocalFormation) -> None:
    assert points_at_leader(formation)
    assert served_by(formation) == leader_endpoint(formation).port
    status = json.loads(
        run_cli("status", "-c", str(formation.layout.member(0, 0).config_path), "--json").stdout
    )
    assert [p["points_at_leader"] for p in status["poolers"]] == [True]


def test_coordinator_switchover_through_pgbouncer_fails_no_statement(formation: LocalFormation) -> None:
    wait_ready_to_fail_over(formation, 0)
    old = leader_endpoint(formation)
    config = str(formation.layout.member(0, 0).config_path)
    with pooled_load(formation) as load:
        result = run_cli("switchover", "-c", config, "--group", "0", "--json", timeout=120)
    report = json.loads(result.stdout)
    judged = [o for o in load.outcomes if o.kind in ("write", "read")]
    failed = [o for o in judged if not o.ok]
    longest = max(o.finished - o.started for o in judged)
    print(
        f"longest pause through PgBouncer {longest:.2f}s (pooler paused {report['pause_s']}s), "
        f"{len(judged)} statements"
    )
    assert not failed, f"{len(failed)} of {len(judged)} statements failed through PgBouncer"
    # The stand-in distributes nothing: the pause and the repoint are what show the pooler did the work.
    assert report["pause_s"] is not None, "the coordinator's before_stop did not pause PgBouncer"
    new = leader_endpoint(formation)
    assert new != old
    assert points_at_leader(formation) and served_by(formation) == new.port
    with (
        closing(psycopg2.connect(pooled_dsn(formation), connect_timeout=5)) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(f"SELECT count(*) FROM {drill.TABLE} WHERE id = ANY(%s)", (load.acknowledged,))  # noqa: S608
        assert cursor.fetchone() == (len(load.acknowledged),), "an acknowledged write is missing"


def test_patronictl_switchover_of_the_coordinator_pauses_pgbouncer_too(formation: LocalFormation) -> None:
    """Patroni's own tool runs the same before_stop: clients through PgBouncer wait, not fail."""
    wait_ready_to_fail_over(formation, 0)
    old = leader_of(formation, 0)
    assert old is not None
    watch = switchover.PauseWatch([pooler.admin_login(formation.layout)], DATABASE)
    with pooled_load(formation) as load, in_background(watch.run, watch.stop):
        drill.patronictl(
            "callbacks",
            0,
            member_named(formation, old),
            "switchover",
            formation.layout.scope(0),
            "--leader",
            old,
        )
        wait_until("the switchover", lambda: leader_of(formation, 0) not in (None, old), 60)
        wait_until("PgBouncer at the new leader", lambda: points_at_leader(formation), 30, interval=0.05)
    judged = [o for o in load.outcomes if o.kind in ("write", "read")]
    failed = [o for o in judged if not o.ok]
    print(f"patronictl switchover: PgBouncer paused {watch.longest}s, {len(judged)} statements")
    assert not failed, f"{len(failed)} of {len(judged)} statements failed through PgBouncer"
    assert watch.longest is not None, "before_stop did not pause PgBouncer for patronictl's switchover"


def test_a_coordinator_crash_repoints_pgbouncer_after_the_promotion(formation: LocalFormation) -> None:
    wait_ready_to_fail_over(formation, 0)
    old = leader_of(formation, 0)
    assert old is not None
    survivor = next(m for m in formation.layout.group_members(0) if m.name != old)
    run_cli("local", "stop-member", "--base-dir", str(formation.base), old, "--kill")
    killed = time.monotonic()
    try:

        def promoted() -> bool:
            answer = patroni_api.member_status(survivor.rest_url, timeout=0.5)
            return answer.get("role") == "primary" and answer.get("state") == "running"

        wait_until("the survivor's promotion", promoted, 90, interval=0.05)
        promoted_at = time.monotonic()
        target = Endpoint(survivor.host, survivor.postgres_port)

        def repointed() -> bool:
            seen = pooler_target(formation)
            return seen is not None and seen.target == target

        wait_until("PgBouncer to point at the promoted member", repointed, 30, interval=0.02)
        repointed_at = time.monotonic()
        print(
            f"kill -9 -> promotion {promoted_at - killed:.2f}s; promotion -> PgBouncer repointed "
            f"{repointed_at - promoted_at:.3f}s"
        )
        wait_until(
            "a query through PgBouncer",
            lambda: served_by(formation) == survivor.postgres_port,
            30,
            interval=0.02,
        )
        print(f"promotion -> first query through PgBouncer {time.monotonic() - promoted_at:.3f}s")
    finally:
        run_cli("local", "start-member", "--base-dir", str(formation.base), old)
    wait_ready_to_fail_over(formation, 0)


def test_pgbouncer_killed_and_restarted_comes_back_at_the_leader(formation: LocalFormation) -> None:
    """Killed with -9, then the coordinator switches over: restarted, it reads the watcher's file."""
    wait_ready_to_fail_over(formation, 0)
    base = str(formation.base)
    run_cli("local", "stop-pooler", "--base-dir", base, "--only", "pgbouncer", "--kill")
    old = leader_of(formation, 0)
    assert old is not None
    candidate = next(m.name for m in formation.layout.group_members(0) if m.name != old)
    try:
        patroni_api.switchover(member_named(formation, old).rest_url, old, candidate, formation.rest_auth)
        wait_until("the coordinator switchover", lambda: leader_of(formation, 0) == candidate, 60)
    finally:
        run_cli("local", "start-pooler", "--base-dir", base)
    assert points_at_leader(formation)
    assert served_by(formation) == leader_endpoint(formation).port


def test_status_flags_a_pooler_pointed_at_a_replica(formation: LocalFormation) -> None:
    base = str(formation.base)
    config = str(formation.layout.member(0, 0).config_path)
    leader = leader_of(formation, 0)
    replica = next(m for m in formation.layout.group_members(0) if m.name != leader)
    run_cli("local", "stop-pooler", "--base-dir", base, "--only", "watcher")
    try:
        files = pooler.files(formation.layout)
        write_target(files, DATABASE, Endpoint(replica.host, replica.postgres_port))
        service = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if service is not None:  # PgBouncer runs as the service user and must read the file
            os.chown(files.databases, service.pw_uid, service.pw_gid)
        pgbouncer.reload_once(pooler.admin_login(formation.layout))
        result = run_cli("status", "-c", config, "--json", check=False)
        payload = json.loads(result.stdout)
        kinds = [p["kind"] for p in payload["problems"]]
        assert result.returncode == 1 and "pooler_stale" in kinds, payload["problems"]
        assert [p["port"] for p in payload["poolers"]] == [replica.postgres_port]
        table = run_cli("status", "-c", config, check=False).stdout
        assert "STALE" in table
    finally:
        run_cli("local", "start-pooler", "--base-dir", base)
    wait_until("the watcher to repoint PgBouncer", lambda: points_at_leader(formation), 30)
    assert run_cli("status", "-c", config, check=False).returncode == 0
