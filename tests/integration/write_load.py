"""The write load scenarios run through a fault: the drill's own Load (patroni_citus.drill), writes only.

One row every 50 ms through the coordinator (multi-host libpq, read-write) into the drill's
distributed table; every attempt is an outcome with timestamps, every acknowledged id is kept, so
a scenario can tell when writes worked again and that none it was told about went missing.
"""

from __future__ import annotations

import itertools
import time
from contextlib import closing

from formation_steps import coordinator_connection, metadata_matches_leaders
from harness import LocalFormation, wait_until

from patroni_citus import drill
from patroni_citus.drill import Load
from patroni_citus.local.layout import DATABASE, SUPERUSER


def coordinator_dsn(formation: LocalFormation) -> str:
    return formation.layout.coordinator_dsn(DATABASE, SUPERUSER)


def create_drill_table(formation: LocalFormation) -> None:
    """The distributed table the write load fills (drill.TABLE), once every group is registered."""
    wait_until("pg_dist_node to match every group's leader", lambda: metadata_matches_leaders(formation), 60)
    drill.prepare_table(coordinator_dsn(formation))


def write_load(formation: LocalFormation) -> Load:
    """Not started yet: start() and stop() it (the conftest `writer` fixture does both)."""
    first_id = 1_000_000 * int(time.time() % 1000) + 1
    return Load(coordinator_dsn(formation), itertools.count(first_id), only=("write",))


def failed_writes(load: Load) -> int:
    return sum(1 for o in load.outcomes if o.kind == "write" and not o.ok)


def last_write(load: Load) -> float:
    """time.monotonic() when the latest acknowledged write returned (0.0 before the first)."""
    return max((o.finished for o in load.outcomes if o.kind == "write" and o.ok), default=0.0)


def wait_for_writes_after(load: Load, moment: float) -> None:
    wait_until("a distributed write to succeed after the fault", lambda: last_write(load) > moment, 90)


def assert_no_acknowledged_write_lost(formation: LocalFormation, load: Load) -> None:
    """Stop the load (its last statements finish) and find every acknowledged id in the table."""
    load.stop()
    with closing(coordinator_connection(formation)) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {drill.TABLE} WHERE id = ANY(%s)", (load.acknowledged,))  # noqa: S608
        present = {row[0] for row in cursor.fetchall()}
    lost = sorted(set(load.acknowledged) - present)
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
