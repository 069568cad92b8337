"""Container entrypoint logic: validate, render patroni.yml, then hand the process over to Patroni.

Patroni must become the process itself (exec), so `docker stop` signals reach it directly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from patroni_citus.errors import ConfigurationError
from patroni_citus.settings import load_settings
from patroni_citus.template import default_scripts_dir, render_config, write_private_file

# Variables this project consumed; Patroni would otherwise re-read the PATRONI_* ones on top of the
# rendered file, and keeping passwords out of Patroni's environment keeps them out of /proc/*/environ.
_CONSUMED_PREFIXES = (
    "PATRONI_",
    "CITUS_",
    "PG_ALLOWED_NETWORKS",
    "PG_SHARED_PRELOAD_LIBRARIES",
    "PG_SOCKET_DIR",
)


def patroni_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment Patroni runs with: everything except the settings already rendered."""
    return {name: value for name, value in environ.items() if not name.startswith(_CONSUMED_PREFIXES)}


def prepare(environ: Mapping[str, str], config_path: Path) -> list[str]:
    """Validate the settings, write patroni.yml (0600), return Patroni's argv; on error write nothing."""
    settings = load_settings(environ)
    text = render_config(settings, config_path, default_scripts_dir())
    patroni = default_scripts_dir() / "patroni"
    executable = str(patroni) if patroni.exists() else shutil.which("patroni")
    if executable is None:
        raise ConfigurationError("PATH", environ.get("PATH"), "install patroni next to patroni-citus")
    write_private_file(config_path, text)
    return [executable, str(config_path)]


def exec_patroni(environ: Mapping[str, str], config_path: Path) -> None:
    """Render and exec Patroni; does not return."""
    argv = prepare(environ, config_path)
    os.execve(argv[0], argv, patroni_environment(environ))  # noqa: S606 - a fixed argv, no shell
