"""citus.node_conninfo: TLS for node-to-node connections (CITUS_NODE_SSLMODE) and a bound on how long
a vanished peer can stall one (CITUS_NODE_TCP_USER_TIMEOUT)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from patroni_citus.errors import ConfigurationError
from patroni_citus.member_config import load_member_config
from patroni_citus.settings import Settings, load_settings
from patroni_citus.template import render_config

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
VERIFYING = ("verify-ca", "verify-full")
ROOT_CERT = "/tls/ca.crt"


def dcs_parameters(environ: Mapping[str, str]) -> dict[str, Any]:
    document = yaml.safe_load(render_config(load_settings(environ), Path("/etc/patroni/patroni.yml")))
    parameters = document["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert isinstance(parameters, dict)
    return parameters


def test_unset_renders_citus_default_sslmode_and_a_tcp_user_timeout(worker_env: dict[str, str]) -> None:
    assert load_settings(worker_env).citus.node_sslmode == "require"
    assert dcs_parameters(worker_env)["citus.node_conninfo"] == "sslmode=require tcp_user_timeout=30000"


@pytest.mark.parametrize("mode", SSLMODES)
def test_each_sslmode_is_rendered_as_node_conninfo(worker_env: dict[str, str], mode: str) -> None:
    """A verifying mode needs the CA to verify against; it is rendered as sslrootcert."""
    root = {"CITUS_NODE_SSLROOTCERT": ROOT_CERT} if mode in VERIFYING else {}
    parameters = dcs_parameters(worker_env | {"CITUS_NODE_SSLMODE": mode} | root)
    rootcert = f" sslrootcert={ROOT_CERT}" if mode in VERIFYING else ""
    assert parameters["citus.node_conninfo"] == f"sslmode={mode}{rootcert} tcp_user_timeout=30000"


@pytest.mark.parametrize("mode", VERIFYING)
def test_a_verifying_sslmode_without_a_root_certificate_is_refused(
    worker_env: dict[str, str], mode: str
) -> None:
    with pytest.raises(ConfigurationError, match="CITUS_NODE_SSLMODE"):
        load_settings(worker_env | {"CITUS_NODE_SSLMODE": mode})


def test_pg_ssl_ca_file_is_the_default_root_certificate(worker_env: dict[str, str]) -> None:
    tls = {"PG_SSL_CERT_FILE": "/tls/s.crt", "PG_SSL_KEY_FILE": "/tls/s.key", "PG_SSL_CA_FILE": ROOT_CERT}
    parameters = dcs_parameters(worker_env | tls | {"CITUS_NODE_SSLMODE": "verify-full"})
    assert (
        parameters["citus.node_conninfo"]
        == f"sslmode=verify-full sslrootcert={ROOT_CERT} tcp_user_timeout=30000"
    )


def test_sslmode_is_case_and_space_insensitive(worker_env: dict[str, str]) -> None:
    assert (
        load_settings(
            worker_env | {"CITUS_NODE_SSLMODE": " Verify-Full ", "CITUS_NODE_SSLROOTCERT": ROOT_CERT}
        ).citus.node_sslmode
        == "verify-full"
    )


def test_blank_sslmode_means_unset(worker_env: dict[str, str]) -> None:
    assert load_settings(worker_env | {"CITUS_NODE_SSLMODE": "  "}).citus.node_sslmode == "require"


@pytest.mark.parametrize(
    ("value", "conninfo"),
    [
        ("0", "sslmode=require"),
        ("5000", "sslmode=require tcp_user_timeout=5000"),
        (" 1 ", "sslmode=require tcp_user_timeout=1"),
    ],
)
def test_tcp_user_timeout_is_rendered_or_left_out(
    worker_env: dict[str, str], value: str, conninfo: str
) -> None:
    assert (
        dcs_parameters(worker_env | {"CITUS_NODE_TCP_USER_TIMEOUT": value})["citus.node_conninfo"] == conninfo
    )


@pytest.mark.parametrize("value", ["-1", "30s", "3600001", "1e3", "30000 keepalives=0"])
def test_bad_tcp_user_timeout_refused_with_one_line(worker_env: dict[str, str], value: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(worker_env | {"CITUS_NODE_TCP_USER_TIMEOUT": value})
    message = str(refused.value)
    assert message.startswith("CITUS_NODE_TCP_USER_TIMEOUT=") and "\n" not in message


def test_disabled_citus_renders_no_node_conninfo(base_env: dict[str, str]) -> None:
    rendered = render_config(
        load_settings(base_env | {"CITUS_NODE_SSLMODE": "require"}), Path("/etc/patroni/patroni.yml")
    )
    assert "node_conninfo" not in rendered and "citus" not in rendered


@pytest.mark.parametrize(
    "value", ["required", "ssl", "true", "require' host=evil", "require sslcert=/x", "sslmode=require"]
)
def test_bad_sslmode_refused_with_one_line(worker_env: dict[str, str], value: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(worker_env | {"CITUS_NODE_SSLMODE": value})
    message = str(refused.value)
    assert message.startswith("CITUS_NODE_SSLMODE=") and "verify-full" in message
    assert "\n" not in message


def test_bad_sslmode_refused_even_when_citus_is_disabled(base_env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="CITUS_NODE_SSLMODE"):
        load_settings(base_env | {"CITUS_NODE_SSLMODE": "bogus"})


def test_sslmode_round_trips_through_member_config(
    worker_env: dict[str, str], render_to_file: Callable[[Mapping[str, str]], tuple[Settings, Path]]
) -> None:
    settings, config_path = render_to_file(worker_env | {"CITUS_NODE_SSLMODE": "require"})
    member = load_member_config(config_path)
    assert member.citus == settings.citus
    assert member.citus.node_sslmode == "require"


@pytest.mark.parametrize("timeout", ["0", "12345"])
def test_tcp_user_timeout_round_trips_through_member_config(
    worker_env: dict[str, str],
    render_to_file: Callable[[Mapping[str, str]], tuple[Settings, Path]],
    timeout: str,
) -> None:
    environ = worker_env | {
        "CITUS_NODE_SSLMODE": "verify-ca",
        "CITUS_NODE_SSLROOTCERT": ROOT_CERT,
        "CITUS_NODE_TCP_USER_TIMEOUT": timeout,
    }
    settings, config_path = render_to_file(environ)
    member = load_member_config(config_path)
    assert member.citus == settings.citus
    assert member.citus.node_tcp_user_timeout == int(timeout)
