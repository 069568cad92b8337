"""Bring Citus in line with Patroni: preload config, extension, and pg_dist_node registration.

Every step is idempotent and safe to kill at any point (Patroni kills a running callback when the
next one starts); what a killed step left undone is redone by the next callback or `reconcile`.
Writes are fenced: a member writes metadata pointing at itself only while it is its group's leader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import closing
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from patroni_citus import dcs, metadata, patroni_api
from patroni_citus.dcs_config import preload_patch
from patroni_citus.errors import PatroniCitusError
from patroni_citus.member_config import MemberConfig
from patroni_citus.planner import Change, Endpoint, GroupLeader, by_group, plan, plan_group
from patroni_citus.topology import FormationAddress, formation_clusters

log = logging.getLogger("patroni_citus")
T = TypeVar("T")


class PromotionPendingError(PatroniCitusError):
    """Patroni reported this member primary but PostgreSQL has not left recovery yet."""


class NotLeaderError(PatroniCitusError):
    """This member is not (or no longer) its group's leader, so it must not write metadata."""


class StillConvergingError(PatroniCitusError):
    """A round left changes for the next one (adds and removes wait for a metadata resync)."""


class NotYetPublishedError(PatroniCitusError):
    """The DCS does not show this group's leader or this replica running yet (Patroni's next loop will)."""


def with_retries(what: str, action: Callable[[], T], timeout: float) -> T:
    """Run action until it succeeds or timeout seconds pass; exponential backoff with jitter."""

    def log_attempt(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0
        if isinstance(error, StillConvergingError):
            log.info("%s: %s; next round in %.1fs", what, error, pause)
        else:
            attempt = state.attempt_number
            log.warning("%s: attempt %d failed: %s; retrying in %.1fs", what, attempt, error, pause)

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        # Exponential backoff plus up to 1 s of jitter, spelled so tenacity 8 and 9.2+ (which deprecates
        # wait_exponential_jitter's `initial`) both accept it.
        wait=wait_exponential(multiplier=0.3, max=8) + wait_random(0, 1),
        retry=retry_if_exception_type(PatroniCitusError),
        before_sleep=log_attempt,
        reraise=True,
    )
    return retrying(action)


def own_endpoint(config: MemberConfig) -> Endpoint:
    return Endpoint(config.postgres_host, config.postgres_port)


def ensure_preload_in_dcs(config: MemberConfig) -> bool:
    """Put citus first in the DCS config through Patroni's PATCH /config; True if it changed it."""
    patch = preload_patch(patroni_api.dynamic_config(config.rest_url))
    if patch is None:
        log.info("shared_preload_libraries in the DCS config already starts with citus")
        return False
    patroni_api.patch_dynamic_config(config.rest_url, patch, config.rest_auth)
    wanted = patch["postgresql"]["parameters"]["shared_preload_libraries"]
    log.warning(
        "set shared_preload_libraries=%s in the DCS config; PostgreSQL restart pending on every member",
        wanted,
    )
    return True


def _local(config: MemberConfig, database: str) -> metadata.Connection:
    return metadata.connect([(config.postgres_host, config.postgres_port)], database, config.superuser)


def ensure_extension(config: MemberConfig) -> bool:
    """On a primary with citus loaded: create the database and extension; False if citus is not loaded.

    Only called where Patroni says this member is primary. Patroni 4 runs on_role_change right after
    `pg_ctl promote` without waiting, so a server still in recovery is a promotion in progress:
    raise a retryable error rather than give up (giving up left the row on the dead primary).
    """
    database = config.citus.database
    with closing(_local(config, "postgres")) as connection:
        if metadata.is_in_recovery(connection):
            raise PromotionPendingError(f"{config.name} is still in recovery; promotion in progress")
        if not metadata.citus_loaded(connection):
            log.warning("citus is not in shared_preload_libraries of the running server yet; restart pending")
            return False
        if metadata.ensure_database(connection, database):
            log.info("created database %s", database)
    with closing(_local(config, database)) as connection:
        metadata.ensure_extension(connection)
        # Citus does not sync pg_dist_authinfo to workers (seen on 13.2.2), and workers connect to
        # the coordinator and each other too (maintenance daemon, 2PC recovery): every group needs it.
        metadata.store_authinfo_quietly(connection, config.superuser)
        log.info("extension citus present in %s (%s)", database, metadata.citus_version(connection))
    return True


