"""A formation as Patroni's DCS holds it: clusters, members, leaders, read through Patroni's own classes.

The callbacks of one member only know their own group; reconcile and the coordinator need every
group's leader, which only the DCS holds. Read-only: Patroni alone writes these keys. Any DCS
Patroni supports works (etcd3 with TLS and users, ZooKeeper, ...); patroni_dcs.py does the I/O.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from patroni_citus import patroni_dcs
from patroni_citus.patroni_dcs import DcsConfig
from patroni_citus.planner import Endpoint, GroupLeader

#: Patroni's names for a group's writable leader (master before Patroni 3); not standby_leader.
LEADER_ROLES = ("primary", "master")
#: Member states of a PostgreSQL that is up (Patroni 4 publishes "streaming" for a streaming replica).
RUNNING_STATES = ("running", "streaming")


@dataclass(frozen=True)
class Member:
    """One Patroni member as published in the DCS."""

    name: str
    role: str
    state: str
    endpoint: Endpoint | None
    api_url: str
    tags: dict[str, Any] = field(default_factory=dict)
    wal_position: int | None = None
    pending_restart: bool = False

    @property
    def reads_allowed(self) -> bool:
        """Tags allow Citus reads here: not ``noloadbalance`` (Patroni's "send no read traffic here",
        honoured by its built-in Citus mode too), not ``citus_secondary: false`` (CITUS_SECONDARIES).
        ``nofailover`` alone does not exclude a member: it may not be promoted, but can serve reads."""
        return not _tag_true(self.tags.get("noloadbalance"), default=False) and _tag_true(
            self.tags.get("citus_secondary"), default=True
        )


@dataclass(frozen=True)
class Cluster:
    """One Patroni cluster (one scope) in the DCS."""

    scope: str
    leader: str | None
    members: tuple[Member, ...]
    config: dict[str, Any]
    optime: int | None = None
    builtin_group: int | None = None

    @property
    def leader_member(self) -> Member | None:
        return next((m for m in self.members if m.name == self.leader), None)

    @property
    def running_leader(self) -> Member | None:
        """The group's running leader: the one definition status, reconcile and the callbacks share.

        The member holding the leader key, running as a writable primary, publishing where to reach it.
        """
        leader = self.leader_member
        if leader is None or leader.endpoint is None:
            return None
        return leader if leader.role in LEADER_ROLES and leader.state == "running" else None

    def serves_reads(self, member: Member) -> bool:
        """A running replica that should be a Citus secondary: not the leader, PostgreSQL up, reachable,
        and its tags allow reads (Member.reads_allowed)."""
        return (
            member.name != self.leader
            and member.role not in (*LEADER_ROLES, "standby_leader")
            and member.state in RUNNING_STATES
            and member.endpoint is not None
            and member.reads_allowed
        )

    def secondary_endpoints(self, excluding: Endpoint | None = None) -> frozenset[Endpoint]:
        """Where the group's Citus secondaries should be (see serves_reads)."""
        return frozenset(
            m.endpoint
            for m in self.members
            if m.endpoint is not None and m.endpoint != excluding and self.serves_reads(m)
        )

    def group_leader(self, group: int) -> GroupLeader | None:
        """The group's wanted pg_dist_node rows: its running leader, its replicas as secondaries."""
        leader = self.running_leader
        if leader is None or leader.endpoint is None:
            return None
        return GroupLeader(group, leader.endpoint, self.secondary_endpoints(excluding=leader.endpoint))

    def lag(self, member: Member) -> int | None:
        """Bytes a replica is behind the leader's last reported position (None when unknown)."""
        if member.name == self.leader or self.optime is None or member.wal_position is None:
            return None
        return max(0, self.optime - member.wal_position)

    @property
    def citus_group(self) -> int | None:
        """The Citus group: Patroni's built-in mode keys it in the path; ours announces it in tags."""
        if self.builtin_group is not None:
            return self.builtin_group
        for member in self.members:
            group = member.tags.get("citus_group")
            if isinstance(group, int) or (isinstance(group, str) and group.isdigit()):
                return int(group)
        return None


