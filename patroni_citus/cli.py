"""`patroni-citus`: the operator CLI. Parsing and printing only; the work lives below."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import pwd
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from patroni_citus import (
    __version__,
    callback_state,
    convergence,
    drill,
    entrypoint,
    formation_target,
    formats,
    metrics,
    metrics_http,
    pgbouncer,
    pooler_config,
    pooler_watch,
    rotation,
    status,
    switchover,
)
from patroni_citus.cli_command import ReportingGroup
from patroni_citus.errors import ConfigurationError, PatroniCitusError
from patroni_citus.local import access, formation, members, password_rotation
from patroni_citus.local import pooler as local_pooler
from patroni_citus.local.layout import DCS_KINDS, NETWORKS, FormationLayout
from patroni_citus.planner import Endpoint
from patroni_citus.settings import load_pooler_settings, load_settings, typo_findings
from patroni_citus.template import default_scripts_dir, render_config, write_private_file
from patroni_citus.topology import FormationAddress

R = TypeVar("R")
DEFAULT_CONFIG_PATH = Path("/etc/patroni/patroni.yml")


def _owner_ids(owner: str | None) -> tuple[int, int] | None:
    """--owner as (uid, gid); None for the caller."""
    if owner is None:
        return None
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        raise ConfigurationError("--owner", owner, "no such OS user") from None
    return entry.pw_uid, entry.pw_gid


def progress(line: str) -> None:
    click.echo(line, err=True)


@click.group(cls=ReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="patroni-citus")
def cli() -> None:
    """Run Citus under Patroni high availability: render configs, run local formations, inspect them."""


@cli.command("render-config")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here (mode 0600)."
)
@click.option(
    "--config-path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where Patroni will read the file, for the callbacks' --config (default: --output or "
    f"{DEFAULT_CONFIG_PATH}).",
)
@click.option("--owner", help="OS user to own the written file (default: the caller).")
def render_config_command(output: Path | None, config_path: Path | None, owner: str | None) -> None:
    """Render patroni.yml from the environment (CITUS_*, PATRONI_*, PG_* variables)."""
    settings = load_settings(os.environ)
    for _error, warning in typo_findings(os.environ):
        if warning is not None:
            click.echo(f"patroni-citus: warning: {warning}", err=True)
    owner_ids = _owner_ids(owner)
    target = config_path or output or DEFAULT_CONFIG_PATH
    text = render_config(settings, target.absolute(), default_scripts_dir())
    if output is None:
        click.echo(text, nl=False)
        return
    if not output.absolute().parent.is_dir():
        raise ConfigurationError("--output", str(output), "its directory does not exist; create it first")
    try:
        write_private_file(output, text, owner=owner_ids)
    except OSError as exc:
        raise ConfigurationError("--output", str(output), f"cannot write it ({exc.strerror})") from None
    progress(f"wrote {output} (mode 0600)")


@cli.command("entrypoint")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("/var/lib/postgresql/patroni.yml"),
    show_default=True,
    help="Where to write patroni.yml before starting Patroni.",
)
def entrypoint_command(config_path: Path) -> None:
    """Validate the environment, render patroni.yml and exec Patroni (container PID 1 or systemd unit)."""
    entrypoint.exec_patroni(os.environ, config_path.absolute())


@cli.group()
def local() -> None:
    """A local formation on this machine: etcd (or ZooKeeper) plus one Patroni cluster per Citus group."""


base_dir_option = click.option(
    "--base-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/tmp/patroni-citus-local"),  # noqa: S108 - a demo location the operator can override
    show_default=True,
    help="Directory holding the formation's data, configs and logs.",
)


def format_options(command: Callable[..., R]) -> Callable[..., R]:
    """Add -f/--format pretty|json|yaml and --json (an alias of -f json); the command gets output_format."""

    @wraps(command)
    def choosing(*args: Any, output_format: str | None, as_json: bool, **kwargs: Any) -> R:
        return command(*args, output_format=formats.chosen(output_format, as_json), **kwargs)

    with_json = click.option("--json", "as_json", is_flag=True, help="Same as -f json.")(choosing)
    return click.option(
        "-f",
        "--format",
        "output_format",
        type=click.Choice(formats.FORMATS),
        help="pretty (default) for people; json or yaml (the same document) for scripts.",
    )(with_json)


def echo_document(document: Any, output_format: str, *, stream: bool = False) -> None:
    click.echo(formats.render(document, output_format, stream=stream))


@local.command("up")
@base_dir_option
@click.option(
    "--name", default="demo", show_default=True, help="Formation name; scopes are NAME-0, NAME-1, ..."
)
@click.option("--workers", type=int, default=2, show_default=True, help="Number of worker groups.")
@click.option("--members", type=int, default=2, show_default=True, help="Patroni members per group.")
@click.option("--port-base", type=int, default=25000, show_default=True, help="First port used (etcd).")
@click.option(
    "--citus",
    type=click.Choice(formation.CITUS_CHOICES),
    default="auto",
    show_default=True,
    help="real: require Citus; standin: test stand-in (NOT Citus); auto: real, else say how to get it.",
)
@click.option(
    "--pg-bindir", type=click.Path(file_okay=False, path_type=Path), help="PostgreSQL bin directory to use."
)
@click.option(
    "--mode",
    type=click.Choice(("callbacks", "builtin")),
    default="callbacks",
    show_default=True,
    help="builtin: Patroni's own citus: mode instead of this project's callbacks (for comparisons only).",
)
@click.option(
    "--synchronous", is_flag=True, help="Patroni synchronous_mode: no acknowledged write lost on failover."
)
@click.option(
    "--network",
    type=click.Choice(NETWORKS),
    default="loopback",
    show_default=True,
    help="netns: each member in its own network namespace, so `local isolate` can cut it off (root).",
)
@click.option(
    "--dcs",
    type=click.Choice(DCS_KINDS),
    default="etcd",
    show_default=True,
    help="The DCS the formation starts and its members use: etcd, or a standalone ZooKeeper.",
)
@click.option(
    "--tls",
    is_flag=True,
    help="A CA of its own; etcd https-only with client certificates and RBAC users; PostgreSQL ssl=on, "
    "hostssl, Citus links sslmode=verify-full (etcd only).",
)
@click.option(
    "--metrics",
    "with_metrics",
    is_flag=True,
    help="Also start `patroni-citus metrics` for the formation on 127.0.0.1:PORT_BASE+90 "
    "(every member's callback state included); `local down` stops it.",
)
@click.option(
    "--pooler",
    is_flag=True,
    help="Also a PgBouncer in front of the coordinator (port base+80) and its `pooler watch`.",
)
@click.option(
    "--timeout", type=float, default=240.0, show_default=True, help="Seconds to wait for each phase."
)
def local_up(
    base_dir: Path,
    name: str,
    workers: int,
    members: int,
    port_base: int,
    citus: str,
    pg_bindir: Path | None,
    mode: str,
    synchronous: bool,
    network: str,
    dcs: str,
    tls: bool,
    with_metrics: bool,
    pooler: bool,
    timeout: float,
) -> None:
    """Start the DCS and every member; print progress and the coordinator's connection string."""
    layout = FormationLayout(
        str(base_dir.absolute()),
        name,
        workers,
        members,
        port_base,
        synchronous,
        mode,
        network,
        dcs,
        tls,
        pooler,
    )
    formation.up(layout, citus, pg_bindir, progress, timeout, with_metrics)