def leadership_refusal(name: str, scope: str, role: str, members: Sequence[dict[str, Any]]) -> str | None:
    """Why a member may not write metadata pointing at itself (None: it may), from Patroni's view:
    its own role (GET /patroni) and the cluster's members (GET /cluster).

    >>> leadership_refusal("a", "s", "primary", [{"name": "a", "role": "leader"}]) is None
    True
    >>> leadership_refusal("a", "s", "replica", [{"name": "a", "role": "leader"}])
    "a is replica, not its group's leader"
    >>> leadership_refusal("a", "s", "primary", [{"name": "b", "role": "leader"}])
    'the DCS names b the leader of s, not a'
    """
    if role not in dcs.LEADER_ROLES:
        return f"{name} is {role or 'unknown'}, not its group's leader"
    leader = next((m.get("name") for m in members if m.get("role") == "leader"), None)
    if leader != name:
        return f"the DCS names {leader or 'no member'} the leader of {scope}, not {name}"
    return None


def assert_leader(config: MemberConfig) -> None:
    """Fence: Patroni must see this member as primary and the DCS must name it the leader."""
    role = str(patroni_api.member_status(config.rest_url).get("role", ""))
    members = (
        [] if role not in dcs.LEADER_ROLES else patroni_api.cluster_status(config.rest_url).get("members")
    )
    refusal = leadership_refusal(
        config.name, config.scope, role, members if isinstance(members, list) else []
    )
    if refusal is not None:
        raise NotLeaderError(refusal)


def _coordinator(config: MemberConfig) -> metadata.Connection:
    """The coordinator group's current primary, found by libpq multi-host with read-write."""
    return metadata.connect(
        config.citus.coordinator_endpoints(), config.citus.database, config.superuser, read_write=True
    )


def apply_plan(
    connection: metadata.Connection, changes: Sequence[Change], fence: Callable[[Change], None]
) -> None:
    """Apply changes one group per transaction, checking the fence right before each write."""
    for group_changes in by_group(changes).values():
        metadata.apply_changes(connection, group_changes, fence)
        for change in group_changes:
            log.info("done: %s", change.describe())


def _converge_group(
    connection: metadata.Connection, leader: GroupLeader, fence: Callable[[Change], None], standalone: bool
) -> list[Change]:
    """Plan and apply one group; StillConvergingError when the next round has work left."""
    changes = plan_group(leader, metadata.read_nodes(connection), standalone)
    apply_plan(connection, changes, fence)
    left = plan_group(leader, metadata.read_nodes(connection), standalone) if changes else []
    if left:
        raise StillConvergingError(
            f"group {leader.group}: {'; '.join(c.describe() for c in left)} waits for the next round"
        )
    return changes


def _own_group(config: MemberConfig) -> dcs.Cluster | None:
    """This member's cluster as the DCS holds it; None (logged) when the DCS cannot be read now."""
    try:
        return dcs.read_cluster(config.dcs, config.scope)
    except PatroniCitusError as exc:
        log.warning("cannot read %s from the DCS (%s); leaving secondary rows as they are", config.scope, exc)
        return None


def register_self(config: MemberConfig) -> list[Change]:
    """Point this group's primary row at this member and its secondary rows at the group's replicas."""
    assert_leader(config)
    me = own_endpoint(config)
    connect = _local if config.citus.is_coordinator else lambda c, db: _coordinator(c)
    with closing(connect(config, config.citus.database)) as connection:
        cluster = _own_group(config)
        if cluster is not None:
            secondaries = cluster.secondary_endpoints(excluding=me)
        else:  # keep what is registered: a DCS hiccup must not drop every secondary row
            rows = metadata.read_nodes(connection)
            secondaries = frozenset(
                r.endpoint for r in rows if r.groupid == config.citus.group and r.noderole == "secondary"
            ) - {me}
        leader = GroupLeader(config.citus.group, me, secondaries)
        changes = _converge_group(
            connection, leader, lambda _change: assert_leader(config), config.citus.standalone
        )
        if not changes:
            log.info("pg_dist_node already matches group %d (primary %s)", leader.group, leader.endpoint)
    return changes


def _group_leader_from_dcs(config: MemberConfig) -> GroupLeader:
    """The group's wanted rows as the DCS shows them; retryable while Patroni has not published them."""
    cluster = dcs.read_cluster(config.dcs, config.scope)
    leader = cluster.group_leader(config.citus.group) if cluster is not None else None
    if leader is None:
        raise NotYetPublishedError(f"{config.scope} has no running leader in the DCS yet")
    return leader


def register_replica(config: MemberConfig, stopping: bool = False) -> list[Change]:
    """A replica's own secondary row: added once the DCS shows it running, removed when it stops."""
    me = own_endpoint(config)
    leader = _group_leader_from_dcs(config)
    if stopping:
        leader = GroupLeader(leader.group, leader.endpoint, leader.secondaries - {me})
    elif me not in leader.secondaries and config.citus.secondaries:
        raise NotYetPublishedError(f"the DCS does not show {config.name} as a running replica yet")

    def fence(_change: Change) -> None:
        if _group_leader_from_dcs(config).endpoint != leader.endpoint:
            raise NotLeaderError(f"{config.scope}'s leader changed; leaving its rows to the new leader")

    if config.citus.is_coordinator:
        endpoints = [(leader.endpoint.host, leader.endpoint.port)]
        connection = metadata.connect(endpoints, config.citus.database, config.superuser, read_write=True)
    else:
        connection = _coordinator(config)
    with closing(connection):
        return _converge_group(connection, leader, fence, config.citus.standalone)


