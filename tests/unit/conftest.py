"""Shared fixtures for the pure-logic tests: a minimal valid environment as a plain mapping."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from patroni_citus import patroni_dcs
from patroni_citus.settings import Settings, load_settings
from patroni_citus.template import render_config

# Importing Patroni sets the umask to 0077 (patroni.file_perm); test modules import its types, so
# import it first the way the product does, leaving this process's umask alone.
patroni_dcs.import_patroni("etcd3")

SUPERUSER_PASSWORD = "super-Secret-pw-1"
REPLICATION_PASSWORD = "repl-Secret-pw-2"

#: The least an operator must set; everything else has a default.
BASE_ENV: Mapping[str, str] = {
    "PATRONI_SCOPE": "demo-1",
    "PATRONI_NAME": "member-1",
    "PATRONI_SUPERUSER_PASSWORD": SUPERUSER_PASSWORD,
    "PATRONI_REPLICATION_PASSWORD": REPLICATION_PASSWORD,
}

#: A worker with Citus enabled and every Citus setting away from its default.
WORKER_ENV: Mapping[str, str] = {
    **BASE_ENV,
    "CITUS_ENABLE": "true",
    "CITUS_ROLE": "worker",
    "CITUS_GROUP": "3",
    "CITUS_COORDINATOR_HOST": "coord-a,coord-b:6432,10.0.0.7",
    "CITUS_COORDINATOR_PORT": "5433",
    "CITUS_DATABASE": "app_db",
}

#: Prefixes of every variable the project reads; the CLI tests start from none of them set.
ENV_PREFIXES = ("CITUS_", "PATRONI_", "PG_")

FAKE_HOSTNAME = "member-host"


@pytest.fixture(autouse=True)
def fixed_hostname(monkeypatch: pytest.MonkeyPatch) -> str:
    """PATRONI_NAME and connect addresses default to the host name; make it the same everywhere."""
    monkeypatch.setattr("patroni_citus.settings.socket.gethostname", lambda: FAKE_HOSTNAME)
    return FAKE_HOSTNAME


@pytest.fixture
def base_env() -> dict[str, str]:
    """A fresh copy of the minimal valid environment (Citus disabled)."""
    return dict(BASE_ENV)


@pytest.fixture
def worker_env() -> dict[str, str]:
    """A fresh copy of an enabled worker's environment, every Citus setting away from its default."""
    return dict(WORKER_ENV)


@pytest.fixture
def secrets() -> tuple[str, str]:
    """The superuser and replication passwords of base_env, for checking they never leak."""
    return SUPERUSER_PASSWORD, REPLICATION_PASSWORD


@pytest.fixture
def render_to_file(tmp_path: Path) -> Callable[[Mapping[str, str]], tuple[Settings, Path]]:
    """Load settings from a mapping, render them, and write the result where --config will point."""

    def render(environ: Mapping[str, str]) -> tuple[Settings, Path]:
        settings = load_settings(environ)
        config_path = tmp_path / "patroni.yml"
        config_path.write_text(render_config(settings, config_path), encoding="utf-8")
        return settings, config_path

    return render


@pytest.fixture
def clean_process_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Remove every CITUS_*/PATRONI_*/PG_* variable, for code that reads os.environ itself (the CLI)."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    yield monkeypatch
