"""Each default is written once (the settings dataclass field), and docs/configuration.md says the same."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from patroni_citus.settings import (
    CitusSettings,
    DcsSettings,
    PatroniSettings,
    PoolerSettings,
    load_pooler_settings,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[2]
#: Every variable whose default is one value: where the loaded setting lives.
FIELDS: dict[str, tuple[type, str]] = {
    "CITUS_ENABLE": (CitusSettings, "enabled"),
    "CITUS_ROLE": (CitusSettings, "role"),
    "CITUS_COORDINATOR_PORT": (CitusSettings, "coordinator_port"),
    "CITUS_DATABASE": (CitusSettings, "database"),
    "CITUS_MAX_PREPARED_TRANSACTIONS": (CitusSettings, "max_prepared_transactions"),
    "CITUS_REGISTRATION_TIMEOUT": (CitusSettings, "registration_timeout"),
    "CITUS_HOLD_TIMEOUT": (CitusSettings, "hold_timeout"),
    "CITUS_SECONDARIES": (CitusSettings, "secondaries"),
    "CITUS_NODE_SSLMODE": (CitusSettings, "node_sslmode"),
    "CITUS_NODE_TCP_USER_TIMEOUT": (CitusSettings, "node_tcp_user_timeout"),
    "CITUS_POOLER_ADMIN_USER": (CitusSettings, "pooler_admin_user"),
    "CITUS_POOLER_CONFIG_DIR": (PoolerSettings, "config_dir"),
    "CITUS_POOLER_LISTEN": (PoolerSettings, "listen"),
    "CITUS_POOLER_POOL_MODE": (PoolerSettings, "pool_mode"),
    "CITUS_POOLER_MAX_CLIENT_CONN": (PoolerSettings, "max_client_conn"),
    "CITUS_POOLER_POOL_SIZE": (PoolerSettings, "pool_size"),
    "CITUS_POOLER_QUERY_WAIT_TIMEOUT": (PoolerSettings, "query_wait_timeout"),
    "CITUS_POOLER_SERVER_SSLMODE": (PoolerSettings, "server_sslmode"),
    "PATRONI_NAMESPACE": (PatroniSettings, "namespace"),
    "PATRONI_RESTAPI_LISTEN": (PatroniSettings, "restapi_listen"),
    "PATRONI_POSTGRESQL_LISTEN": (PatroniSettings, "postgres_listen"),
    "PATRONI_POSTGRESQL_DATA_DIR": (PatroniSettings, "data_dir"),
    "PATRONI_POSTGRESQL_PGPASS": (PatroniSettings, "pgpass"),
    "PATRONI_SYNCHRONOUS_MODE": (PatroniSettings, "synchronous_mode"),
    "PG_SOCKET_DIR": (PatroniSettings, "socket_dir"),
    "PG_ALLOWED_NETWORKS": (PatroniSettings, "allowed_networks"),
    "PG_HBA_HOSTSSL": (PatroniSettings, "hba_hostssl"),
    "PATRONI_ETCD3_HOSTS": (DcsSettings, "hosts"),
    "PATRONI_ETCD3_PROTOCOL": (DcsSettings, "protocol"),
}


def documented_defaults() -> dict[str, set[str]]:
    """Variable -> the first `value` of its Default column (every table of docs/configuration.md)."""
    found: dict[str, set[str]] = {}
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        row = re.match(r"\| `([A-Z0-9_]+)` \| `([^`]*)`", line)
        if row:
            found.setdefault(row.group(1), set()).add(row.group(2))
    return found


def shown(value: object) -> str:
    """A setting's value as the docs write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(part) for part in value)
    return str(value)


def field_default(model: type, name: str) -> object:
    (field,) = [f for f in dataclasses.fields(model) if f.name == name]
    return field.default


@pytest.fixture
def loaded(base_env: dict[str, str], tmp_path: Path) -> dict[type, object]:
    """What the loaders give with every variable above unset."""
    for name in ("admin", "client"):
        (tmp_path / name).write_text("pw\n")
    pooler_env = {
        "CITUS_POOLER_ADMIN_PASSWORD_FILE": str(tmp_path / "admin"),
        "CITUS_POOLER_CLIENT_PASSWORD_FILE": str(tmp_path / "client"),
    }
    settings = load_settings(base_env)
    return {
        CitusSettings: settings.citus,
        PatroniSettings: settings.patroni,
        DcsSettings: settings.patroni.dcs,
        PoolerSettings: load_pooler_settings(pooler_env),
    }


@pytest.mark.parametrize("variable", sorted(FIELDS))
def test_an_unset_variable_gives_its_fields_default(variable: str, loaded: dict[type, object]) -> None:
    model, attribute = FIELDS[variable]
    assert getattr(loaded[model], attribute) == field_default(model, attribute), variable


@pytest.mark.parametrize("variable", sorted(FIELDS))
def test_the_documented_default_is_the_fields_default(variable: str) -> None:
    model, attribute = FIELDS[variable]
    assert documented_defaults().get(variable) == {shown(field_default(model, attribute))}, variable


def test_the_base_environment_leaves_every_variable_above_unset(base_env: dict[str, str]) -> None:
    assert not set(FIELDS) & set(base_env)
