"""Pause the coordinator's poolers while the coordinator group's primary stops on purpose.

Nothing on the coordinator itself can hold clients once its own PostgreSQL stops, but a PgBouncer
in front of it can: the coordinator primary's before_stop PAUSEs every configured pooler (running
transactions finish first, for at most pgbouncer.PAUSE_WAIT_S; past that the pause is taken back
and the stop goes on as without a pooler), then a forked helper waits for the group's next primary
(hold.next_primary: another member, or this one restarted) and for each pooler to point at it (the
watcher repoints it), and RESUMEs: clients saw a pause, not an error. At CITUS_HOLD_TIMEOUT it
RESUMEs regardless, and the watcher ends any pause older than that too, so a pooler never stays
paused because this helper died.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress

from patroni_citus import hold, pgbouncer
from patroni_citus.errors import PatroniCitusError
from patroni_citus.planner import Endpoint

log = logging.getLogger("patroni_citus")
POLL_INTERVAL_S = 0.02


def _pause_all(
    logins: list[pgbouncer.PoolerLogin], database: str
) -> tuple[list[pgbouncer.PoolerLogin], list[str]]:
    """Pause every pooler within one shared bound; the ones paused, and why the others are not."""
    deadline = time.monotonic() + pgbouncer.PAUSE_WAIT_S
    paused, problems = [], []
    for login in logins:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            if pgbouncer.pause_within(login, database, remaining):
                paused.append(login)
            else:
                problems.append(f"{login}: transactions still running after {pgbouncer.PAUSE_WAIT_S:g}s")
        except PatroniCitusError as exc:
            problems.append(str(exc))
    return paused, problems


def _resume(logins: list[pgbouncer.PoolerLogin], database: str, attempts_s: float = 5.0) -> None:
    """RESUME each pooler, retrying a little: a pooler left paused would wait for the watcher's bound."""
    for login in logins:
        deadline = time.monotonic() + attempts_s
        while True:
            try:
                pgbouncer.resume_once(login, database)
                break
            except PatroniCitusError as exc:
                if time.monotonic() > deadline:
                    log.error("pooler pause: could not RESUME %s (the watcher ends it): %s", login, exc)
                    break
                time.sleep(0.1)


def _all_point_at(
    logins: list[pgbouncer.PoolerLogin], database: str, target: Endpoint, deadline: float
) -> bool:
    """Until every pooler names target for database (the watcher's RELOAD), or the deadline."""
    pending = list(logins)
    while pending and time.monotonic() < deadline:
        for login in list(pending):
            with suppress(PatroniCitusError):
                seen = pgbouncer.database(login, database)
                if seen is not None and seen.target == target:
                    pending.remove(login)
        if pending:
            time.sleep(POLL_INTERVAL_S)
    return not pending


def pause_poolers(stopping: hold.StoppingPrimary, announce: hold.Announce) -> None:
    """The helper: pause, announce, wait for the next primary and the repoint, resume."""
    config = stopping.config
    refusal = hold.not_the_leader(config)
    if refusal is not None:
        announce(f"no pooler pause: {refusal}")
        return
    logins = pgbouncer.settings_logins(config.citus)
    paused, problems = _pause_all(logins, config.citus.database)
    for problem in problems:
        log.warning("pooler pause: not paused: %s", problem)
    if not paused:
        announce("no pooler pause: " + ("; ".join(problems) or "no pooler configured"))
        return
    bound = config.citus.hold_timeout
    paused_at = time.monotonic()
    deadline = paused_at + bound
    announce(f"paused {len(paused)} pooler(s) ({', '.join(map(str, paused))}) for at most {bound}s")
    try:
        leader = hold.next_primary(stopping, deadline, lambda: None)
        if leader is None:
            log.warning("pooler pause: no primary of %s within %ss; resuming anyway", config.scope, bound)
        elif not _all_point_at(paused, config.citus.database, leader.endpoint, deadline):
            log.warning(
                "pooler pause: a pooler does not point at %s after %ss; resuming", leader.endpoint, bound
            )
    finally:
        _resume(paused, config.citus.database)
    log.info("pooler pause: resumed after %.2fs", time.monotonic() - paused_at)


def start(stopping: hold.StoppingPrimary) -> str:
    """Fork the pause helper (before_stop of a coordinator primary); what it said once paused."""
    return hold.start_holder(stopping, pause_poolers)
