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


@dataclass(frozen=True)
class Member:
    """One Patroni member as published in the DCS."""

    name: str
    role: str
    state: str
    endpoint: Endpoint | None
    api_url: str
    tags: dict[str, Any] = field(default_factory=dict)
    lag: int | None = None


@dataclass(frozen=True)
class Cluster:
    """One Patroni cluster (one scope) in the DCS."""

    scope: str
    leader: str | None
    members: tuple[Member, ...]
    config: dict[str, Any]

    @property
    def leader_member(self) -> Member | None:
        return next((m for m in self.members if m.name == self.leader), None)

    @property
    def citus_group(self) -> int | None:
        """The Citus group its members announce in their tags (patroni-citus mode)."""
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


def parse_clusters(namespace: str, keys: dict[str, str]) -> dict[str, Cluster]:
    """Group raw DCS keys (/namespace/scope/...) into clusters by scope."""
    root = namespace.rstrip("/") + "/"
    by_scope: dict[str, dict[str, str]] = {}
    for key, value in keys.items():
        if key.startswith(root):
            scope, _, rest = key[len(root) :].partition("/")
            by_scope.setdefault(scope, {})[rest] = value
    clusters = {}
    for scope, entries in by_scope.items():
        members = []
        for rest, value in sorted(entries.items()):
            if rest.startswith("members/"):
                data = _json(value)
                members.append(
                    Member(
                        name=rest.removeprefix("members/"),
                        role=str(data.get("role", "")),
                        state=str(data.get("state", "")),
                        endpoint=_endpoint(str(data.get("conn_url", ""))),
                        api_url=str(data.get("api_url", "")),
                        tags=dict(data.get("tags") or {}),
                        lag=None,
                    )
                )
        clusters[scope] = Cluster(
            scope=scope,
            leader=entries.get("leader") or None,
            members=tuple(members),
            config=_json(entries.get("config", "")),
        )
    return clusters


def read_clusters(etcd_hosts: Sequence[str], namespace: str) -> dict[str, Cluster]:
    """Every Patroni cluster under namespace."""
    return parse_clusters(namespace, read_prefix(etcd_hosts, namespace.rstrip("/") + "/"))