def formation_leaders(clusters: dict[str, dcs.Cluster], address: FormationAddress) -> list[GroupLeader]:
    """Each group's running leader among the formation's clusters (ambiguous groups are skipped)."""
    leaders = []
    selected = dcs.select_formation(clusters, coordinator_hosts=address.coordinator_hosts, name=address.name)
    for group, group_clusters in selected.items():
        leader = group_clusters[0].group_leader(group) if len(group_clusters) == 1 else None
        if leader is not None:
            leaders.append(leader)
    return leaders


def preload_fixes(
    clusters: dict[str, dcs.Cluster], address: FormationAddress
) -> list[tuple[dcs.Cluster, str]]:
    """Clusters whose DCS config does not put citus first, with the REST API to fix each through."""
    fixes = []
    for group_clusters in dcs.select_formation(clusters, address.coordinator_hosts, address.name).values():
        for cluster in group_clusters:
            if cluster.builtin_group is not None or preload_patch(cluster.config) is None:
                continue
            member = cluster.leader_member or next(iter(cluster.members), None)
            if member is not None and member.api_url:
                fixes.append((cluster, member.api_url.rsplit("/", 1)[0]))
    return fixes


def reconcile_preload(address: FormationAddress, dry_run: bool) -> list[str]:
    """Put citus first in every group's DCS config (through Patroni's PATCH /config)."""
    done = []
    for cluster, rest_url in preload_fixes(formation_clusters(address), address):
        patch = preload_patch(cluster.config)
        assert patch is not None
        wanted = patch["postgresql"]["parameters"]["shared_preload_libraries"]
        if not dry_run:
            patroni_api.patch_dynamic_config(rest_url, patch, address.rest_auth)
        done.append(f"set shared_preload_libraries={wanted} in {cluster.scope}'s DCS config")
    return done


def reconcile(address: FormationAddress, dry_run: bool = False) -> list[Change]:
    """Plan (and unless dry_run apply) the pg_dist_node changes for every group, from the DCS."""
    clusters = formation_clusters(address)
    leaders = formation_leaders(clusters, address)
    endpoints = list(address.coordinator_endpoints)
    coordinator = next((leader for leader in leaders if leader.group == 0), None)
    if coordinator is not None:
        endpoints.insert(0, (coordinator.endpoint.host, coordinator.endpoint.port))
    with closing(
        metadata.connect(endpoints, address.database, address.credentials, read_write=True)
    ) as connection:
        changes = plan(leaders, metadata.read_nodes(connection), address.standalone)
        if not dry_run:
            apply_plan(connection, changes, lambda change: _assert_still_leader(address, leaders, change))
    return changes


def still_planned(planned: Sequence[GroupLeader], current: Sequence[GroupLeader], group: int) -> bool:
    """Whether group still has exactly the leader and secondaries its changes were planned for.

    >>> a, b = Endpoint("a", 1), Endpoint("b", 1)
    >>> still_planned([GroupLeader(1, a)], [GroupLeader(1, a)], 1)
    True
    >>> still_planned([GroupLeader(1, a)], [GroupLeader(1, b)], 1), still_planned([], [GroupLeader(1, a)], 1)
    (False, False)
    >>> still_planned([GroupLeader(1, a, frozenset({b}))], [GroupLeader(1, a)], 1)
    False
    """
    target = next((leader for leader in planned if leader.group == group), None)
    return target is not None and target in current


def _assert_still_leader(address: FormationAddress, planned: Sequence[GroupLeader], change: Change) -> None:
    """Fence for reconcile: the change's group must still have the leader and replicas it was planned for."""
    current = formation_leaders(formation_clusters(address), address)
    if not still_planned(planned, current, change.group):
        raise NotLeaderError(
            f"group {change.group} leader changed while reconciling; not applying: {change.describe()}"
        )


def member_address(config: MemberConfig) -> FormationAddress:
    """The formation a member belongs to: same DCS, same coordinator hosts, its superuser."""
    return FormationAddress(
        dcs=config.dcs,
        credentials=config.superuser,
        database=config.citus.database,
        coordinator_hosts=",".join(config.citus.coordinator_hosts),
        coordinator_endpoints=tuple(config.citus.coordinator_endpoints()),
        rest_auth=config.rest_auth,
        standalone=config.citus.standalone,
    )
