"""Entry points Patroni runs: parse argv, load the member's settings, dispatch, exit code.

Patroni appends ``action role scope`` to on_start/on_role_change, a connection string to
post_bootstrap, and nothing to before_stop (which it waits for before every planned stop). Every
callback exits 0 at once when Citus is disabled. A coordinator that cannot be reached never fails
a callback: registration is retried for a bounded time, and whatever is left is converged by
the coordinator's next start/promotion or by `patroni-citus reconcile`.
Each run records its outcome beside the member's config (callback_state.py) for the exporter.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from patroni_citus import callback_state, convergence, hold, pooler_pause
from patroni_citus.dcs import LEADER_ROLES
from patroni_citus.errors import USAGE_EXIT, PatroniCitusError, describe_failure
from patroni_citus.member_config import MemberConfig, load_member_config

log = logging.getLogger("patroni_citus")
T = TypeVar("T")
_EVENT_ARGS = (
    ("action", "callback action Patroni passes"),
    ("role", "member role"),
    ("scope", "Patroni scope"),
)


def _parser(prog: str, patroni_args: Sequence[tuple[str, str]]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=f"Patroni callback ({prog}) of patroni-citus.")
    parser.add_argument("--config", required=True, type=Path, help="this member's rendered patroni.yml")
    parser.add_argument("--log-file", type=Path, help="also append log lines to this file")
    for name, help_text in patroni_args:
        parser.add_argument(name, help=help_text)
    return parser


def _setup_logging(prog: str, log_file: Path | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {prog} %(levelname)s: %(message)s",
        handlers=handlers,
        force=True,
    )


@dataclass
class Tally:
    """What one callback run did: tries of its retried steps and the steps that gave up (its outcome)."""

    attempts: int = 0
    steps: int = 0
    failed: list[str] = field(default_factory=list)

    def retried(self, what: str, action: Callable[[], T], timeout: float) -> T:
        """convergence.with_retries, counting the step and each of its attempts."""
        self.steps += 1

        def counted() -> T:
            self.attempts += 1
            return action()

        return convergence.with_retries(what, counted, timeout)

    def best_effort(self, what: str, step: Callable[[], object]) -> None:
        """Log and carry on: a later callback or reconcile finishes what this step could not."""
        try:
            step()
        except PatroniCitusError as exc:
            log.error("%s did not complete: %s", what, exc)
            self.failed.append(f"{what}: {exc}")


def _converge_as_primary(config: MemberConfig, tally: Tally) -> None:
    """What a group's leader does: extension, own registration, and (coordinator) the whole formation."""
    timeout = config.citus.registration_timeout
    extension_ready = tally.retried("create extension", lambda: convergence.ensure_extension(config), timeout)
    if not extension_ready:
        return
    tally.best_effort(
        "registration",
        lambda: tally.retried("registration", lambda: convergence.register_self(config), timeout),
    )
    if config.citus.is_coordinator:
        address = convergence.member_address(config)
        tally.best_effort("reconcile of every group", lambda: convergence.reconcile(address))


def on_event(config: MemberConfig, action: str, role: str, tally: Tally | None = None) -> None:
    """on_start / on_role_change / on_stop: keep the preload list right, a new leader converges
    metadata, a replica keeps its own secondary row."""
    tally = Tally() if tally is None else tally
    log.info(
        "%s %s %s (Citus %s, group %d)", config.name, action, role, config.citus.role, config.citus.group
    )
    if action == "on_start":
        check = "shared_preload_libraries check"
        tally.best_effort(
            check,
            lambda: tally.retried(
                check, lambda: convergence.ensure_preload_in_dcs(config), config.citus.registration_timeout
            ),
        )
    if role in LEADER_ROLES:
        if action != "on_stop":
            tally.best_effort("convergence", lambda: _converge_as_primary(config, tally))
    elif role == "replica":
        _converge_as_replica(config, tally, stopping=action == "on_stop")


def _converge_as_replica(config: MemberConfig, tally: Tally, stopping: bool) -> None:
    """A replica's own secondary row: registered when it runs, removed when it stops gracefully."""
    what = "secondary removal" if stopping else "secondary registration"
    tally.best_effort(
        what,
        lambda: tally.retried(
            what,
            lambda: convergence.register_replica(config, stopping=stopping),
            config.citus.registration_timeout,
        ),
    )