@local.command("down")
@base_dir_option
@click.option("--purge", is_flag=True, help="Also delete the base directory (data, configs, logs).")
def local_down(base_dir: Path, purge: bool) -> None:
    """Stop every process the formation started; keep its files unless --purge."""
    formation.down(base_dir.absolute(), purge, progress)


@local.command("env")
@base_dir_option
def local_env(base_dir: Path) -> None:
    """Print shell exports so status, reconcile and psql talk to this formation.

    Use: eval "$(patroni-citus local env --base-dir DIR)". A --tls formation gets the CLI's read-only
    etcd login (PATRONI_ETCD3_*, PATRONI_CITUS_DCS, PATRONI_CITUS_FORMATION), not a member's config
    (which holds Patroni's read-write etcd login).
    """
    for name, value in access.shell_environment(base_dir.absolute()).items():
        click.echo(f"export {name}={shlex.quote(value)}")


@local.command("stop-member")
@base_dir_option
@click.argument("name")
@click.option("--kill", is_flag=True, help="SIGKILL Patroni and its postmaster (simulate a crash).")
def local_stop_member(base_dir: Path, name: str, kill: bool) -> None:
    """Stop one member (cleanly, or as a crash with --kill)."""
    members.stop_member(base_dir.absolute(), name, kill, progress)


