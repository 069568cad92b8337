"""A benchmark's formation: the options every benchmark shares, and `local up` ... always `local down`.

The benchmarks run as scripts (`python benchmarks/NAME.py`), so this sits beside them on sys.path.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from patroni_citus.local import commands, formation, pgtree
from patroni_citus.local.layout import FormationLayout


def add_formation_options(
    parser: argparse.ArgumentParser, workers: int, members: int, port_base: int
) -> None:
    """--workers, --members, --port-base (each benchmark's own defaults), --citus and --pg-bindir."""
    parser.add_argument("--workers", type=int, default=workers)
    parser.add_argument("--members", type=int, default=members, help="Patroni members per group")
    parser.add_argument("--port-base", type=int, default=port_base)
    parser.add_argument("--citus", choices=formation.CITUS_CHOICES, default="auto")
    parser.add_argument("--pg-bindir", default=os.environ.get("PATRONI_CITUS_PG_BINDIR"))


def postgres(args: argparse.Namespace) -> tuple[Path, str]:
    """The PostgreSQL bin directory and the Citus to run (auto: real where installed, else the stand-in)."""
    bindir = Path(args.pg_bindir) if args.pg_bindir else pgtree.find_system_bindir()
    if args.citus != "auto":
        return bindir, str(args.citus)
    return bindir, "real" if pgtree.citus_available(bindir) else "standin"


def new_base_dir(prefix: str) -> Path:
    """A fresh base directory the postgres OS user can traverse."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)  # noqa: S103 - the postgres OS user must traverse it
    return base


def _cli(args: list[str], check: bool) -> None:
    """The installed CLI, quiet: a benchmark prints its own table, not the formation's progress."""
    command = [commands.cli_path(), *args]
    subprocess.run(command, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def running_formation(
    args: argparse.Namespace, bindir: Path, citus: str, prefix: str, *extra: str
) -> Iterator[FormationLayout]:
    """args' formation, started through the real CLI (extra: more `local up` options), purged after."""
    base = new_base_dir(prefix)
    layout = FormationLayout(str(base), workers=args.workers, members=args.members, port_base=args.port_base)
    try:
        groups = f"1+{args.workers} groups x {args.members} members"
        print(f"starting a formation of {groups} (Citus: {citus}) ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        _cli([*commands.up_args(layout, citus, bindir), *extra], check=True)
        print(f"formation up in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
        yield layout
    finally:
        _cli(commands.down_args(base), check=False)
