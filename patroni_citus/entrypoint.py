"""Container entrypoint logic: validate, render patroni.yml, then hand the process over to Patroni.

Patroni must become the process itself (exec), so `docker stop` signals reach it directly.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from patroni_citus.errors import ConfigurationError
from patroni_citus.settings import load_settings_with_consumed, typo_findings
from patroni_citus.template import default_scripts_dir, render_config, write_private_file


@dataclass(frozen=True)
class PatroniLaunch:
    """How to exec Patroni: its argv, and the environment it runs with (no passwords in repr)."""

    argv: list[str]
    environment: dict[str, str] = field(repr=False)


def patroni_environment(environ: Mapping[str, str], consumed: frozenset[str]) -> dict[str, str]:
    """The environment Patroni runs with: everything except the variables rendered into patroni.yml.

    Patroni would apply a consumed PATRONI_* variable again on top of the file, and keeping the
    passwords out keeps them out of /proc/*/environ. Everything else stays: Patroni's own variables
    the template does not render (PATRONI_LOG_LEVEL, PATRONI_ETCD3_KEY_PASSWORD, ...) are Patroni's.
    """
    return {name: value for name, value in environ.items() if name not in consumed}


def prepare(environ: Mapping[str, str], config_path: Path) -> PatroniLaunch:
    """Validate the settings, write patroni.yml (0600), say how to exec Patroni; on error write nothing."""
    settings, consumed = load_settings_with_consumed(environ)
    text = render_config(settings, config_path, default_scripts_dir())
    patroni = default_scripts_dir() / "patroni"
    executable = str(patroni) if patroni.exists() else shutil.which("patroni")
    if executable is None:
        raise ConfigurationError("PATH", environ.get("PATH"), "install patroni next to patroni-citus")
    try:
        write_private_file(config_path, text)
    except OSError as exc:
        raise ConfigurationError("--config", str(config_path), f"cannot write it ({exc.strerror})") from None
    return PatroniLaunch([executable, str(config_path)], patroni_environment(environ, consumed))


def exec_patroni(environ: Mapping[str, str], config_path: Path) -> None:
    """Render and exec Patroni; does not return."""
    launch = prepare(environ, config_path)
    for _error, warning in typo_findings(environ):
        if warning is not None:
            print(f"patroni-citus: warning: {warning}", file=sys.stderr)
    os.execve(launch.argv[0], launch.argv, launch.environment)  # noqa: S606 - a fixed argv, no shell