@local.command("start-member")
@base_dir_option
@click.argument("name")
def local_start_member(base_dir: Path, name: str) -> None:
    """Start one stopped member again."""
    members.start_member(base_dir.absolute(), name, progress)


@local.command("stop-pooler")
@base_dir_option
@click.option("--kill", is_flag=True, help="SIGKILL (simulate a crash).")
@click.option(
    "--only",
    type=click.Choice(("pgbouncer", "watcher")),
    help="Stop only PgBouncer or only its watcher (default: both).",
)
def local_stop_pooler(base_dir: Path, kill: bool, only: str | None) -> None:
    """Stop the formation's PgBouncer and its watcher (`local up --pooler`)."""
    which = (only,) if only else ("watcher", "pgbouncer")
    local_pooler.stop_in(base_dir.absolute(), which, kill, progress)


@local.command("start-pooler")
@base_dir_option
def local_start_pooler(base_dir: Path) -> None:
    """Start the formation's watcher and PgBouncer again, whichever is not running."""
    local_pooler.start_in(base_dir.absolute(), progress)


@local.command("isolate")
@base_dir_option
@click.argument("name")
def local_isolate(base_dir: Path, name: str) -> None:
    """Cut one member off etcd, the other members and the coordinator (--network netns formations)."""
    members.set_member_connected(base_dir.absolute(), name, False, progress)


@local.command("heal")
@base_dir_option
@click.argument("name")
def local_heal(base_dir: Path, name: str) -> None:
    """Connect an isolated member again."""
    members.set_member_connected(base_dir.absolute(), name, True, progress)


def _member_table(reports: list[formation.MemberReport]) -> str:
    header = ("GROUP", "MEMBER", "PG PORT", "REST PORT", "PID", "ROLE", "STATE")
    rows = [
        (
            str(r.group),
            r.name,
            str(r.postgres_port),
            str(r.rest_port),
            str(r.pid or "-"),
            r.role or "-",
            r.state,
        )
        for r in reports
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    )


new_password_file_option = click.option(
    rotation.PASSWORD_FILE_OPTION,
    "password_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the new superuser password on its one line (mode 0600; never printed).",
)


@local.command("rotate-password")
@base_dir_option
@new_password_file_option
@click.option("--dry-run", is_flag=True, help="Show the plan without changing anything.")
@format_options
def local_rotate_password(base_dir: Path, password_file: Path, dry_run: bool, output_format: str) -> None:
    """Rotate the superuser password: every group (SQL), the secret, pgpass, every config; reload Patroni.

    Exit 1 if a running member could not be reloaded (reload it by hand), 2 if refused or failed.
    """
    new_password = rotation.read_password_file(password_file)
    result = password_rotation.rotate_password(base_dir.absolute(), new_password, dry_run)
    if output_format != formats.PRETTY:
        echo_document(result.as_dict(), output_format)
    else:
        for line in [group.describe() for group in result.groups] + result.files + result.members:
            click.echo(line)
    sys.exit(1 if result.unreloaded else 0)


@local.command("status")
@base_dir_option
@format_options
def local_status(base_dir: Path, output_format: str) -> None:
    """Show each member's process and Patroni role. Exit 1 if any member is down or a group lacks a leader."""
    state, reports = formation.status(base_dir.absolute())
    leaders = {r.group for r in reports if r.role in ("primary", "master")}
    healthy = (
        all(r.running and r.state == "running" for r in reports) and len(leaders) == state.layout.workers + 1
    )
    if output_format != formats.PRETTY:
        payload: dict[str, Any] = {
            "base_dir": state.layout.base_dir,
            "citus": state.citus,
            "healthy": healthy,
            "members": [r.as_dict() for r in reports],
        }
        echo_document(payload, output_format)
    else:
        click.echo(_member_table(reports))
        if state.citus == "standin":
            click.echo(formation.STANDIN_BANNER)
        click.echo("healthy" if healthy else "NOT healthy: a member is down or a group has no leader")
    sys.exit(0 if healthy else 1)


