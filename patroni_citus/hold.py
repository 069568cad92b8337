"""Hold a worker group's client statements on the coordinator while its primary stops on purpose.

Patroni runs ``postgresql.before_stop`` and waits for it right before every stop of PostgreSQL it
plans: the demotion of a switchover, a restart, a shutdown. On a worker group's primary that
command forks a holder and returns as soon as the hold is in place, so the stop goes on. The
holder's one coordinator transaction locks the distributed tables (see
``metadata.lock_distributed_tables``), so clients' statements queue on the coordinator instead of
failing against a primary that is going away. Once the DCS names a leader whose PostgreSQL is a
primary again (another member, or this one restarted), the same transaction points the group's
rows at it and commits: the queued statements then run there.

A hold always ends within its bound: the holder rolls back at ``CITUS_HOLD_TIMEOUT``; the server
ends the transaction a few seconds later if the holder hangs (idle_in_transaction_session_timeout);
a killed holder's connection closes and releases it at once; a coordinator that fails over takes
the transaction with it. Only rows naming the DCS leader are ever committed. Crashes never run
before_stop, so an unplanned failover is not slowed down by any of this.
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime

from patroni_citus import dcs, metadata
from patroni_citus.errors import PatroniCitusError
from patroni_citus.member_config import MemberConfig
from patroni_citus.planner import GroupLeader, plan_group

log = logging.getLogger("patroni_citus")

LOCK_WAIT_MS = 2000
"""How long the stop may wait for the locks (statements already running on the tables finish first);
past it the stop goes on without a hold."""
POLL_INTERVAL_S = 0.02
SERVER_MARGIN_S = 5
"""The server-side bound is this much longer than the holder's own, so the holder normally ends it."""
ANNOUNCE_WAIT_S = 10.0
"""How long before_stop waits for the holder's first word before letting the stop go on anyway."""


def hold_name(group: int) -> str:
    """The application_name of a group's hold session: how status and switchover find it."""
    return f"{metadata.HOLD_NAME_PREFIX}{group}"


@dataclass(frozen=True)
class StoppingPrimary:
    """The PostgreSQL about to stop: a later start of the same member shows a later start time."""

    config: MemberConfig
    started_at: datetime


class HoldExpiredError(PatroniCitusError):
    """No primary came back within the hold's bound; the held statements are released to fail."""


def _leads_now(config: MemberConfig, leader: dcs.Member, stopping: StoppingPrimary) -> bool:
    """The DCS leader's PostgreSQL accepts writes, and is not the one that was stopping."""
    assert leader.endpoint is not None
    try:
        endpoint = [(leader.endpoint.host, leader.endpoint.port)]
        with closing(metadata.connect(endpoint, "postgres", config.superuser, connect_timeout=2)) as probe:
            in_recovery, started_at = metadata.postmaster_facts(probe)
    except PatroniCitusError:
        return False
    return not in_recovery and (leader.name != config.name or started_at > stopping.started_at)


def next_primary(
    stopping: StoppingPrimary, deadline: float, still_held: Callable[[], None]
) -> GroupLeader | None:
    """Wait for the group to have a running primary again (fenced on the DCS); None at the deadline.

    still_held raises once the hold is gone (its coordinator failed over, say): nothing left to wait for.
    """
    config = stopping.config
    while time.monotonic() < deadline:
        still_held()
        try:
            cluster = dcs.read_cluster(config.dcs, config.scope)
        except PatroniCitusError as exc:
            log.info("hold: cannot read %s from the DCS yet (%s)", config.scope, exc)
            cluster = None
        leader = cluster.leader_member if cluster is not None else None
        if (
            cluster is not None
            and leader is not None
            and leader.endpoint is not None
            and _leads_now(config, leader, stopping)
        ):
            secondaries = cluster.secondary_endpoints(excluding=leader.endpoint)
            return GroupLeader(config.citus.group, leader.endpoint, secondaries)
        time.sleep(POLL_INTERVAL_S)
    return None


