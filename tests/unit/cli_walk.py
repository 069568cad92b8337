"""Every command path of the `patroni-citus` click group, walked, so tests cover a new command unasked."""

from __future__ import annotations

from collections.abc import Iterator

import click

from patroni_citus.cli import cli


def command_paths(command: click.Command = cli, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The group itself, then every subgroup and command below it, depth first, by name."""
    yield prefix
    if isinstance(command, click.Group):
        for name, subcommand in sorted(command.commands.items()):
            yield from command_paths(subcommand, (*prefix, name))


def command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def leaf_paths() -> list[tuple[str, ...]]:
    """The commands that do something (not the groups, which only list their commands)."""
    return [path for path in command_paths() if not isinstance(command_at(path), click.Group)]