def formation_options(command: Callable[..., R]) -> Callable[..., R]:
    """Add -c / --dcs / --formation (and friends) and hand the command one resolved FormationAddress."""

    @wraps(command)
    def resolving(
        *args: Any,
        config_path: Path | None,
        dcs_url: str | None,
        formation_name: str | None,
        namespace: str,
        user: str,
        database: str,
        dcs_timeout: float,
        dcs_cacert: str | None,
        dcs_cert: str | None,
        dcs_key: str | None,
        dcs_user: str | None,
        dcs_password_file: str | None,
        **kwargs: Any,
    ) -> R:
        login = formation_target.DcsLogin(
            cacert=dcs_cacert,
            cert=dcs_cert,
            key=dcs_key,
            username=dcs_user,
            password_file=dcs_password_file,
            password=os.environ.get("PATRONI_ETCD3_PASSWORD"),
        )
        # An explicit --dcs with --formation wins over a -c that only came from PATRONI_CITUS_CONFIG
        # (the image sets it for its members; a sidecar of the same image names the DCS instead).
        source = click.get_current_context().get_parameter_source("config_path")
        if dcs_url and formation_name and source is click.core.ParameterSource.ENVIRONMENT:
            config_path = None
        address = formation_target.resolve_address(
            config_path,
            dcs_url,
            formation_name,
            login=login,
            namespace=namespace,
            user=user,
            database=database,
            dcs_timeout=dcs_timeout,
        )
        return command(*args, address=address, **kwargs)

    options = [
        click.option(
            "-c",
            "--config",
            "config_path",
            envvar="PATRONI_CITUS_CONFIG",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Any member's patroni.yml, as rendered by render-config [env PATRONI_CITUS_CONFIG].",
        ),
        click.option(
            "--dcs",
            "dcs_url",
            envvar="PATRONI_CITUS_DCS",
            help="The DCS (with --formation): http[s]://HOST:PORT[,...] for etcd3, "
            "zookeeper://HOST:PORT[,...] [env PATRONI_CITUS_DCS].",
        ),
        click.option(
            "--formation",
            "formation_name",
            envvar="PATRONI_CITUS_FORMATION",
            help="Formation name: scopes NAME-<group>, or built-in NAME [env PATRONI_CITUS_FORMATION].",
        ),
        click.option(
            "--namespace", default="/service/", show_default=True, help="Patroni namespace (with --dcs)."
        ),
        click.option(
            "--user",
            default="postgres",
            show_default=True,
            help="Superuser (with --dcs; password via libpq env).",
        ),
        click.option("--database", default="citus", show_default=True, help="Citus database (with --dcs)."),
        click.option(
            "--dcs-timeout",
            envvar="PATRONI_CITUS_DCS_TIMEOUT",
            type=click.FloatRange(min=1, max=300),
            default=5.0,
            show_default=True,
            help="Seconds to wait for the DCS before giving up (exit 2) [env PATRONI_CITUS_DCS_TIMEOUT].",
        ),
        click.option(
            "--dcs-cacert", envvar="PATRONI_ETCD3_CACERT", help="etcd CA file [env PATRONI_ETCD3_CACERT]."
        ),
        click.option(
            "--dcs-cert",
            envvar="PATRONI_ETCD3_CERT",
            help="etcd client certificate [env PATRONI_ETCD3_CERT].",
        ),
        click.option(
            "--dcs-key", envvar="PATRONI_ETCD3_KEY", help="etcd client key [env PATRONI_ETCD3_KEY]."
        ),
        click.option(
            "--dcs-user", envvar="PATRONI_ETCD3_USERNAME", help="etcd RBAC user [env PATRONI_ETCD3_USERNAME]."
        ),
        click.option(
            "--dcs-password-file",
            envvar="PATRONI_ETCD3_PASSWORD_FILE",
            help="File holding the etcd user's password [env PATRONI_ETCD3_PASSWORD_FILE, or "
            "PATRONI_ETCD3_PASSWORD].",
        ),
    ]
    wrapped = resolving
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


