"""The CLI's one error edge: click classes under which every command's failure is one line and an exit code.

Every command and group of `patroni-citus` is built from these classes (the group hands them to
its subcommands), so no command can forget it: the project's errors keep their messages and
codes, anything else (an OSError on an output path, a driver error, Ctrl-C) becomes one line too,
never a traceback. With -f json|yaml the failure is also a document on stdout, so a script reads
one either way.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from typing import Any

import click

from patroni_citus import formats
from patroni_citus.errors import describe_failure

PREFIX = "patroni-citus: error: "


def report_failure(params: Mapping[str, Any], exc: BaseException) -> int:
    """Print exc as one line on stderr (and a document on stdout with -f json|yaml); its exit code."""
    lines, exit_code = describe_failure(exc)
    for line in lines:
        click.echo(f"{PREFIX}{line}", err=True)
    chosen = formats.requested(params)
    if chosen != formats.PRETTY:
        document = {"error": "\n".join(lines), "exit_code": exit_code}
        click.echo(formats.render(document, chosen))
    return exit_code


def _passes_through(exc: BaseException) -> bool:
    """click's own outcomes (usage errors, exits) and a closed pipe, which click's main handles quietly."""
    if isinstance(exc, click.exceptions.ClickException | click.exceptions.Exit | click.exceptions.Abort):
        return True
    return isinstance(exc, OSError) and exc.errno == errno.EPIPE


def invoke_reporting(invoke: Callable[[click.Context], Any], ctx: click.Context) -> Any:
    """invoke(ctx), every failure but click's own turned into report_failure's line and exit code."""
    try:
        return invoke(ctx)
    except (Exception, KeyboardInterrupt) as exc:
        if _passes_through(exc):
            raise
        ctx.exit(report_failure(ctx.params, exc))


class ReportingCommand(click.Command):
    """A command whose failures are one line on stderr and an exit code (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        return invoke_reporting(super().invoke, ctx)


class ReportingGroup(click.Group):
    """A group whose commands and subgroups are Reporting ones, so a new command is covered unasked."""

    command_class = ReportingCommand
    group_class = type  # subgroups are ReportingGroups too

    def invoke(self, ctx: click.Context) -> Any:
        return invoke_reporting(super().invoke, ctx)
