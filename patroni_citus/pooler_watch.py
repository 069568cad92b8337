"""`patroni-citus pooler watch`: keep one PgBouncer pointed at the coordinator group's running primary.

Every 50 ms it reads the coordinator group's cluster from the DCS (the same layer as status) and
asks the leader's PostgreSQL whether it is a primary. When PgBouncer points anywhere else (a
switchover, a crash failover, a restart that read an old file, a hand edit) it rewrites the
include file, RELOADs and RECONNECTs, so no server connection to the old host is reused. Its first
round writes the file from the DCS, so a PgBouncer started or restarted afterwards comes back
right. It also ends pauses that outlived their reason: one the stopping primary's before_stop left
once PgBouncer points at the next primary, and any pause older than CITUS_HOLD_TIMEOUT.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from patroni_citus import dcs, metadata, pgbouncer
from patroni_citus.errors import PatroniCitusError
from patroni_citus.planner import Endpoint
from patroni_citus.pooler_config import PoolerFiles, read_target, write_target
from patroni_citus.topology import FormationAddress, formation_clusters

POLL_INTERVAL_S = 0.05
Reporter = Callable[[str], None]


class WatchError(PatroniCitusError):
    """The watcher cannot find the formation's coordinator group."""


@dataclass(frozen=True)
class Primary:
    """A running PostgreSQL primary: a later start of the same member shows a later start time."""

    name: str
    endpoint: Endpoint
    started_at: datetime

    def succeeds(self, other: Primary) -> bool:
        """Another member, or the same one started again: not the primary that was stopping."""
        return self.name != other.name or self.started_at > other.started_at


@dataclass
class PauseJudge:
    """Decides when a pause found on the pooler should end; pure, so it is unit-tested alone."""

    bound: float
    since: float | None = None
    stopping: Primary | None = None

    def observe(
        self, paused: bool, now: float, before: Primary | None, current: Primary | None, pointed: bool
    ) -> str | None:
        """Why to RESUME now, or None. before: the primary known when the pause was first seen."""
        if not paused:
            self.since, self.stopping = None, None
            return None
        if self.since is None:
            self.since, self.stopping = now, before
        if now - self.since >= self.bound:
            return f"paused {now - self.since:.1f}s, the most CITUS_HOLD_TIMEOUT ({self.bound:g}s) allows"
        if current is not None and pointed and self.stopping is not None and current.succeeds(self.stopping):
            return f"{current.name} at {current.endpoint} is the primary now and the pooler points at it"
        return None


@dataclass
class Watcher:
    """One watcher's state between rounds: its sessions, what it last saw, the messages it gave."""

    address: FormationAddress
    files: PoolerFiles
    pooler: pgbouncer.PoolerLogin
    database: str
    report: Reporter
    judge: PauseJudge
    cluster: dcs.Cluster | None = None
    primary: Primary | None = None
    _probe: Any = None
    _probe_at: Endpoint | None = None
    _console: Any = None
    _said: set[str] = field(default_factory=set)

    def say_once(self, message: str) -> None:
        """A trouble message once until the next change, not every 50 ms."""
        if message not in self._said:
            self._said.add(message)
            self.report(message)

    def _coordinator_cluster(self) -> dcs.Cluster | None:
        if self.cluster is not None:
            return dcs.reread(self.address.dcs, self.cluster)
        clusters = dcs.select_formation(
            formation_clusters(self.address), self.address.coordinator_hosts, self.address.name
        )
        found = clusters.get(0) or []
        if len(found) != 1:
            raise WatchError(
                f"found {len(found)} Patroni clusters for the coordinator group, need exactly one"
            )
        self.cluster = found[0]
        self.report(f"watching {self.cluster.scope} for the coordinator group's primary")
        return self.cluster

    def _close_probe(self) -> None:
        if self._probe is not None:
            with suppress(Exception):
                self._probe.close()
        self._probe, self._probe_at = None, None

    def _running_primary(self) -> Primary | None:
        """The DCS leader of the coordinator group, if its PostgreSQL answers as a primary."""
        cluster = self._coordinator_cluster()
        leader = cluster.leader_member if cluster is not None else None
        if leader is None or leader.endpoint is None:
            return None
        try:
            if self._probe_at != leader.endpoint:
                self._close_probe()
                endpoint = [(leader.endpoint.host, leader.endpoint.port)]
                self._probe = metadata.connect(
                    endpoint, "postgres", self.address.credentials, connect_timeout=1
                )
                self._probe_at = leader.endpoint
            in_recovery, started_at = metadata.postmaster_facts(self._probe)
        except PatroniCitusError as exc:
            self._close_probe()
            self.say_once(f"coordinator leader {leader.name} at {leader.endpoint} not answering: {exc}")
            return None
        return None if in_recovery else Primary(leader.name, leader.endpoint, started_at)

    def _pooler_state(self) -> pgbouncer.PooledDatabase | None:
        if self._console is None:
            self._console = pgbouncer.connect(self.pooler, timeout=1)
        try:
            listed = pgbouncer.show_databases(self._console)
        except pgbouncer.PoolerError:
            self._close_console()
            raise
        return next((db for db in listed if db.name == self.database), None)

    def _close_console(self) -> None:
        if self._console is not None:
            with suppress(Exception):
                self._console.close()
        self._console = None

    def _repoint(self, primary: Primary, seen: pgbouncer.PooledDatabase | None) -> None:
        if read_target(self.files) != primary.endpoint:
            write_target(self.files, self.database, primary.endpoint)
        was = seen.target if seen is not None else None
        pgbouncer.run(self._console, "RELOAD")
        pgbouncer.run(self._console, "RECONNECT")
        self.report(
            f"pointed the pooler at {primary.name} ({primary.endpoint}); it pointed at {was or 'nothing'}"
        )

    def round(self) -> None:
        """One look: the primary, the pooler's target and pause; repoint or resume when needed."""
        before = self.primary
        current = self._running_primary()
        if current is not None:
            if self.primary is None or current != self.primary:
                self.report(f"coordinator primary: {current.name} at {current.endpoint}")
            self.primary = current
            if read_target(self.files) != current.endpoint:
                write_target(self.files, self.database, current.endpoint)  # for a PgBouncer (re)starting
        try:
            seen = self._pooler_state()
        except PatroniCitusError as exc:
            self.say_once(f"pooler {self.pooler} not answering: {exc}")
            return
        if current is not None and (seen is None or seen.target != current.endpoint):
            self._repoint(current, seen)
            seen = self._pooler_state()
        pointed = current is not None and seen is not None and seen.target == current.endpoint
        reason = self.judge.observe(bool(seen and seen.paused), time.monotonic(), before, current, pointed)
        if reason is not None:
            pgbouncer.resume(self._console, self.database)
            self.judge.observe(False, time.monotonic(), None, None, False)
            self.report(f"resumed the pooler: {reason}")
        if current is not None:  # all well again: the next trouble is news
            self._said.clear()

    def close(self) -> None:
        self._close_probe()
        self._close_console()


def watch(watcher: Watcher, stop: Callable[[], bool]) -> None:
    """Rounds every 50 ms until stop() says so; trouble is reported (once) and retried."""
    try:
        while not stop():
            started = time.monotonic()
            try:
                watcher.round()
            except PatroniCitusError as exc:
                watcher.say_once(f"retrying: {exc}")
            time.sleep(max(0.0, POLL_INTERVAL_S - (time.monotonic() - started)))
    finally:
        watcher.close()