@cli.command("status")
@formation_options
@format_options
@click.option("--watch", type=click.FloatRange(min=0.5), help="Refresh every SECONDS until interrupted.")
@click.option(
    "--sync-grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds to let a metadata resync after a move finish before calling it drift.",
)
def status_command(
    address: FormationAddress,
    output_format: str,
    watch: float | None,
    sync_grace: float,
) -> None:
    """Every member as Patroni and Citus see it, and where they disagree.

    Exit 0 healthy, 1 drift or degraded, 2 DCS or coordinator unreachable.
    """
    if watch is None:
        result = status.collect(address, sync_grace, progress)
        _echo_status(result, output_format)
        sys.exit(result.exit_code)
    exit_code = 0
    stopping = threading.Event()  # SIGTERM, like Ctrl-C, ends the watch with the last round's code
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    while not stopping.is_set():
        # --watch outlives a DCS or coordinator blip, as `reconcile --every` does: the round says so.
        try:
            result = status.collect(address, sync_grace, progress)
            _echo_status(result, output_format, watching=True)
            exit_code = result.exit_code
        except PatroniCitusError as exc:
            exit_code = exc.exit_code
            at = datetime.datetime.now(datetime.UTC)
            if output_format != formats.PRETTY:
                stamp = formats.timestamp(at)
                document = {"checked_at": stamp, "error": str(exc), "exit_code": exit_code}
                echo_document(document, output_format, stream=True)
            else:
                click.echo(f"{at:%Y-%m-%d %H:%M:%S} UTC cannot read the formation, retrying: {exc}", err=True)
        try:
            if stopping.wait(watch):
                break
        except KeyboardInterrupt:
            break
        click.echo("")
    sys.exit(exit_code)


def _echo_status(result: status.StatusResult, output_format: str, watching: bool = False) -> None:
    if output_format != formats.PRETTY:
        # --watch: a JSON object a round (a blank line between), a YAML document a round (--- each)
        yaml_stream = watching and output_format == formats.YAML
        echo_document(status.as_json(result), output_format, stream=yaml_stream)
    else:
        click.echo(f"{result.checked_at:%Y-%m-%d %H:%M:%S} UTC")
        click.echo(status.as_table(result))


