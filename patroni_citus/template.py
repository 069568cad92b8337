"""Render patroni.yml from Settings and write it privately (it holds passwords)."""

from __future__ import annotations

import os
import shlex
import sysconfig
import tempfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import jinja2

from patroni_citus.dcs_config import libraries_citus_first
from patroni_citus.settings import Settings

TEMPLATE_NAME = "patroni.yml.j2"
CALLBACK_SCRIPTS = {
    "on_start": "patroni-citus-on-start",
    "on_role_change": "patroni-citus-on-role-change",
    "on_stop": "patroni-citus-on-stop",
    "before_stop": "patroni-citus-before-stop",
    "post_bootstrap": "patroni-citus-post-bootstrap",
}


@dataclass(frozen=True)
class CallbackCommands:
    """The command lines Patroni runs; each carries --config so the script finds its settings."""

    on_start: str
    on_role_change: str
    on_stop: str
    before_stop: str
    post_bootstrap: str


def preload_libraries(settings: Settings) -> list[str]:
    """The operator's libraries, with citus moved to the front when Citus is enabled.

    >>> from patroni_citus.settings import load_settings
    >>> env = {"PATRONI_SCOPE": "s", "PATRONI_SUPERUSER_PASSWORD": "x", "PATRONI_REPLICATION_PASSWORD": "y",
    ...        "PG_SHARED_PRELOAD_LIBRARIES": "pg_stat_statements,citus", "CITUS_ENABLE": "yes"}
    >>> preload_libraries(load_settings(env))
    ['citus', 'pg_stat_statements']
    """
    libraries = settings.patroni.shared_preload_libraries
    return libraries_citus_first(libraries) if settings.citus.enabled else list(libraries)


def default_scripts_dir() -> Path:
    """Where this installation's console scripts live, so Patroni needs no PATH to find them."""
    return Path(sysconfig.get_path("scripts"))


def callback_commands(config_path: Path, scripts_dir: Path | None) -> CallbackCommands:
    def command(action: str) -> str:
        script = CALLBACK_SCRIPTS[action]
        executable = str(scripts_dir / script) if scripts_dir is not None else script
        return shlex.join([executable, "--config", str(config_path)])

    return CallbackCommands(
        on_start=command("on_start"),
        on_role_change=command("on_role_change"),
        on_stop=command("on_stop"),
        before_stop=command("before_stop"),
        post_bootstrap=command("post_bootstrap"),
    )


def template_text() -> str:
    """patroni.yml.j2: the installed package's copy, else (a source checkout) the repository's top-level one.

    The repository keeps the one template at its top, beside pyproject.toml; setup.py copies it into
    the package when a wheel is built, so an installed package never depends on the checkout.
    """
    packaged = files("patroni_citus").joinpath(TEMPLATE_NAME)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parents[1] / TEMPLATE_NAME).read_text(encoding="utf-8")


def render_config(settings: Settings, config_path: Path, scripts_dir: Path | None = None) -> str:
    """The complete Patroni YAML for this member; no trace of Citus when it is disabled."""
    environment = jinja2.Environment(
        autoescape=False,  # noqa: S701 - YAML, not HTML; every value goes through tojson
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.from_string(template_text()).render(
        p=settings.patroni,
        c=settings.citus,
        preload_libraries=preload_libraries(settings),
        commands=callback_commands(config_path, scripts_dir),
    )


def write_private_file(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Write atomically with mode 0600 (and the given owner), so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o600)
        if owner is not None:
            os.chown(temporary, *owner)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
