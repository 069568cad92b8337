"""`patroni-citus switchover`: a planned worker switchover, checked first and reported after.

The hold itself is the one every planned stop gets (patroni_citus.hold, run from Patroni's
before_stop): this command picks the candidate, refuses to start when the hold could not take its
locks, asks Patroni to switch over, and waits until the group's row names the candidate and the
hold is released, reporting how long statements were held.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from patroni_citus import dcs, metadata, patroni_api
from patroni_citus.errors import PatroniCitusError
from patroni_citus.hold import LOCK_WAIT_MS, hold_name
from patroni_citus.planner import Endpoint, primary_rows
from patroni_citus.topology import FormationAddress, formation_clusters


class SwitchoverError(PatroniCitusError):
    """The switchover could not be started or did not complete; nothing is left locked."""


@dataclass(frozen=True)
class SwitchoverResult:
    group: int
    old_leader: str
    new_leader: str
    pause_s: float | None
    """How long client statements were held on the coordinator (None: no hold was seen)."""


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


def _check_lockable(coordinator: metadata.Connection, group: int, lock_timeout_ms: int) -> None:
    """Would the hold get its locks now? Refuse before anything changes rather than hold nothing."""
    try:
        with metadata.transaction(coordinator):
            metadata.lock_distributed_tables(coordinator, lock_timeout_ms)
    except metadata.MetadataError as exc:
        raise SwitchoverError(f"switchover of group {group} aborted before it began: {exc}") from None


def _watch_until_moved(
    coordinator: metadata.Connection, group: int, target: Endpoint, request: Future[Any], timeout: float
) -> float | None:
    """While Patroni's switchover request runs and after: until the group's primary row names target
    and no hold is open. Returns the longest hold seen (s). Patroni answers a switchover only once it
    is done, so the hold is watched from before the request, not after its answer."""
    deadline = time.monotonic() + timeout
    longest: float | None = None
    name = hold_name(group)
    while time.monotonic() < deadline:
        if request.done() and request.exception() is not None:
            raise SwitchoverError(f"Patroni refused the switchover of group {group}: {request.exception()}")
        age = metadata.holds_open(coordinator, name)
        if age is not None:
            longest = max(longest or 0.0, age)
        elif request.done():
            row = primary_rows(metadata.read_nodes(coordinator)).get(group)
            if row is not None and row.endpoint == target:
                return longest
        time.sleep(0.02)
    raise SwitchoverError(f"group {group}'s row did not move to {target} within {timeout:.0f}s")


def switchover(
    address: FormationAddress,
    group: int,
    candidate_name: str | None,
    report: Callable[[str], None],
    timeout: float = 60.0,
    lock_timeout_ms: int = LOCK_WAIT_MS,
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
    target = Endpoint(candidate.endpoint.host, candidate.endpoint.port)
    coordinator = metadata.connect(
        list(address.coordinator_endpoints), address.database, address.credentials, read_write=True
    )
    with closing(coordinator):
        if primary_rows(metadata.read_nodes(coordinator)).get(group) is None:
            raise SwitchoverError(f"group {group} has no pg_dist_node row; run reconcile first")
        _check_lockable(coordinator, group, lock_timeout_ms)
        report(f"asking Patroni to switch {cluster.scope} from {old.name} to {candidate.name}")
        rest = old.api_url.rsplit("/", 1)[0]
        with ThreadPoolExecutor(max_workers=1) as executor:
            auth = address.rest_auth
            request = executor.submit(patroni_api.switchover, rest, old.name, candidate.name, auth)
            report(f"{old.name}'s before_stop holds client statements until {candidate.name} is primary")
            held = _watch_until_moved(coordinator, group, target, request, timeout)
    if held is None:
        report(
            f"group {group} now led by {candidate.name} at {target}; no hold was seen (is before_stop set?)"
        )
    else:
        report(
            f"group {group} now led by {candidate.name} at {target}; statements were held about {held:.2f}s"
        )
    return SwitchoverResult(group, old.name, candidate.name, held)
