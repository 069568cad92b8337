"""docs/configuration.md lists every environment variable settings.py reads, with what it allows."""

from __future__ import annotations

import re
from pathlib import Path

import patroni_citus.settings
from patroni_citus.settings import load_settings_with_consumed

ROOT = Path(__file__).resolve().parents[2]
#: Credentials are read by prefix (PATRONI_SUPERUSER -> _USERNAME / _PASSWORD / _PASSWORD_FILE), and
#: documented in one row that names the _USERNAME.
CREDENTIAL_SUFFIXES = ("_USERNAME", "_PASSWORD_FILE", "_PASSWORD")


def table_rows() -> list[str]:
    table = (ROOT / "docs" / "configuration.md").read_text()
    return [line for line in table.splitlines() if line.startswith("| `")]


def undocumented(names: set[str] | frozenset[str]) -> list[str]:
    rows = table_rows()

    def documented(name: str) -> bool:
        spellings = {f"`{name}`", f"`{name}_USERNAME`"} | {
            f"`{name.removesuffix(suffix)}_USERNAME`"
            for suffix in CREDENTIAL_SUFFIXES
            if name.endswith(suffix)
        }
        return any(spelling in row for row in rows for spelling in spellings)

    return sorted(name for name in names if not documented(name))


def test_every_variable_named_in_settings_is_in_the_configuration_table() -> None:
    source = Path(patroni_citus.settings.__file__).read_text()
    # A name ending in "_" is a prefix (PATRONI_ETCD3_), not a variable.
    names = set(re.findall(r'"((?:CITUS|PATRONI|PG)_[A-Z0-9_]*[A-Z0-9])"', source))
    assert len(names) > 20, names  # the pattern still finds the settings
    missing = undocumented(names)
    assert not missing, f"settings read but not in docs/configuration.md's tables: {missing}"


def test_every_variable_consumed_is_in_the_configuration_table() -> None:
    """Also the names settings.py builds (NAME_FILE), found by reading an environment with everything on."""
    environ = {
        "PATRONI_SCOPE": "demo-0",
        "PATRONI_SUPERUSER_PASSWORD": "x",
        "PATRONI_REPLICATION_PASSWORD": "y",
        "PATRONI_RESTAPI_PASSWORD": "z",
        "PATRONI_ETCD3_PROTOCOL": "https",
        "PATRONI_ETCD3_USERNAME": "patroni",
        "PATRONI_ETCD3_PASSWORD": "w",
        "PG_SSL_CERT_FILE": "/tls/server.crt",
        "PG_SSL_KEY_FILE": "/tls/server.key",
        "PG_SSL_CA_FILE": "/tls/ca.crt",
        "PG_HBA_HOSTSSL": "true",
        "CITUS_ENABLE": "true",
        "CITUS_ROLE": "worker",
        "CITUS_GROUP": "1",
        "CITUS_COORDINATOR_HOST": "coord-1",
        "CITUS_NODE_SSLMODE": "verify-full",
    }
    _, consumed = load_settings_with_consumed(environ)
    assert {"PATRONI_ETCD3_PASSWORD_FILE", "CITUS_NODE_SSLROOTCERT", "PG_HBA_HOSTSSL"} <= consumed
    missing = undocumented(consumed)
    assert not missing, f"settings consumed but not in docs/configuration.md's tables: {missing}"
