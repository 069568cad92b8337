"""A real network partition: a worker primary cut off from etcd, the coordinator and its replica.

Every member runs in its own network namespace on a bridge (`local up --network netns`), so taking
one member's link down cuts all of its traffic, as a failed switch port would. Patroni must demote
the isolated primary, the other side must promote its synchronous standby, the coordinator must move
to the new primary and never point at the isolated one again (also after it rejoins), and no write
the coordinator acknowledged may be lost. Needs root for `ip netns`; CI requires it to run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg2
import pytest
from formation_steps import (
    coordinator_connection,
    leader_of,
    member_named,
    metadata_matches_leaders,
    wait_ready_to_fail_over,
)
from harness import LocalFormation, local_formation, require_netns, run_cli, wait_until
from write_load import (
    assert_no_acknowledged_write_lost,
    create_drill_table,
    failed_writes,
    last_write,
    wait_for_writes_after,
)

from patroni_citus import drill
from patroni_citus.local.layout import MemberLayout

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def formation() -> Iterator[LocalFormation]:
    require_netns()
    with local_formation(workers=1, members=2, extra_args=("--synchronous",), network="netns") as running:
        yield running


def in_recovery_over_socket(formation: LocalFormation, member: MemberLayout) -> bool:
    """Ask the member itself through its Unix socket, which no network cut reaches."""
    connection = psycopg2.connect(
        host=str(member.socket_dir),
        port=member.postgres_port,
        user="postgres",
        password=formation.password,
        dbname="postgres",
        connect_timeout=3,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery()")
            row = cursor.fetchone()
            return bool(row and row[0])
    finally:
        connection.close()


class RowSampler:
    """Reads group 1's primary rows on the coordinator every 200 ms while the drill runs."""

    def __init__(self, formation: LocalFormation) -> None:
        self.formation = formation
        self.samples: list[list[tuple[str, int]]] = []
        self.taken_at: list[float] = []  # time.monotonic() of each sample
        self.errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                connection = coordinator_connection(self.formation)
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(
                            "SELECT nodename, nodeport FROM pg_dist_node"
                            " WHERE groupid = 1 AND noderole = 'primary'"
                        )
                        self.samples.append([(str(host), int(port)) for host, port in cursor.fetchall()])
                        self.taken_at.append(time.monotonic())
                finally:
                    connection.close()
            except psycopg2.Error:
                self.errors += 1
            time.sleep(0.2)

    def __enter__(self) -> RowSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(15)


def test_distributed_table_for_the_write_load(formation: LocalFormation) -> None:
    create_drill_table(formation)


def test_isolated_worker_primary_is_replaced_and_never_pointed_at_again(
    formation: LocalFormation, writer: drill.Load
) -> None:
    wait_ready_to_fail_over(formation, 1)
    wait_until("writes through the coordinator", lambda: last_write(writer) > 0, 60)
    old_name = leader_of(formation, 1)
    assert old_name is not None
    old = member_named(formation, old_name)
    old_endpoint = (old.host, old.postgres_port)
    base = str(formation.base)
    with RowSampler(formation) as sampler:
        wait_until("a first sample of pg_dist_node", lambda: sampler.samples, 30)
        cut = time.monotonic()
        run_cli("local", "isolate", "--base-dir", base, old_name)
        try:
            wait_until(
                "the other side to promote and the coordinator to follow",
                lambda: (
                    leader_of(formation, 1) not in (None, old_name) and metadata_matches_leaders(formation)
                ),
                120,
            )
            wait_until(
                f"Patroni to demote the isolated {old_name}",
                lambda: in_recovery_over_socket(formation, old),
                150,
            )
            demoted_after = time.monotonic() - cut
            wait_for_writes_after(writer, cut)
            isolated = len(sampler.samples)
            wait_until("ten more samples while still isolated", lambda: len(sampler.samples) > isolated + 10)
        finally:
            run_cli("local", "heal", "--base-dir", base, old_name)
        wait_until(
            f"{old_name} to rejoin as a running replica",
            lambda: any(
                m["name"] == old_name and m["role"] == "replica" and m["state"] == "running"
                for m in formation.status()["members"]
            ),
            180,
        )
        config = str(formation.layout.member(0, 0).config_path)
        wait_until(
            "status to be healthy after the partition",
            lambda: run_cli("status", "-c", config, check=False).returncode == 0,
            90,
        )
        rejoined = len(sampler.samples)
        wait_until("ten samples after the rejoin", lambda: len(sampler.samples) > rejoined + 10)
    new_name = leader_of(formation, 1)
    assert new_name is not None and new_name != old_name
    new = member_named(formation, new_name)
    new_endpoint = (new.host, new.postgres_port)
    samples = sampler.samples
    assert all(len(sample) == 1 for sample in samples), [s for s in samples if len(s) != 1][:3]
    rows = [sample[0] for sample in samples]
    assert rows[0] == old_endpoint, f"the first sample is not the old primary: {rows[:3]}"
    moved = rows.index(new_endpoint)
    before, after = set(rows[:moved]), set(rows[moved:])
    assert before == {old_endpoint}, f"group 1 pointed elsewhere before the move: {before}"
    assert after == {new_endpoint}, (
        f"after the move the row pointed at {after}; the isolated was {old_endpoint}"
    )
    assert_no_acknowledged_write_lost(formation, writer)
    assert metadata_matches_leaders(formation)
    print(
        f"partition drill: coordinator re-pointed {sampler.taken_at[moved] - cut:.1f}s after the cut, "
        f"isolated primary seen read-only after {demoted_after:.1f}s; "
        f"{len(rows)} samples, {len(writer.acknowledged)} acknowledged writes (none lost), "
        f"{failed_writes(writer)} failed write attempts"
    )