def not_the_leader(config: MemberConfig) -> str | None:
    """Why this member may not act for its group now (the DCS names another leader), or None."""
    cluster = dcs.read_cluster(config.dcs, config.scope)
    if cluster is not None and cluster.leader == config.name:
        return None
    named = cluster.leader if cluster is not None else None
    return f"the DCS names {named or 'no member'} the leader of {config.scope}"


def hold_group(stopping: StoppingPrimary, announce: Callable[[str], None]) -> None:
    """The holder: lock, announce, wait for the group's next primary, point the rows at it, commit."""
    config = stopping.config
    refusal = not_the_leader(config)
    if refusal is not None:
        announce(f"no hold: {refusal}")
        return
    bound = config.citus.hold_timeout
    coordinator = metadata.connect(
        config.citus.coordinator_endpoints(),
        config.citus.database,
        config.superuser,
        read_write=True,
        application_name=hold_name(config.citus.group),
        idle_in_transaction_timeout_ms=(bound + SERVER_MARGIN_S) * 1000,
    )
    with closing(coordinator), metadata.transaction(coordinator):
        tables = metadata.lock_distributed_tables(coordinator, LOCK_WAIT_MS)
        held_at = time.monotonic()
        announce(f"holding statements on {tables} distributed table(s) for at most {bound}s")
        leader = next_primary(stopping, held_at + bound, lambda: metadata.ping(coordinator))
        if leader is None:
            raise HoldExpiredError(
                f"no primary of group {config.citus.group} within {bound}s; released the held statements"
            )
        for change in plan_group(leader, metadata.read_nodes(coordinator), config.citus.standalone):
            metadata.apply_change(coordinator, change)
            log.info("hold: %s", change.describe())
    log.info(
        "hold: released after %.2fs; group %d led by %s",
        time.monotonic() - held_at,
        leader.group,
        leader.endpoint,
    )


Announce = Callable[[str], None]
Work = Callable[[StoppingPrimary, Announce], None]
"""What a forked helper does: announce once it holds (or why not), then see it through."""


def _child(stopping: StoppingPrimary, announce_fd: int, work: Work) -> int:
    """The forked holder: own session (Patroni never waits for it), first word to the parent."""
    os.setsid()
    announced = False

    def announce(message: str) -> None:  # the parent logs it
        nonlocal announced
        if not announced:
            announced = True
            os.write(announce_fd, message.encode("utf-8", "replace")[:512] + b"\n")
            os.close(announce_fd)

    try:
        work(stopping, announce)
    except PatroniCitusError as exc:
        announce(f"no hold: {exc}")
        log.warning("hold: %s", exc)
        return 1
    finally:
        if not announced:
            os.close(announce_fd)
    return 0


def _first_word(read_fd: int, timeout: float) -> str:
    with os.fdopen(read_fd, "rb") as pipe:
        ready, _, _ = select.select([pipe], [], [], timeout)
        line = pipe.readline().decode("utf-8", "replace").strip() if ready else ""
    return line or f"the holder said nothing within {timeout:.0f}s; the stop goes on"


def start_holder(stopping: StoppingPrimary, work: Work = hold_group) -> str:
    """Fork the holder (work) and wait for it to hold (or to say why not); returns what it said.

    Forked, not spawned: no second interpreter start before the locks. The parent has opened no DCS
    client or thread yet, so the child inherits nothing it cannot use.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; exercised by the integration tests
        os.close(read_fd)
        code = 1
        try:
            code = _child(stopping, write_fd, work)
        finally:
            logging.shutdown()
            os._exit(code)
    os.close(write_fd)
    return _first_word(read_fd, ANNOUNCE_WAIT_S)


def stopping_primary(config: MemberConfig) -> StoppingPrimary | None:
    """This member's PostgreSQL as a primary about to stop, or None when it is a replica."""
    endpoint = [(config.postgres_host, config.postgres_port)]
    with closing(metadata.connect(endpoint, "postgres", config.superuser)) as local:
        in_recovery, started_at = metadata.postmaster_facts(local)
    return None if in_recovery else StoppingPrimary(config, started_at)
