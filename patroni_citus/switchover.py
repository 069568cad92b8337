"""`patroni-citus switchover`: a planned switchover, checked first and reported after.

The hold itself is the one every planned stop gets, run from Patroni's before_stop: a worker
group's statements wait on the coordinator (patroni_citus.hold), the coordinator group's wait in
the poolers in front of it (patroni_citus.pooler_pause). This command picks the candidate, refuses
to start a worker switchover when the hold could not take its locks, asks Patroni to switch over,
and waits until the group's row (group 0: every pooler) names the candidate and the hold (pause)
is over, reporting how long statements were held.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass, field
from typing import Any

from patroni_citus import dcs, metadata, patroni_api, pgbouncer
from patroni_citus.errors import PatroniCitusError
from patroni_citus.hold import LOCK_WAIT_MS
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


def _leader_and_candidate(
    address: FormationAddress, group: int, candidate_name: str | None
) -> tuple[dcs.Cluster, dcs.Member, dcs.Member, Endpoint]:
    """The group's cluster, its leader, the replica to hand over to and that replica's address."""
    cluster = _group_cluster(address, group)
    old = cluster.leader_member
    if old is None or old.endpoint is None:
        raise SwitchoverError(f"{cluster.scope} has no leader to switch over from")
    candidate = _pick_candidate(cluster, candidate_name)
    if candidate.endpoint is None or not candidate.api_url:
        raise SwitchoverError(f"{candidate.name} publishes no connection or REST address in the DCS")
    return cluster, old, candidate, candidate.endpoint


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
    while time.monotonic() < deadline:
        if request.done() and request.exception() is not None:
            raise SwitchoverError(f"Patroni refused the switchover of group {group}: {request.exception()}")
        age = metadata.open_holds(coordinator).get(group)
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
        return _coordinator_switchover(address, candidate_name, report, timeout)
    cluster, old, candidate, target = _leader_and_candidate(address, group, candidate_name)
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


@dataclass
class PauseWatch:
    """Polls the poolers every 20 ms; remembers the longest stretch any of them was paused."""

    logins: list[pgbouncer.PoolerLogin]
    database: str
    longest: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        since: dict[str, float] = {}
        while not self.stop.is_set():
            for login in self.logins:
                seen = None
                with suppress(PatroniCitusError):
                    seen = pgbouncer.database(login, self.database)
                now = time.monotonic()
                if seen is not None and seen.paused:
                    since.setdefault(str(login), now)
                    self.longest = max(self.longest or 0.0, now - since[str(login)])
                elif seen is not None:
                    since.pop(str(login), None)
            time.sleep(0.02)


def _coordinator_moved(
    address: FormationAddress, logins: list[pgbouncer.PoolerLogin], candidate: dcs.Member
) -> bool:
    """The DCS names candidate the coordinator group's running leader, and every pooler points at it
    without a pause."""
    cluster = _group_cluster(address, 0)
    if cluster.running_leader is None or cluster.running_leader.name != candidate.name:
        return False
    for login in logins:
        try:
            seen = pgbouncer.database(login, address.database)
        except PatroniCitusError:
            return False
        if seen is None or seen.paused or seen.target != candidate.endpoint:
            return False
    return True


def _coordinator_switchover(
    address: FormationAddress, candidate_name: str | None, report: Callable[[str], None], timeout: float
) -> SwitchoverResult:
    """Group 0: nothing on the coordinator can hold its own clients; the poolers in front of it can."""
    cluster, old, candidate, _target = _leader_and_candidate(address, 0, candidate_name)
    logins = pgbouncer.tag_logins(old.tags)
    if not logins:
        report("no pooler is configured (CITUS_POOLERS): clients connected directly reconnect by themselves")
    watch = PauseWatch(logins, address.database)
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    try:
        report(f"asking Patroni to switch {cluster.scope} from {old.name} to {candidate.name}")
        patroni_api.switchover(old.api_url.rsplit("/", 1)[0], old.name, candidate.name, address.rest_auth)
        if logins:
            report(
                f"{old.name}'s before_stop pauses {len(logins)} pooler(s) "
                f"until they point at {candidate.name}"
            )
        deadline = time.monotonic() + timeout
        while not _coordinator_moved(address, logins, candidate):
            if time.monotonic() > deadline:
                raise SwitchoverError(
                    f"{candidate.name} did not lead group 0 behind every pooler within {timeout:.0f}s"
                )
            time.sleep(0.05)
    finally:
        watch.stop.set()
        thread.join(5)
    held = watch.longest
    paused = "no pause was seen" if held is None else f"clients were paused about {held:.2f}s"
    report(f"group 0 now led by {candidate.name} at {candidate.endpoint}; {paused}")
    return SwitchoverResult(0, old.name, candidate.name, held)


def wait_for_candidate(
    address: FormationAddress,
    group: int,
    candidate_name: str | None,
    wait: float,
    report: Callable[[str], None],
) -> None:
    """`switchover --wait`: up to wait seconds for the group to have a leader and a running replica to
    hand over to, rather than refusing while a replica is still starting (a fresh formation, a member
    coming back). Says on report what it waits for, when that changes and every 10 s; refuses as
    switchover would once the time is up."""
    deadline = time.monotonic() + wait
    said, said_at = "", 0.0
    while True:
        try:
            _leader_and_candidate(address, group, candidate_name)
            return
        except SwitchoverError as exc:
            now = time.monotonic()
            if now >= deadline:
                raise
            if str(exc) != said or now - said_at >= 10:
                report(f"waiting up to {deadline - now:.0f}s more for a candidate: {exc}")
                said, said_at = str(exc), now
            time.sleep(min(1.0, deadline - now))