def before_stop(config: MemberConfig, tally: Tally) -> None:
    """Right before Patroni stops PostgreSQL on purpose: a worker primary holds its group's clients
    on the coordinator until the group has a primary again; a coordinator primary pauses the
    poolers in front of it until they point at the next primary; a replica gives up its secondary
    row first, so reads move to the group's other members before it goes away."""
    stopping = hold.stopping_primary(config)
    if stopping is None:
        # One try only, not retried: Patroni waits for this command before it stops PostgreSQL.
        tally.best_effort("secondary removal", lambda: convergence.register_replica(config, stopping=True))
        return
    if config.citus.is_coordinator:
        if not config.citus.poolers:
            log.info("coordinator primary stopping: no pooler configured (CITUS_POOLERS) to hold clients")
            return
        log.info("%s", pooler_pause.start(stopping))
        return
    log.info("%s", hold.start_holder(stopping))


def post_bootstrap(config: MemberConfig, tally: Tally | None = None) -> None:
    """A new group's first primary: create the database and extension now; on_start registers it."""
    tally = Tally() if tally is None else tally
    log.info("%s post_bootstrap (Citus %s, group %d)", config.name, config.citus.role, config.citus.group)
    if not tally.retried(
        "create extension", lambda: convergence.ensure_extension(config), config.citus.registration_timeout
    ):
        raise PatroniCitusError(
            "citus is not loaded after bootstrap; is it first in shared_preload_libraries?"
        )


def _log_failure(exc: BaseException, tally: Tally | None = None) -> int:
    """Any failure as log lines (never a traceback: Patroni's log keeps one line a problem); its exit code."""
    lines, exit_code = describe_failure(exc)
    for line in lines:
        log.error("%s", line)
    if tally is not None:
        tally.failed.append("; ".join(lines))
    return exit_code


def _run(prog: str, patroni_args: Sequence[tuple[str, str]], argv: Sequence[str] | None) -> int:
    args = _parser(prog, patroni_args).parse_args(argv)
    try:
        _setup_logging(prog, args.log_file)
    except OSError as exc:  # no log yet: the one line goes to stderr as argparse's would
        print(f"{prog}: error: --log-file {describe_failure(exc)[0][0]}", file=sys.stderr)
        return USAGE_EXIT
    started = time.monotonic()
    tally = Tally()
    try:
        config = load_member_config(args.config)
    except (Exception, KeyboardInterrupt) as exc:
        return _log_failure(exc)
    if not config.citus.enabled:
        return 0
    exit_code = 0
    try:
        if "connstring" in args:
            post_bootstrap(config, tally)
        elif "action" not in args:
            before_stop(config, tally)
        else:
            on_event(config, args.action, args.role, tally)
    except (Exception, KeyboardInterrupt) as exc:
        exit_code = _log_failure(exc, tally)
    event = "post_bootstrap" if "connstring" in args else getattr(args, "action", "before_stop")
    _record(args.config, config, event, getattr(args, "role", ""), tally, time.monotonic() - started)
    return exit_code


def _record(
    config_path: Path, config: MemberConfig, event: str, role: str, tally: Tally, duration: float
) -> None:
    """Leave the outcome where the exporter reads it; a file that cannot be written never fails a callback."""
    outcome = callback_state.CallbackOutcome(
        event=event,
        role=role,
        result=callback_state.FAILURE if tally.failed else callback_state.SUCCESS,
        duration_seconds=round(duration, 3),
        attempts=tally.attempts,
        steps=tally.steps,
        finished_at=time.time(),
        error="; ".join(tally.failed) or None,
    )
    path = callback_state.state_path(config_path)
    try:
        callback_state.record(path, config.name, config.citus.group, outcome)
    except OSError as exc:
        log.warning("could not record the outcome in %s: %s", path, exc)


def on_start_main(argv: Sequence[str] | None = None) -> int:
    return _run("patroni-citus-on-start", _EVENT_ARGS, argv)


def on_role_change_main(argv: Sequence[str] | None = None) -> int:
    return _run("patroni-citus-on-role-change", _EVENT_ARGS, argv)


def on_stop_main(argv: Sequence[str] | None = None) -> int:
    return _run("patroni-citus-on-stop", _EVENT_ARGS, argv)


def before_stop_main(argv: Sequence[str] | None = None) -> int:
    return _run("patroni-citus-before-stop", (), argv)


def post_bootstrap_main(argv: Sequence[str] | None = None) -> int:
    return _run("patroni-citus-post-bootstrap", (("connstring", "connection string Patroni passes"),), argv)
