"""Entry points Patroni runs: parse argv, load the member's settings, dispatch, exit code.

Patroni appends ``action role scope`` to on_start/on_role_change, a connection string to
post_bootstrap, and nothing to before_stop (which it waits for before every planned stop). Every
callback exits 0 at once when Citus is disabled. A coordinator that cannot be reached never fails
a callback: registration is retried for a bounded time, and whatever is left is converged by
the coordinator's next start/promotion or by `patroni-citus reconcile`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from patroni_citus import convergence, hold, pooler_pause
from patroni_citus.dcs import LEADER_ROLES
from patroni_citus.errors import PatroniCitusError
from patroni_citus.member_config import MemberConfig, load_member_config

log = logging.getLogger("patroni_citus")
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


def _best_effort(what: str, step: Callable[[], object]) -> None:
    """Log and carry on: a later callback or reconcile finishes what this step could not."""
    try:
        step()
    except PatroniCitusError as exc:
        log.error("%s did not complete: %s", what, exc)


def _converge_as_primary(config: MemberConfig) -> None:
    """What a group's leader does: extension, own registration, and (coordinator) the whole formation."""
    timeout = config.citus.registration_timeout
    extension_ready = convergence.with_retries(
        "create extension", lambda: convergence.ensure_extension(config), timeout
    )
    if not extension_ready:
        return
    _best_effort(
        "registration",
        lambda: convergence.with_retries("registration", lambda: convergence.register_self(config), timeout),
    )
    if config.citus.is_coordinator:
        address = convergence.member_address(config)
        _best_effort("reconcile of every group", lambda: convergence.reconcile(address))


def on_event(config: MemberConfig, action: str, role: str) -> None:
    """on_start / on_role_change / on_stop: keep the preload list right, a new leader converges
    metadata, a replica keeps its own secondary row."""
    log.info(
        "%s %s %s (Citus %s, group %d)", config.name, action, role, config.citus.role, config.citus.group
    )
    if action == "on_start":
        check = "shared_preload_libraries check"
        _best_effort(
            check,
            lambda: convergence.with_retries(
                check, lambda: convergence.ensure_preload_in_dcs(config), config.citus.registration_timeout
            ),
        )
    if role in LEADER_ROLES:
        if action != "on_stop":
            _best_effort("convergence", lambda: _converge_as_primary(config))
    elif role == "replica":
        _converge_as_replica(config, stopping=action == "on_stop")


def _converge_as_replica(config: MemberConfig, stopping: bool) -> None:
    """A replica's own secondary row: registered when it runs, removed when it stops gracefully."""
    what = "secondary removal" if stopping else "secondary registration"
    _best_effort(
        what,
        lambda: convergence.with_retries(
            what,
            lambda: convergence.register_replica(config, stopping=stopping),
            config.citus.registration_timeout,
        ),
    )


def before_stop(config: MemberConfig) -> None:
    """Right before Patroni stops PostgreSQL on purpose: a worker primary holds its group's clients
    on the coordinator until the group has a primary again; a coordinator primary pauses the
    poolers in front of it until they point at the next primary; a replica gives up its secondary
    row first, so reads move to the group's other members before it goes away."""
    stopping = hold.stopping_primary(config)
    if stopping is None:
        try:
            convergence.register_replica(config, stopping=True)
        except PatroniCitusError as exc:  # one try only: Patroni waits for this command
            log.info("secondary row left for on_stop to remove: %s", exc)
        return
    if config.citus.is_coordinator:
        if not config.citus.poolers:
            log.info("coordinator primary stopping: no pooler configured (CITUS_POOLERS) to hold clients")
            return
        log.info("%s", pooler_pause.start(stopping))
        return
    log.info("%s", hold.start_holder(stopping))


def post_bootstrap(config: MemberConfig) -> None:
    """A new group's first primary: create the database and extension now; on_start registers it."""
    log.info("%s post_bootstrap (Citus %s, group %d)", config.name, config.citus.role, config.citus.group)
    if not convergence.with_retries(
        "create extension", lambda: convergence.ensure_extension(config), config.citus.registration_timeout
    ):
        raise PatroniCitusError(
            "citus is not loaded after bootstrap; is it first in shared_preload_libraries?"
        )


def _run(prog: str, patroni_args: Sequence[tuple[str, str]], argv: Sequence[str] | None) -> int:
    args = _parser(prog, patroni_args).parse_args(argv)
    _setup_logging(prog, args.log_file)
    try:
        config = load_member_config(args.config)
        if not config.citus.enabled:
            return 0
        if "connstring" in args:
            post_bootstrap(config)
        elif "action" not in args:
            before_stop(config)
        else:
            on_event(config, args.action, args.role)
    except PatroniCitusError as exc:
        log.error("%s", exc)
        return exc.exit_code
    return 0


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
