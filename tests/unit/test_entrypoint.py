"""Container entrypoint: render before exec, strip consumed settings, write nothing on bad input."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from patroni_citus.entrypoint import patroni_environment, prepare
from patroni_citus.errors import ConfigurationError

GOOD = {
    "PATRONI_SCOPE": "demo-1",
    "PATRONI_NAME": "w1",
    "PATRONI_SUPERUSER_PASSWORD": "s3cret-super",
    "PATRONI_REPLICATION_PASSWORD": "s3cret-repl",
    "CITUS_ENABLE": "true",
    "CITUS_ROLE": "worker",
    "CITUS_GROUP": "1",
    "PG_ALLOWED_NETWORKS": "10.0.0.0/8",
    "PATH": "/usr/bin:/bin",
    "HOME": "/var/lib/postgresql",
}


def test_prepare_renders_private_config_and_returns_patroni_argv(tmp_path: Path) -> None:
    target = tmp_path / "patroni.yml"
    argv = prepare(GOOD, target)
    assert argv[-1] == str(target) and argv[0].endswith("patroni")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    config = yaml.safe_load(target.read_text())
    assert config["tags"]["citus_group"] == 1
    assert config["postgresql"]["callbacks"]["on_start"].endswith(f"--config {target}")


def test_bad_setting_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "patroni.yml"
    with pytest.raises(ConfigurationError, match="CITUS_GROUP"):
        prepare({**GOOD, "CITUS_GROUP": "0"}, target)
    assert not target.exists()


def test_patroni_gets_no_consumed_settings_and_no_passwords() -> None:
    environment = patroni_environment(
        {**GOOD, "PATRONI_SUPERUSER_PASSWORD_FILE": "/run/secrets/x", "LANG": "C"}
    )
    assert environment == {"PATH": "/usr/bin:/bin", "HOME": "/var/lib/postgresql", "LANG": "C"}
    assert not any("s3cret" in value for value in environment.values())