def _tag_true(value: Any, default: bool) -> bool:
    """A Patroni tag as a boolean (YAML gives true/false; the environment may give strings)."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


def _endpoint(conn_url: str) -> Endpoint | None:
    parsed = urlparse(conn_url)
    return Endpoint(parsed.hostname, parsed.port or 5432) if parsed.hostname else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def member_from_data(name: str, data: dict[str, Any]) -> Member:
    """Our Member from the JSON a Patroni member publishes under members/NAME."""
    return Member(
        name=name,
        role=str(data.get("role", "")),
        state=str(data.get("state", "")),
        endpoint=_endpoint(str(data.get("conn_url", ""))),
        api_url=str(data.get("api_url", "")),
        tags=dict(data.get("tags") or {}),
        wal_position=_int(data.get("xlog_location")),
        pending_restart=bool(data.get("pending_restart", False)),
    )


def cluster_from_patroni(scope: str, cluster: Any, builtin_group: int | None = None) -> Cluster:
    """Our Cluster from a `patroni.dcs.Cluster` (what Patroni's get_cluster returns)."""
    members = tuple(
        member_from_data(member.name, dict(member.data))
        for member in sorted(cluster.members, key=lambda m: str(m.name))
    )
    config = cluster.config.data if cluster.config is not None else {}
    return Cluster(
        scope=scope if builtin_group is None else f"{scope}/{builtin_group}",
        leader=cluster.leader.name if cluster.leader is not None else None,
        members=members,
        config=dict(config) if isinstance(config, dict) else {},
        optime=_int(cluster.status.last_lsn) or None,
        builtin_group=builtin_group,
    )


def _is_empty(cluster: Any) -> bool:
    return not cluster.members and cluster.leader is None and cluster.config is None


def _read_scope(config: DcsConfig, scope: str) -> list[Cluster]:
    """One scope: our kind (one cluster), or Patroni's built-in Citus mode (a cluster per group)."""
    plain = patroni_dcs.read_scope(config, scope)
    if not _is_empty(plain):
        return [cluster_from_patroni(scope, plain)]
    coordinator = patroni_dcs.read_scope(config, scope, builtin=True)
    groups = {0: coordinator, **dict(coordinator.workers)}
    return [
        cluster_from_patroni(scope, group_cluster, int(group))
        for group, group_cluster in sorted(groups.items())
        if not _is_empty(group_cluster)
    ]


def read_cluster(config: DcsConfig, scope: str) -> Cluster | None:
    """One of our groups' clusters (a callback's own), or None if the DCS has nothing under scope."""
    plain = patroni_dcs.read_scope(config, scope)
    return None if _is_empty(plain) else cluster_from_patroni(scope, plain)


def reread(config: DcsConfig, cluster: Cluster) -> Cluster | None:
    """The same cluster read again, alone (ours: its scope; built-in mode: its group of the scope)."""
    if cluster.builtin_group is None:
        return read_cluster(config, cluster.scope)
    scope = cluster.scope.rsplit("/", 1)[0]
    return next((c for c in _read_scope(config, scope) if c.builtin_group == cluster.builtin_group), None)


def formation_scopes(scopes: list[str], name: str) -> list[str]:
    """The scopes that can belong to formation NAME: ours are NAME-<group>, built-in mode's NAME.

    >>> formation_scopes(["demo", "demo-0", "demo-12", "demo-x", "other-1"], "demo")
    ['demo', 'demo-0', 'demo-12']
    """
    return [s for s in scopes if s == name or (s.startswith(f"{name}-") and s[len(name) + 1 :].isdigit())]


def read_clusters(config: DcsConfig, name: str | None = None) -> dict[str, Cluster]:
    """Every Patroni cluster under the namespace (only formation NAME's when given), read in parallel."""
    names = patroni_dcs.list_scopes(config)
    if name is not None:
        names = formation_scopes(names, name)
    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        per_scope = list(pool.map(lambda scope: _read_scope(config, scope), names))
    return {cluster.scope: cluster for clusters in per_scope for cluster in clusters}


def select_formation(
    clusters: dict[str, Cluster], coordinator_hosts: str | None = None, name: str | None = None
) -> dict[int, list[Cluster]]:
    """The clusters of one formation, by Citus group.

    Ours: clusters whose members carry the same ``citus_coordinator_host`` tag, or whose scope is
    ``NAME-<group>``. Patroni's built-in mode: the groups nested under scope ``NAME``.
    """
    selected: dict[int, list[Cluster]] = {}
    for cluster in clusters.values():
        group = cluster.citus_group
        if group is None:
            continue
        if cluster.builtin_group is not None:
            belongs = name is not None and cluster.scope.rsplit("/", 1)[0] == name
        elif coordinator_hosts is not None:
            belongs = any(m.tags.get("citus_coordinator_host") == coordinator_hosts for m in cluster.members)
        else:
            belongs = name is not None and cluster.scope == f"{name}-{group}"
        if belongs:
            selected.setdefault(group, []).append(cluster)
    return dict(sorted(selected.items()))
