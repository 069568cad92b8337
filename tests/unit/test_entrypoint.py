"""Container entrypoint: render, then exec Patroni without the consumed settings; bad input writes nothing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from patroni_citus.entrypoint import prepare
from patroni_citus.errors import ConfigurationError

GOOD = {
    "PATRONI_SCOPE": "demo-1",
    "PATRONI_NAME": "w1",
    "PATRONI_SUPERUSER_PASSWORD": "s3cret-super",
    "PATRONI_REPLICATION_PASSWORD": "s3cret-repl",
    "CITUS_ENABLE": "true",
    "CITUS_ROLE": "worker",
    "CITUS_GROUP": "1",
    "CITUS_COORDINATOR_HOST": "coord-1,coord-2",
    "PG_ALLOWED_NETWORKS": "10.0.0.0/8",
    "PATH": "/usr/bin:/bin",
    "HOME": "/var/lib/postgresql",
}


def test_prepare_renders_private_config_and_returns_patroni_argv(tmp_path: Path) -> None:
    target = tmp_path / "patroni.yml"
    launch = prepare(GOOD, target)
    assert launch.argv[-1] == str(target) and launch.argv[0].endswith("patroni")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    config = yaml.safe_load(target.read_text())
    assert config["tags"]["citus_group"] == 1
    assert config["postgresql"]["callbacks"]["on_start"].endswith(f"--config {target}")


def test_bad_setting_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "patroni.yml"
    with pytest.raises(ConfigurationError, match="CITUS_GROUP"):
        prepare({**GOOD, "CITUS_GROUP": "0"}, target)
    assert not target.exists()


def test_patroni_gets_no_consumed_settings_and_no_passwords(tmp_path: Path) -> None:
    password_file = tmp_path / "superuser-password"
    password_file.write_text("s3cret-file\n", encoding="utf-8")
    environ = {**GOOD, "LANG": "C", "PATRONI_SUPERUSER_PASSWORD_FILE": str(password_file)}
    del environ["PATRONI_SUPERUSER_PASSWORD"]
    environment = prepare(environ, tmp_path / "patroni.yml").environment
    assert environment == {"PATH": "/usr/bin:/bin", "HOME": "/var/lib/postgresql", "LANG": "C"}


#: Patroni's own variables the template does not render, and others that are none of ours.
NOT_CONSUMED = {
    "PATRONI_LOG_LEVEL": "DEBUG",
    "PATRONI_LOG_DIR": "/var/log/patroni",
    "PATRONI_ETCD3_KEY_PASSWORD": "s3cret-keypass",
    "PATRONI_RESTAPI_CERTFILE": "/tls/api.crt",
    "PATRONI_CITUS_TEST_CITUS": "standin",
    "CITUS_SOMETHING_ELSE": "x",
    "PG_OTHER": "y",
    "FOO": "bar",
}
#: Every password the settings read, each under its own name.
CONSUMED_SECRETS = {
    "PATRONI_SUPERUSER_PASSWORD": "s3cret-super",
    "PATRONI_REPLICATION_PASSWORD": "s3cret-repl",
    "PATRONI_RESTAPI_PASSWORD": "s3cret-api",
    "PATRONI_ETCD3_PASSWORD": "s3cret-etcd",
}
DCS_TLS = {
    "PATRONI_ETCD3_USERNAME": "patroni",
    "PATRONI_ETCD3_HOSTS": "etcd-1:2379",
    "PATRONI_ETCD3_PROTOCOL": "https",
    "PATRONI_ETCD3_CACERT": "/tls/ca.crt",
    "PATRONI_ETCD3_CERT": "/tls/client.crt",
    "PATRONI_ETCD3_KEY": "/tls/client.key",
    "PG_SSL_CERT_FILE": "/tls/server.crt",
    "PG_SSL_KEY_FILE": "/tls/server.key",
    "PG_SSL_CA_FILE": "/tls/ca.crt",
    "PG_HBA_HOSTSSL": "true",
    "CITUS_NODE_SSLMODE": "verify-full",
}


@pytest.fixture
def patroni_env(tmp_path: Path) -> dict[str, str]:
    environ = GOOD | NOT_CONSUMED | CONSUMED_SECRETS | DCS_TLS
    return prepare(environ, tmp_path / "patroni.yml").environment


@pytest.mark.parametrize("name", NOT_CONSUMED)
def test_what_the_settings_did_not_consume_stays(patroni_env: dict[str, str], name: str) -> None:
    assert patroni_env[name] == NOT_CONSUMED[name]


@pytest.mark.parametrize(
    "name", [*CONSUMED_SECRETS, *DCS_TLS, *(n for n in GOOD if n not in ("PATH", "HOME"))]
)
def test_what_the_settings_consumed_is_gone(patroni_env: dict[str, str], name: str) -> None:
    assert name not in patroni_env


def test_no_consumed_secret_reaches_patroni(patroni_env: dict[str, str]) -> None:
    shown = repr(patroni_env)
    assert not [secret for secret in CONSUMED_SECRETS.values() if secret in shown]


@pytest.mark.parametrize("name", ["PATRONI_CITUS_GROUP", "PATRONI_CITUS_DATABASE"])
def test_builtin_citus_variables_stay_when_citus_is_disabled(tmp_path: Path, name: str) -> None:
    environ = {**GOOD, "CITUS_ENABLE": "false", name: "1" if name.endswith("GROUP") else "citus"}
    environment = prepare(environ, tmp_path / "patroni.yml").environment
    assert environment[name] == environ[name]
    assert "CITUS_ENABLE" not in environment


def test_zookeeper_leaves_no_etcd3_section_for_patroni_to_find(tmp_path: Path) -> None:
    environ = {
        **GOOD,
        "PATRONI_ZOOKEEPER_HOSTS": "zk-1:2181",
        "PATRONI_ETCD3_HOSTS": "",
        "PATRONI_ZOOKEEPER_USE_SSL": "1",
    }
    target = tmp_path / "patroni.yml"
    environment = prepare(environ, target).environment
    # A blank PATRONI_ETCD3_HOSTS would still make Patroni an etcd3 section; ZooKeeper's options are its own.
    assert "PATRONI_ETCD3_HOSTS" not in environment and "PATRONI_ZOOKEEPER_HOSTS" not in environment
    assert environment["PATRONI_ZOOKEEPER_USE_SSL"] == "1"
    config = yaml.safe_load(target.read_text())
    assert config["zookeeper"] == {"hosts": ["zk-1:2181"]} and "etcd3" not in config


def test_the_launch_repr_shows_no_password(tmp_path: Path) -> None:
    launch = prepare(GOOD | CONSUMED_SECRETS | DCS_TLS | NOT_CONSUMED, tmp_path / "patroni.yml")
    assert "s3cret" not in repr(launch)
