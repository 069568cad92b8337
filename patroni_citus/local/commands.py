"""The `local up` / `local down` command lines of a layout, as benchmarks and the test harness run them.

Running the real CLI (not formation.up in-process) exercises what an operator types; building its
arguments from a FormationLayout keeps one list of the options that describe a formation.
"""

from __future__ import annotations

from pathlib import Path

from patroni_citus.local.layout import FormationLayout
from patroni_citus.template import default_scripts_dir


def cli_path() -> str:
    """The installed `patroni-citus` beside this Python (the console script of this very package)."""
    return str(default_scripts_dir() / "patroni-citus")


def up_args(layout: FormationLayout, citus: str, pg_bindir: Path) -> list[str]:
    """`local up` arguments (without the program) that start exactly layout.

    >>> layout = FormationLayout("/f", workers=1, pooler=True)
    >>> up_args(layout, "standin", Path("/pg/bin"))[:8]
    ['local', 'up', '--base-dir', '/f', '--name', 'demo', '--workers', '1']
    >>> up_args(layout, "standin", Path("/pg/bin"))[-5:]
    ['--citus', 'standin', '--pg-bindir', '/pg/bin', '--pooler']
    """
    args = ["local", "up", "--base-dir", layout.base_dir, "--name", layout.name]
    args += ["--workers", str(layout.workers), "--members", str(layout.members)]
    args += ["--port-base", str(layout.port_base), "--mode", layout.mode, "--network", layout.network]
    args += ["--dcs", layout.dcs, "--citus", citus, "--pg-bindir", str(pg_bindir)]
    flags = {"--synchronous": layout.synchronous, "--tls": layout.tls, "--pooler": layout.pooler}
    return args + [flag for flag, wanted in flags.items() if wanted]


def down_args(base_dir: Path, purge: bool = True) -> list[str]:
    """`local down` arguments (without the program): stop everything, and by default remove base_dir."""
    return ["local", "down", "--base-dir", str(base_dir), *(["--purge"] if purge else [])]
