"""CITUS_NODE_SSLMODE: Citus's node-to-node connections can be made to require TLS."""

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


def dcs_parameters(environ: Mapping[str, str]) -> dict[str, Any]:
    document = yaml.safe_load(render_config(load_settings(environ), Path("/etc/patroni/patroni.yml")))
    parameters = document["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert isinstance(parameters, dict)
    return parameters


def test_unset_leaves_citus_default(worker_env: dict[str, str]) -> None:
    assert load_settings(worker_env).citus.node_sslmode is None
    assert "citus.node_conninfo" not in dcs_parameters(worker_env)


@pytest.mark.parametrize("mode", SSLMODES)
def test_each_sslmode_is_rendered_as_node_conninfo(worker_env: dict[str, str], mode: str) -> None:
    parameters = dcs_parameters(worker_env | {"CITUS_NODE_SSLMODE": mode})
    assert parameters["citus.node_conninfo"] == f"sslmode={mode}"


def test_sslmode_is_case_and_space_insensitive(worker_env: dict[str, str]) -> None:
    assert (
        load_settings(worker_env | {"CITUS_NODE_SSLMODE": " Verify-Full "}).citus.node_sslmode
        == "verify-full"
    )


def test_blank_sslmode_means_unset(worker_env: dict[str, str]) -> None:
    assert load_settings(worker_env | {"CITUS_NODE_SSLMODE": "  "}).citus.node_sslmode is None


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