@cli.command("metrics")
@formation_options
@click.option(
    "--listen",
    default=metrics_http.DEFAULT_LISTEN,
    show_default=True,
    help="ADDR:PORT to serve /metrics and /health on ([::1]:PORT for IPv6; PORT 0: any free port).",
)
@click.option(
    "--callback-state",
    "callback_states",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"A member's {callback_state.STATE_FILE} (beside its patroni.yml; repeatable). "
    "With -c, that member's own is read too.",
)
@click.option(
    "--read-timeout",
    type=click.FloatRange(min=0.1, max=300),
    default=8.0,
    show_default=True,
    help="Seconds a scrape waits for the formation read before answering patroni_citus_up 0; "
    "keep it below Prometheus's scrape_timeout (default 10s).",
)
@click.option(
    "--web-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Prometheus exporter-toolkit style file: tls_server_config (cert_file, key_file) and "
    "basic_auth_users (NAME: bcrypt hash).",
)
@click.option(
    "--tls-cert-file", type=click.Path(dir_okay=False, path_type=Path), help="Serve HTTPS: certificate."
)
@click.option("--tls-key-file", type=click.Path(dir_okay=False, path_type=Path), help="Serve HTTPS: its key.")
@click.option("--basic-auth-user", help="Require this user (with --basic-auth-password-file).")
@click.option(
    "--basic-auth-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding --basic-auth-user's password on its one line (never printed).",
)
def metrics_command(
    address: FormationAddress,
    listen: str,
    callback_states: tuple[Path, ...],
    read_timeout: float,
    web_config: Path | None,
    tls_cert_file: Path | None,
    tls_key_file: Path | None,
    basic_auth_user: str | None,
    basic_auth_password_file: Path | None,
) -> None:
    """Serve the formation as Prometheus metrics; every scrape reads it as `status` does (docs/monitoring.md).

    /health answers without reading the DCS. SIGTERM or Ctrl-C stops it (exit 0).
    """
    metrics_http.parse_listen(listen)
    flags = (tls_cert_file, tls_key_file, basic_auth_user, basic_auth_password_file)
    if web_config is not None and any(flag is not None for flag in flags):
        raise ConfigurationError(
            "--web-config", str(web_config), "give it or the --tls-*/--basic-auth-* flags, not both"
        )
    if web_config is not None:
        web = metrics_http.load_web_config(web_config)
    else:
        web = metrics_http.flag_web_config(
            tls_cert_file, tls_key_file, basic_auth_user, basic_auth_password_file
        )
    paths = list(callback_states)
    config_path = click.get_current_context().params.get("config_path")
    if config_path is not None:
        paths.append(callback_state.state_path(Path(config_path)))
    paths = list(dict.fromkeys(path.absolute() for path in paths))
    registry, collector = metrics.make_registry(address, paths, read_timeout)
    server = metrics_http.make_server(
        listen, registry, web, "--tls-cert-file" if web_config is None else "--web-config"
    )
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    login = f", basic auth ({len(web.users)} user(s))" if web.users else ""
    progress(
        f"patroni-citus metrics: serving {server.url}/metrics (the formation is read on every scrape; "
        f"{len(paths)} callback state file(s)) and {server.url}/health{login}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        collector.close()


@cli.command("reconcile")
@formation_options
@click.option("--dry-run", is_flag=True, help="Print the changes without making them.")
@click.option(
    "--every",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="Keep running, reconciling again every SECONDS: a safety net beside the callbacks "
    "(e.g. a sidecar); prints only rounds that changed or failed; SIGTERM or Ctrl-C stops it (exit 0).",
)
@format_options
def reconcile_command(
    address: FormationAddress,
    dry_run: bool,
    every: float | None,
    output_format: str,
) -> None:
    """Point the coordinator's pg_dist_node at every group's current Patroni leader (idempotent)."""
    if every is None:
        changes = _reconcile_round(address, dry_run)
        if output_format != formats.PRETTY:
            echo_document({"dry_run": dry_run, "changes": changes}, output_format)
            return
        _echo_changes(changes, dry_run)
        if not changes:
            click.echo("nothing to change: every group's DCS config and pg_dist_node row are right")
        return
    # SIGTERM ends the loop between rounds, never inside one: a round interrupted anywhere (inside
    # Patroni's DCS client, say) could leave a lock held that the interpreter's exit then waits on.
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    progress(f"reconciling every {every:g}s; SIGTERM or Ctrl-C stops")
    try:
        while not stopping.is_set():
            _reconcile_round_reported(address, dry_run, output_format)
            stopping.wait(every)
    except KeyboardInterrupt:
        sys.exit(0)


def _reconcile_round(address: FormationAddress, dry_run: bool) -> list[str]:
    changes = convergence.reconcile_preload(address, dry_run)
    planned = convergence.reconcile(address, dry_run=dry_run)
    return changes + [change.describe() for change in planned]


def _echo_changes(changes: list[str], dry_run: bool) -> None:
    verb = "would" if dry_run else "did"
    for change in changes:
        click.echo(f"{verb}: {change}")


def _reconcile_round_reported(address: FormationAddress, dry_run: bool, output_format: str) -> None:
    """One round of --every: an unreachable DCS or coordinator is reported and retried next round."""
    now = datetime.datetime.now(datetime.UTC)
    at = now.strftime("%Y-%m-%d %H:%M:%S")
    try:
        changes, error = _reconcile_round(address, dry_run), None
    except PatroniCitusError as exc:
        changes, error = [], str(exc)
    if not changes and error is None:
        return
    if output_format != formats.PRETTY:  # one JSON object a line, or a YAML document each
        document = {"at": formats.timestamp(now), "dry_run": dry_run, "changes": changes}
        echo_document({**document, "error": error}, output_format, stream=True)
    elif error is not None:
        click.echo(f"{at} UTC failed, retrying: {error}", err=True)
    else:
        click.echo(f"{at} UTC")
        _echo_changes(changes, dry_run)


@cli.command("switchover")
@formation_options
@click.option(
    "--group",
    type=click.IntRange(min=0),
    required=True,
    help="Group to switch over: a worker group, or 0 (the coordinator, paused in its poolers).",
)
@click.option("--candidate", help="Member to promote (default: the replica with least lag).")
@click.option(
    "--timeout", type=click.FloatRange(min=5), default=60.0, show_default=True, help="Seconds to wait."
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="SECONDS",
    help="First wait up to SECONDS for a leader and a running replica to take over (progress on "
    "stderr), e.g. right after the formation started; default: refuse at once.",
)
@format_options
def switchover_command(
    address: FormationAddress,
    group: int,
    candidate: str | None,
    timeout: float,
    wait: float,
    output_format: str,
) -> None:
    """Planned switchover: client statements wait (on the coordinator, or group 0 in its poolers)."""
    if wait > 0:
        switchover.wait_for_candidate(address, group, candidate, wait, progress)
    result = switchover.switchover(address, group, candidate, progress, timeout)
    if output_format != formats.PRETTY:
        echo_document(dataclasses.asdict(result), output_format)


@cli.group()
def pooler() -> None:
    """A PgBouncer in front of the coordinator group: render its config, keep it on the primary."""


@pooler.command("render")
@click.option("--owner", help="OS user to own the written files (default: the caller).")
def pooler_render(owner: str | None) -> None:
    """Write pgbouncer.ini and its userlist (mode 0600) into CITUS_POOLER_CONFIG_DIR, from CITUS_POOLER_*.

    The include file with the target ([databases]) is the watcher's: `pooler watch` writes it.
    """
    settings = load_pooler_settings(os.environ)
    owner_ids = _owner_ids(owner)
    files = pooler_config.PoolerFiles(Path(settings.config_dir))
    for path in pooler_config.write_config(settings, files, owner_ids):
        progress(f"wrote {path} (mode 0600)")


@pooler.command("watch")
@formation_options
def pooler_watch_command(address: FormationAddress) -> None:
    """Keep this host's PgBouncer on the coordinator group's running primary (reads the DCS every 50 ms).

    Rewrites the include file and RELOADs/RECONNECTs PgBouncer when the primary changes; ends a pause
    once PgBouncer points at the next primary, or after CITUS_HOLD_TIMEOUT. With --dcs it asks the
    coordinators whether they are primary as CITUS_POOLER_CLIENT_USER. SIGTERM stops it (exit 0).
    """
    settings = load_pooler_settings(os.environ)
    host, port = settings.admin_address
    if not address.credentials.password:  # --dcs: probe the coordinators as the pooler's client login
        address = dataclasses.replace(address, credentials=settings.client)
    watcher = pooler_watch.Watcher(
        address=address,
        files=pooler_config.PoolerFiles(Path(settings.config_dir)),
        pooler=pgbouncer.PoolerLogin(Endpoint(host, port), settings.admin),
        database=settings.database,
        report=lambda line: click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True),
        judge=pooler_watch.PauseJudge(settings.hold_timeout),
    )
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    progress(f"watching for PgBouncer at {host}:{port}; SIGTERM or Ctrl-C stops")
    with contextlib.suppress(KeyboardInterrupt):
        pooler_watch.watch(watcher, lambda: stopping)


