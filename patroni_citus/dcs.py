"""Read Patroni's state for a whole formation straight from etcd (v3 JSON gateway).

The callbacks of one member only know their own group; reconcile and the coordinator need every
group's leader, which only the DCS holds. Read-only: Patroni alone writes these keys.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from patroni_citus.errors import UnreachableError
from patroni_citus.planner import Endpoint

#: Patroni's names for a group's writable leader (master before Patroni 3); not standby_leader.
LEADER_ROLES = ("primary", "master")


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
        """The leader, if it runs as a writable primary and publishes where to reach it."""
        leader = self.leader_member
        if leader is None or leader.endpoint is None:
            return None
        return leader if leader.role in LEADER_ROLES and leader.state == "running" else None

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


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix: str) -> str:
    """etcd range_end that covers every key starting with prefix."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def read_prefix(etcd_hosts: Sequence[str], prefix: str, timeout: float = 3.0) -> dict[str, str]:
    """Every key under prefix with its value, from the first etcd endpoint that answers."""
    body = json.dumps({"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))}).encode()
    errors = []
    for host in etcd_hosts:
        url = host if host.startswith("http") else f"http://{host}"
        request = urllib.request.Request(f"{url}/v3/kv/range", data=body, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                answer = json.loads(response.read())
        except (OSError, ValueError, urllib.error.URLError) as exc:
            errors.append(f"{host}: {exc}")
            continue
        return {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
            for kv in answer.get("kvs", [])
        }
    raise UnreachableError(f"cannot read the DCS (etcd {', '.join(etcd_hosts)}): {'; '.join(errors)}")


def _endpoint(conn_url: str) -> Endpoint | None:
    parsed = urlparse(conn_url)
    return Endpoint(parsed.hostname, parsed.port or 5432) if parsed.hostname else None


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _cluster_key(scope: str, rest: str) -> tuple[str, int | None, str]:
    """(cluster name, built-in Citus group or None, key within the cluster).

    Patroni's built-in Citus mode nests one cluster per group under the scope: /ns/scope/<group>/leader.
    """
    head, sep, tail = rest.partition("/")
    if sep and head.isdigit() and (tail in _CLUSTER_KEYS or tail.startswith("members/")):
        return f"{scope}/{head}", int(head), tail
    return scope, None, rest


_CLUSTER_KEYS = frozenset(
    {"leader", "config", "sync", "status", "history", "initialize", "failover", "optime/leader"}
)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _member(name: str, data: dict[str, Any]) -> Member:
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


def parse_clusters(namespace: str, keys: dict[str, str]) -> dict[str, Cluster]:
    """Group raw DCS keys (/namespace/scope/...) into clusters, one per scope (or per built-in group)."""
    root = namespace.rstrip("/") + "/"
    entries_by_cluster: dict[tuple[str, int | None], dict[str, str]] = {}
    for key, value in keys.items():
        if key.startswith(root):
            scope, _, rest = key[len(root) :].partition("/")
            name, group, inner = _cluster_key(scope, rest)
            entries_by_cluster.setdefault((name, group), {})[inner] = value
    clusters = {}
    for (name, group), entries in entries_by_cluster.items():
        members = tuple(
            _member(inner.removeprefix("members/"), _json(value))
            for inner, value in sorted(entries.items())
            if inner.startswith("members/")
        )
        status = _json(entries.get("status", ""))
        clusters[name] = Cluster(
            scope=name,
            leader=entries.get("leader") or None,
            members=members,
            config=_json(entries.get("config", "")),
            optime=_int(status.get("optime")) or _int(entries.get("optime/leader")),
            builtin_group=group,
        )
    return clusters


def read_clusters(etcd_hosts: Sequence[str], namespace: str) -> dict[str, Cluster]:
    """Every Patroni cluster under namespace."""
    return parse_clusters(namespace, read_prefix(etcd_hosts, namespace.rstrip("/") + "/"))


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
