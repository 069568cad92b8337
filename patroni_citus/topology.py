"""Read a formation as Patroni and Citus each see it: DCS clusters, every member, pg_dist_node.

I/O only; judging what is wrong is health.py's job. Members are queried in parallel so `status`
stays well under a second on a formation of several groups.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import TypeVar

from patroni_citus import dcs, metadata, pgbouncer
from patroni_citus.errors import PatroniCitusError, UnreachableError
from patroni_citus.patroni_dcs import DcsConfig
from patroni_citus.planner import Endpoint, GroupLeader, NodeRow
from patroni_citus.settings import Credentials

T = TypeVar("T")
#: The parts of one read, as read_formation times them (the exporter's read_duration_seconds).
READ_PARTS = ("dcs", "members", "metadata")


@dataclass(frozen=True)
class FormationAddress:
    """Where a formation lives, how to log in to its members, and whether it has workers at all."""

    dcs: DcsConfig
    credentials: Credentials
    database: str = "citus"
    coordinator_hosts: str | None = None
    name: str | None = None
    coordinator_endpoints: tuple[tuple[str, int], ...] = ()
    rest_auth: Credentials | None = None
    standalone: bool = False  # a coordinator without workers: it holds the shards itself


def formation_clusters(address: FormationAddress) -> dict[str, dcs.Cluster]:
    """The DCS clusters that may belong to the formation (all of the namespace's without a name)."""
    return dcs.read_clusters(address.dcs, address.name)


@dataclass(frozen=True)
class MemberSnapshot:
    """One member: Patroni's view (from the DCS) plus what PostgreSQL itself reports."""

    group: int
    scope: str
    name: str
    endpoint: Endpoint | None
    role: str
    state: str
    is_leader: bool
    lag: int | None
    pending_restart: bool
    preload: str | None = None
    citus_version: str | None = None
    error: str | None = None
    replay_lag_seconds: float | None = None  # a replica's, from PostgreSQL itself (None on a primary)


@dataclass(frozen=True)
class PoolerSnapshot:
    """A PgBouncer the coordinator members announce (tag citus_poolers), and where it sends the database."""

    address: str
    database: str
    target: Endpoint | None = None
    paused: bool = False
    error: str | None = None


@dataclass(frozen=True)
class FormationSnapshot:
    """Everything status judges, read at one moment."""

    scopes_by_group: dict[int, list[str]]
    leaders: list[GroupLeader]
    members: list[MemberSnapshot]
    dcs_preload: dict[str, str | None]
    rows: list[NodeRow] | None
    coordinator_error: str | None = None
    standalone: bool = False
    leaderless_groups: list[int] = field(default_factory=list)
    poolers: list[PoolerSnapshot] = field(default_factory=list)
    holds: dict[int, float] = field(default_factory=dict)  # group -> seconds its clients have waited


def _member_facts(snapshot: MemberSnapshot, credentials: Credentials, database: str) -> MemberSnapshot:
    if snapshot.endpoint is None:
        return snapshot
    endpoint = [(snapshot.endpoint.host, snapshot.endpoint.port)]
    try:
        try:
            connection = metadata.connect(endpoint, database, credentials, connect_timeout=2)
        except UnreachableError:
            connection = metadata.connect(endpoint, "postgres", credentials, connect_timeout=2)
        with closing(connection):
            preload, _in_recovery, version, replay_lag = metadata.member_facts(connection)
    except PatroniCitusError as exc:
        return replace(snapshot, error=str(exc))
    return replace(snapshot, preload=preload, citus_version=version, replay_lag_seconds=replay_lag)


def _pooler_facts(
    address: str, login: pgbouncer.PoolerLogin | None, problem: str | None, database: str
) -> PoolerSnapshot:
    if login is None:
        return PoolerSnapshot(address, database, error=problem)
    try:
        seen = pgbouncer.database(login, database)
    except PatroniCitusError as exc:
        return PoolerSnapshot(address, database, error=str(exc))
    if seen is None:
        return PoolerSnapshot(address, database, error=f"serves no database {database}")
    return PoolerSnapshot(address, database, seen.target, seen.paused)


def _announced_poolers(
    clusters: Sequence[dcs.Cluster],
) -> dict[str, tuple[pgbouncer.PoolerLogin | None, str | None]]:
    """Every pooler the coordinator group's members name, with its login (or why there is none)."""
    found: dict[str, tuple[pgbouncer.PoolerLogin | None, str | None]] = {}
    for cluster in clusters:
        for member in cluster.members:
            try:
                logins = pgbouncer.tag_logins(member.tags)
            except PatroniCitusError as exc:
                for entry in str(member.tags.get("citus_poolers") or "").split(","):
                    found.setdefault(entry.strip(), (None, f"no admin login: {exc}"))
                continue
            for login in logins:
                found[str(login)] = (login, None)
    return found


def _coordinator_rows(
    address: FormationAddress, leaders: Sequence[GroupLeader]
) -> tuple[list[NodeRow] | None, dict[int, float], str | None]:
    """pg_dist_node and the holds open on the coordinator's primary, or why they cannot be read."""
    coordinator = next((leader for leader in leaders if leader.group == 0), None)
    endpoints = list(address.coordinator_endpoints)
    if coordinator is not None:
        endpoints.insert(0, (coordinator.endpoint.host, coordinator.endpoint.port))
    if not endpoints:
        return None, {}, "the coordinator group (0) has no leader and no coordinator host is configured"
    try:
        with closing(
            metadata.connect(endpoints, address.database, address.credentials, read_write=True)
        ) as conn:
            return metadata.read_nodes(conn), metadata.open_holds(conn), None
    except PatroniCitusError as exc:
        return None, {}, str(exc)


def _timed(timings: dict[str, float] | None, part: str, action: Callable[[], T]) -> T:
    """Run action, adding its wall time to timings[part] (the read's cost per part, for the exporter)."""
    started = time.perf_counter()
    try:
        return action()
    finally:
        if timings is not None:
            timings[part] = timings.get(part, 0.0) + time.perf_counter() - started


def read_formation(address: FormationAddress, timings: dict[str, float] | None = None) -> FormationSnapshot:
    """Read the DCS, every member and the coordinator's pg_dist_node; raises only when the DCS is down.

    timings, when given, receives the seconds each of READ_PARTS took (members and metadata overlap).
    """
    clusters = _timed(timings, "dcs", lambda: formation_clusters(address))
    selected = dcs.select_formation(clusters, coordinator_hosts=address.coordinator_hosts, name=address.name)
    members: list[MemberSnapshot] = []
    leaders: list[GroupLeader] = []
    dcs_preload: dict[str, str | None] = {}
    leaderless: list[int] = []
    for group, group_clusters in selected.items():
        group_has_leader = False
        for cluster in group_clusters:
            parameters = (cluster.config.get("postgresql") or {}).get("parameters") or {}
            preload = parameters.get("shared_preload_libraries")
            if cluster.builtin_group is None:  # Patroni's built-in mode adds citus itself at start
                dcs_preload[cluster.scope] = None if preload is None else str(preload)
            leader = cluster.group_leader(group) if len(group_clusters) == 1 else None
            if leader is not None:
                leaders.append(leader)
                group_has_leader = True
            members.extend(
                MemberSnapshot(
                    group=group,
                    scope=cluster.scope,
                    name=member.name,
                    endpoint=member.endpoint,
                    role=member.role,
                    state=member.state,
                    is_leader=member.name == cluster.leader,
                    lag=cluster.lag(member),
                    pending_restart=member.pending_restart,
                )
                for member in cluster.members
            )
        if not group_has_leader:
            leaderless.append(group)
    announced = _announced_poolers(selected.get(0, []))
    with ThreadPoolExecutor(max_workers=min(16, len(members) + len(announced) + 1)) as pool:
        rows_future = pool.submit(_timed, timings, "metadata", lambda: _coordinator_rows(address, leaders))
        facts = pool.map(lambda m: _member_facts(m, address.credentials, address.database), members)
        pooler_future = pool.map(
            lambda item: _pooler_facts(item[0], item[1][0], item[1][1], address.database),
            sorted(announced.items()),
        )
        members = _timed(timings, "members", lambda: list(facts))
        rows, holds, coordinator_error = rows_future.result()
        poolers = list(pooler_future)
    return FormationSnapshot(
        scopes_by_group={
            group: [c.scope for c in group_clusters] for group, group_clusters in selected.items()
        },
        leaders=leaders,
        members=members,
        dcs_preload=dcs_preload,
        rows=rows,
        coordinator_error=coordinator_error,
        standalone=address.standalone,
        leaderless_groups=leaderless,
        poolers=poolers,
        holds=holds,
    )


def read_rows(address: FormationAddress, leaders: Sequence[GroupLeader]) -> list[NodeRow] | None:
    """Only pg_dist_node again (used while waiting for a metadata resync)."""
    return _coordinator_rows(address, leaders)[0]