@cli.command("rotate-password")
@formation_options
@new_password_file_option
@click.option("--dry-run", is_flag=True, help="Show the plan without changing anything.")
@format_options
def rotate_password_command(
    address: FormationAddress, password_file: Path, dry_run: bool, output_format: str
) -> None:
    """Change the superuser password on every group's leader and in its pg_dist_authinfo (idempotent).

    Logs in with the current password (from -c, or libpq's with --dcs); refuses, changing nothing,
    unless every group has a running leader. Afterwards put the new password in every member's
    config and reload Patroni (see docs/security.md); `local rotate-password` does both.
    """
    new_password = rotation.read_password_file(password_file)
    groups = rotation.rotate_password(address, new_password, dry_run)
    if output_format != formats.PRETTY:
        echo_document({"dry_run": dry_run, "groups": [g.as_dict() for g in groups]}, output_format)
        return
    for group in groups:
        click.echo(group.describe())


@cli.command("drill")
@base_dir_option
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(drill.SCENARIOS),
    help="Scenario to run (repeatable; default: all).",
)
@click.option("--runs", type=click.IntRange(1, 50), default=3, show_default=True, help="Runs per scenario.")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write JSON here."
)
def drill_command(base_dir: Path, scenarios: tuple[str, ...], runs: int, json_path: Path | None) -> None:
    """Failover drills on a running local formation: kill or switch over primaries under a write load."""
    state = formation.status(base_dir.absolute())[0]
    results = {
        state.layout.mode: drill.run_drill(
            base_dir.absolute(), list(scenarios or drill.SCENARIOS), runs, progress
        )
    }
    click.echo(drill.format_table(results))
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2))
        progress(f"wrote {json_path}")


def main() -> None:
    cli(prog_name="patroni-citus")
