"""A planned worker switchover during which the coordinator holds client traffic instead of failing it.

While Patroni hands the group's leader role over, one coordinator transaction holds ACCESS EXCLUSIVE
locks on the distributed tables (locally only: Citus DDL propagation is off for it), so clients'
reads and writes queue on the coordinator rather than hit a primary that is going away. Once the
candidate is promoted, the same transaction points the group's pg_dist_node row at it and commits:
the queued statements then run against the new primary. Any failure rolls back and releases them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from patroni_citus import dcs, metadata, patroni_api
from patroni_citus.errors import PatroniCitusError
from patroni_citus.planner import Endpoint, GroupLeader, plan_group, primary_rows
from patroni_citus.topology import FormationAddress, formation_clusters


class SwitchoverError(PatroniCitusError):
    """The switchover could not be started or did not complete; nothing is left locked."""


@dataclass(frozen=True)
class SwitchoverResult:
    group: int
    old_leader: str
    new_leader: str
    pause_s: float
    """How long client statements on the group's tables were held on the coordinator."""


def _group_cluster(address: FormationAddress, group: int) -> dcs.Cluster:
    clusters = dcs.select_formation(formation_clusters(address), address.coordinator_hosts, address.name)
    candidates = clusters.get(group) or []
    if len(candidates) != 1:
        raise SwitchoverError(f"group {group}: found {len(candidates)} Patroni clusters, need exactly one")
    return candidates[0]


def _pick_candidate(cluster: dcs.Cluster, wanted: str | None) -> dcs.Member:
    replicas = [
        m for m in cluster.members if m.name != cluster.leader and m.state in ("running", "streaming")
    ]
    if wanted is not None:
        replicas = [m for m in replicas if m.name == wanted]
    if not replicas:
        which = f"{wanted!r} is not" if wanted else "no member is"
        raise SwitchoverError(f"{cluster.scope}: {which} a running replica that could take over")
    return min(replicas, key=lambda m: cluster.lag(m) or 0)


def _lock_distributed_tables(connection: metadata.Connection, lock_timeout_ms: int) -> int:
    """In the open transaction: queue every client statement on distributed tables behind us."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL citus.enable_ddl_propagation TO off")
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", (f"{lock_timeout_ms}ms",))
        cursor.execute(metadata.query("distributed_tables"))
        tables = cursor.fetchall()
        for schema, table in tables:
            cursor.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    sql.Identifier(str(schema), str(table))
                )
            )
    return len(tables)


def _wait_for_promotion(api_url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if patroni_api.member_status(api_url, timeout=1).get("role") in dcs.LEADER_ROLES:
                return
        except PatroniCitusError:
            pass
        time.sleep(0.05)
    raise SwitchoverError(f"the candidate at {api_url} was not promoted within {timeout:.0f}s")


def switchover(
    address: FormationAddress,
    group: int,
    candidate_name: str | None,
    report: Callable[[str], None],
    timeout: float = 60.0,
    lock_timeout_ms: int = 10000,
) -> SwitchoverResult:
    """Switch group's leader to candidate with client statements held, not failed, meanwhile."""
    if group == 0:
        raise SwitchoverError(
            "group 0 is the coordinator itself; use Patroni's switchover (patronictl) for it"
        )
    cluster = _group_cluster(address, group)
    old = cluster.leader_member
    if old is None or old.endpoint is None:
        raise SwitchoverError(f"{cluster.scope} has no leader to switch over from")
    candidate = _pick_candidate(cluster, candidate_name)
    if candidate.endpoint is None or not candidate.api_url:
        raise SwitchoverError(f"{candidate.name} publishes no connection or REST address in the DCS")
    candidate_rest = candidate.api_url.rsplit("/", 1)[0]
    target = Endpoint(candidate.endpoint.host, candidate.endpoint.port)
    # The group as it will be: the candidate leads, the old leader rejoins as one of its replicas.
    secondaries = cluster.secondary_endpoints(excluding=target) | (
        {old.endpoint} if old.reads_allowed else set()
    )
    after = GroupLeader(group, target, frozenset(secondaries))
    coordinator = metadata.connect(
        list(address.coordinator_endpoints), address.database, address.credentials, read_write=True
    )
    with closing(coordinator):
        coordinator.autocommit = False
        try:
            row = primary_rows(metadata.read_nodes(coordinator)).get(group)
            if row is None:
                raise SwitchoverError(f"group {group} has no pg_dist_node row; run reconcile first")
            held_since = time.monotonic()
            tables = _lock_distributed_tables(coordinator, lock_timeout_ms)
            report(f"holding client statements on {tables} distributed table(s) on the coordinator")
            # Move the rows first, inside the held transaction: the promoted member's own callback then
            # waits for this commit and finds nothing left to do, instead of racing it for locks.
            for change in plan_group(after, metadata.read_nodes(coordinator)):
                metadata.apply_change(coordinator, change)
            report(f"asking Patroni to switch {cluster.scope} from {old.name} to {candidate.name}")
            patroni_api.switchover(old.api_url.rsplit("/", 1)[0], old.name, candidate.name, address.rest_auth)
            _wait_for_promotion(candidate_rest, timeout)
            coordinator.commit()
            pause = time.monotonic() - held_since
        except psycopg2.Error as exc:
            coordinator.rollback()
            report("switchover incomplete: released the held statements; callbacks converge the metadata")
            reason = (exc.pgerror or str(exc)).strip().splitlines()[0]
            raise SwitchoverError(f"switchover of group {group} aborted: {reason}") from None
        except BaseException:
            coordinator.rollback()
            report("switchover incomplete: released the held statements; callbacks converge the metadata")
            raise
    report(f"group {group} now led by {candidate.name} at {target}; statements were held {pause:.2f}s")
    return SwitchoverResult(group, old.name, candidate.name, pause)
