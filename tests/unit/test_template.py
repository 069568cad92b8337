"""The rendered patroni.yml: valid YAML, Citus wired only when enabled, no injection, private file."""

from __future__ import annotations

import os
import shlex
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from patroni_citus.errors import ConfigurationError
from patroni_citus.local.pgtree import PgTreeError, find_system_bindir
from patroni_citus.member_config import load_member_config
from patroni_citus.settings import Settings, load_settings
from patroni_citus.template import (
    CALLBACK_SCRIPTS,
    TEMPLATE_NAME,
    callback_commands,
    default_scripts_dir,
    preload_libraries,
    render_config,
    template_text,
    write_private_file,
)

CONFIG_PATH = Path("/etc/patroni/patroni.yml")
ISSUE_TAGS = (
    "citus_role",
    "citus_group",
    "citus_database",
    "citus_coordinator_host",
    "citus_coordinator_port",
)
TOP_LEVEL_KEYS = {"scope", "namespace", "name", "restapi", "etcd3", "bootstrap", "postgresql"}

RenderToFile = Callable[[Mapping[str, str]], tuple[Settings, Path]]


def render(
    environ: Mapping[str, str], config_path: Path = CONFIG_PATH, scripts_dir: Path | None = None
) -> str:
    return render_config(load_settings(environ), config_path, scripts_dir)


def parsed(environ: Mapping[str, str], **kwargs: Any) -> dict[str, Any]:
    document = yaml.safe_load(render(environ, **kwargs))
    assert isinstance(document, dict)
    return document


def dcs_parameters(document: dict[str, Any]) -> dict[str, Any]:
    parameters = document["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert isinstance(parameters, dict)
    return parameters


# --------------------------------------------------------------------------------------------------
# Shape
# --------------------------------------------------------------------------------------------------


def test_disabled_config_parses_into_a_complete_patroni_config(base_env: dict[str, str]) -> None:
    document = parsed(base_env)
    assert set(document) == TOP_LEVEL_KEYS
    assert document["scope"] == "demo-1"
    assert document["name"] == "member-1"
    assert document["etcd3"] == {"hosts": ["127.0.0.1:2379"]}
    assert document["bootstrap"]["dcs"]["ttl"] == 30
    assert document["bootstrap"]["dcs"]["synchronous_mode"] is False
    postgresql = document["postgresql"]
    assert postgresql["authentication"]["superuser"] == {
        "username": "postgres",
        "password": base_env["PATRONI_SUPERUSER_PASSWORD"],
    }
    assert postgresql["authentication"]["replication"] == {
        "username": "replicator",
        "password": base_env["PATRONI_REPLICATION_PASSWORD"],
    }
    assert "host replication replicator samenet scram-sha-256" in postgresql["pg_hba"]
    assert "restapi" in document and "authentication" not in document["restapi"]


def test_enabled_config_parses_and_has_the_citus_parts(worker_env: dict[str, str]) -> None:
    document = parsed(worker_env)
    assert set(document) == TOP_LEVEL_KEYS | {"tags"}
    assert dcs_parameters(document)["shared_preload_libraries"] == "citus"
    assert dcs_parameters(document)["max_prepared_transactions"] == 200
    assert set(document["postgresql"]["callbacks"]) == {"on_start", "on_role_change", "on_stop"}
    assert "before_stop" in document["postgresql"]
    assert "post_bootstrap" in document["bootstrap"]
    tags = document["tags"]
    assert {name: tags.get(name) for name in ISSUE_TAGS} == {
        "citus_role": "worker",
        "citus_group": 3,
        "citus_database": "app_db",
        "citus_coordinator_host": "coord-a,coord-b:6432,10.0.0.7",
        "citus_coordinator_port": 5433,
    }
    assert all(name.startswith("citus_") for name in tags), tags
    assert tags["citus_secondary"] is True  # by default a replica is a Citus secondary, as in Patroni's mode
    assert parsed(worker_env | {"CITUS_SECONDARIES": "no"})["tags"]["citus_secondary"] is False


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"PATRONI_ETCD3_HOSTS": "e1:2379,e2:2380"}, ["e1:2379", "e2:2380"]),
        ({"PATRONI_ETCD3_HOSTS": "[fd00::1]:2379"}, ["[fd00::1]:2379"]),
    ],
)
def test_etcd_hosts_render_as_a_list(
    base_env: dict[str, str], overrides: dict[str, str], expected: list[str]
) -> None:
    assert parsed(base_env | overrides)["etcd3"]["hosts"] == expected


def test_other_settings_reach_the_config(base_env: dict[str, str]) -> None:
    base_env |= {
        "PATRONI_NAMESPACE": "/formations/",
        "PATRONI_RESTAPI_LISTEN": "10.0.0.5:8009",
        "PATRONI_RESTAPI_USERNAME": "api",
        "PATRONI_RESTAPI_PASSWORD": "api-pw",
        "PATRONI_POSTGRESQL_LISTEN": "10.0.0.5:5433",
        "PATRONI_POSTGRESQL_DATA_DIR": "/srv/pg/data",
        "PATRONI_POSTGRESQL_BIN_DIR": "/usr/lib/postgresql/15/bin",
        "PATRONI_POSTGRESQL_PGPASS": "/srv/pg/pgpass",
        "PG_SOCKET_DIR": "/srv/pg/run",
        "PG_ALLOWED_NETWORKS": "10.0.0.0/8,samehost",
        "PATRONI_TTL": "40",
        "PATRONI_LOOP_WAIT": "5",
        "PATRONI_RETRY_TIMEOUT": "15",
        "PATRONI_SYNCHRONOUS_MODE": "on",
    }
    document = parsed(base_env)
    assert document["namespace"] == "/formations/"
    assert document["restapi"] == {
        "listen": "10.0.0.5:8009",
        "connect_address": "10.0.0.5:8009",
        "authentication": {"username": "api", "password": "api-pw"},
    }
    postgresql = document["postgresql"]
    assert postgresql["listen"] == postgresql["connect_address"] == "10.0.0.5:5433"
    assert postgresql["data_dir"] == "/srv/pg/data"
    assert postgresql["bin_dir"] == "/usr/lib/postgresql/15/bin"
    assert postgresql["pgpass"] == "/srv/pg/pgpass"
    assert postgresql["parameters"]["unix_socket_directories"] == "/srv/pg/run"
    assert postgresql["pg_hba"][-4:] == [
        "host replication replicator 10.0.0.0/8 scram-sha-256",
        "host all all 10.0.0.0/8 scram-sha-256",
        "host replication replicator samehost scram-sha-256",
        "host all all samehost scram-sha-256",
    ]
    dcs = document["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"], dcs["synchronous_mode"]) == (40, 5, 15, True)


# --------------------------------------------------------------------------------------------------
# The DCS section, PostgreSQL's TLS and hostssl
# --------------------------------------------------------------------------------------------------

ETCD3_TLS_AND_USER = {
    "PATRONI_ETCD3_HOSTS": "e1:2379,e2:2379",
    "PATRONI_ETCD3_PROTOCOL": "https",
    "PATRONI_ETCD3_CACERT": "/tls/etcd-ca.crt",
    "PATRONI_ETCD3_CERT": "/tls/etcd-client.crt",
    "PATRONI_ETCD3_KEY": "/tls/etcd-client.key",
    "PATRONI_ETCD3_USERNAME": "patroni",
    "PATRONI_ETCD3_PASSWORD": "etcd-Secret-pw",
}
SERVER_TLS = {"PG_SSL_CERT_FILE": "/tls/server.crt", "PG_SSL_KEY_FILE": "/tls/server.key"}


def test_etcd3_with_tls_and_a_user_renders_patronis_own_keys(base_env: dict[str, str]) -> None:
    document = parsed(base_env | ETCD3_TLS_AND_USER)
    assert document["etcd3"] == {
        "hosts": ["e1:2379", "e2:2379"],
        "protocol": "https",
        "cacert": "/tls/etcd-ca.crt",
        "cert": "/tls/etcd-client.crt",
        "key": "/tls/etcd-client.key",
        "username": "patroni",
        "password": "etcd-Secret-pw",
    }
    assert set(document) == TOP_LEVEL_KEYS


@pytest.mark.parametrize("overrides", [{}, ETCD3_TLS_AND_USER, {"PATRONI_ZOOKEEPER_HOSTS": "zk-1:2181"}])
def test_the_dcs_section_is_the_settings_patroni_section(
    base_env: dict[str, str], overrides: dict[str, str]
) -> None:
    settings = load_settings(base_env | overrides)
    document = yaml.safe_load(render_config(settings, CONFIG_PATH))
    section = settings.patroni.dcs.patroni_section()
    assert {key: document[key] for key in section} == section


def test_zookeeper_renders_a_zookeeper_section_and_no_etcd3(base_env: dict[str, str]) -> None:
    document = parsed(base_env | {"PATRONI_ZOOKEEPER_HOSTS": "zk-1:2181,zk-2:2181"})
    assert document["zookeeper"] == {"hosts": ["zk-1:2181", "zk-2:2181"]}
    assert set(document) == TOP_LEVEL_KEYS - {"etcd3"} | {"zookeeper"}


@pytest.mark.parametrize("ca_file", [None, "/tls/ca.crt"])
def test_server_tls_is_rendered_in_the_members_own_parameters(
    base_env: dict[str, str], ca_file: str | None
) -> None:
    environ = base_env | SERVER_TLS | ({} if ca_file is None else {"PG_SSL_CA_FILE": ca_file})
    document = parsed(environ)
    expected = {"ssl": "on", "ssl_cert_file": "/tls/server.crt", "ssl_key_file": "/tls/server.key"}
    if ca_file is not None:
        expected["ssl_ca_file"] = ca_file
    parameters = document["postgresql"]["parameters"]
    assert parameters == {"unix_socket_directories": "/var/run/postgresql", **expected}
    assert not expected.keys() & dcs_parameters(document).keys()  # member-local, not bootstrap.dcs


def test_no_tls_renders_no_ssl_parameters(base_env: dict[str, str]) -> None:
    assert parsed(base_env)["postgresql"]["parameters"] == {"unix_socket_directories": "/var/run/postgresql"}


def test_hostile_tls_paths_stay_one_string(base_env: dict[str, str]) -> None:
    hostile = {
        "PG_SSL_CERT_FILE": "/tls/x: {y: 1} #c",
        "PG_SSL_KEY_FILE": "/tls/'k' [1]",
        "PG_SSL_CA_FILE": "/&a *a",
    }
    parameters = parsed(base_env | hostile)["postgresql"]["parameters"]
    assert (parameters["ssl_cert_file"], parameters["ssl_key_file"], parameters["ssl_ca_file"]) == tuple(
        hostile.values()
    )


LOCAL_AND_LOOPBACK_HBA = [
    "local all all scram-sha-256",
    "host all all 127.0.0.1/32 scram-sha-256",
    "host all all ::1/128 scram-sha-256",
    "host replication replicator 127.0.0.1/32 scram-sha-256",
]


@pytest.mark.parametrize(("hostssl", "connection_type"), [("true", "hostssl"), ("false", "host")])
def test_hostssl_applies_to_the_allowed_networks_only(
    base_env: dict[str, str], hostssl: str, connection_type: str
) -> None:
    environ = base_env | SERVER_TLS | {"PG_HBA_HOSTSSL": hostssl, "PG_ALLOWED_NETWORKS": "10.0.0.0/8,samenet"}
    assert parsed(environ)["postgresql"]["pg_hba"] == [
        *LOCAL_AND_LOOPBACK_HBA,
        f"{connection_type} replication replicator 10.0.0.0/8 scram-sha-256",
        f"{connection_type} all all 10.0.0.0/8 scram-sha-256",
        f"{connection_type} replication replicator samenet scram-sha-256",
        f"{connection_type} all all samenet scram-sha-256",
    ]


@pytest.mark.parametrize(
    ("overrides", "conninfo"),
    [
        ({"CITUS_NODE_SSLROOTCERT": "/tls/nodes-ca.crt"}, "sslmode=require sslrootcert=/tls/nodes-ca.crt"),
        (
            {"CITUS_NODE_SSLMODE": "verify-full", "CITUS_NODE_SSLROOTCERT": "/tls/nodes-ca.crt"},
            "sslmode=verify-full sslrootcert=/tls/nodes-ca.crt",
        ),
        (
            {"CITUS_NODE_SSLMODE": "verify-ca", **SERVER_TLS, "PG_SSL_CA_FILE": "/tls/ca.crt"},
            "sslmode=verify-ca sslrootcert=/tls/ca.crt",
        ),
    ],
)
def test_node_conninfo_carries_the_root_certificate(
    worker_env: dict[str, str], overrides: dict[str, str], conninfo: str
) -> None:
    parameters = dcs_parameters(parsed(worker_env | overrides))
    assert parameters["citus.node_conninfo"] == f"{conninfo} tcp_user_timeout=30000"


# --------------------------------------------------------------------------------------------------
# Patroni itself accepts the rendered file (`patroni --validate-config`)
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def reachable_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections: Patroni's validator connects to every DCS host."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def patroni_validation(config_path: Path) -> subprocess.CompletedProcess[str]:
    patroni = default_scripts_dir() / "patroni"
    # A clean environment: Patroni would apply any PATRONI_* variable on top of the file.
    return subprocess.run(
        [str(patroni), "--validate-config", "--ignore-listen-port", str(config_path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"PATRONI_ETCD3_HOSTS": "127.0.0.1:{port}"}, id="etcd3"),
        pytest.param(
            {
                **ETCD3_TLS_AND_USER,
                "PATRONI_ETCD3_HOSTS": "127.0.0.1:{port}",
                **SERVER_TLS,
                "PG_SSL_CA_FILE": "/tls/ca.crt",
                "PG_HBA_HOSTSSL": "true",
                "CITUS_NODE_SSLMODE": "verify-full",
            },
            id="etcd3-tls-user-server-tls-hostssl",
        ),
        pytest.param({"PATRONI_ZOOKEEPER_HOSTS": "127.0.0.1:{port}"}, id="zookeeper"),
    ],
)
@pytest.mark.parametrize("citus_enable", ["false", "true"])
def test_patroni_accepts_the_rendered_file(
    worker_env: dict[str, str],
    tmp_path: Path,
    reachable_port: int,
    overrides: dict[str, str],
    citus_enable: str,
) -> None:
    try:
        bin_dir = find_system_bindir()
    except PgTreeError as missing:
        pytest.skip(f"Patroni's validator checks the PostgreSQL binaries: {missing}")
    environ = worker_env | {key: value.format(port=reachable_port) for key, value in overrides.items()}
    environ |= {
        "CITUS_ENABLE": citus_enable,
        "PATRONI_POSTGRESQL_BIN_DIR": str(bin_dir),
        "PATRONI_POSTGRESQL_DATA_DIR": str(tmp_path / "data"),
        "PATRONI_POSTGRESQL_CONNECT_ADDRESS": "pg-1:5432",  # the validator refuses loopback here
    }
    config_path = tmp_path / "patroni.yml"
    write_private_file(config_path, render_config(load_settings(environ), config_path, default_scripts_dir()))
    validation = patroni_validation(config_path)
    assert validation.returncode == 0, validation.stdout + validation.stderr


def test_patroni_validation_would_catch_an_unreachable_dcs(base_env: dict[str, str], tmp_path: Path) -> None:
    """The check above is not vacuous: Patroni's validator refuses what it cannot use."""
    try:
        bin_dir = find_system_bindir()
    except PgTreeError as missing:
        pytest.skip(f"Patroni's validator checks the PostgreSQL binaries: {missing}")
    with socket.create_server(("127.0.0.1", 0)) as server:
        closed_port = server.getsockname()[1]
    environ = base_env | {
        "PATRONI_ZOOKEEPER_HOSTS": f"127.0.0.1:{closed_port}",
        "PATRONI_POSTGRESQL_BIN_DIR": str(bin_dir),
        "PATRONI_POSTGRESQL_DATA_DIR": str(tmp_path / "data"),
        "PATRONI_POSTGRESQL_CONNECT_ADDRESS": "pg-1:5432",
    }
    config_path = tmp_path / "patroni.yml"
    write_private_file(config_path, render_config(load_settings(environ), config_path))
    validation = patroni_validation(config_path)
    assert validation.returncode != 0
    assert "is not reachable" in validation.stdout + validation.stderr


# --------------------------------------------------------------------------------------------------
# shared_preload_libraries
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("libraries", "expected"),
    [
        ("", "citus"),
        ("citus", "citus"),
        ("pg_stat_statements", "citus,pg_stat_statements"),
        ("pg_stat_statements,citus,auto_explain", "citus,pg_stat_statements,auto_explain"),
        ("auto_explain,pg_stat_statements", "citus,auto_explain,pg_stat_statements"),
        ("a,b,a,citus,citus,b", "citus,a,b"),
        (" pg_cron , , citus ", "citus,pg_cron"),
    ],
)
def test_citus_comes_first_and_the_others_stay_in_order(
    base_env: dict[str, str], libraries: str, expected: str
) -> None:
    environ = base_env | {"CITUS_ENABLE": "true", "PG_SHARED_PRELOAD_LIBRARIES": libraries}
    assert ",".join(preload_libraries(load_settings(environ))) == expected
    assert dcs_parameters(parsed(environ))["shared_preload_libraries"] == expected


@pytest.mark.parametrize(
    ("libraries", "expected"),
    [("", None), ("pg_stat_statements", "pg_stat_statements"), ("b,a,b", "b,a")],
)
def test_disabled_keeps_the_operators_libraries(
    base_env: dict[str, str], libraries: str, expected: str | None
) -> None:
    parameters = dcs_parameters(parsed(base_env | {"PG_SHARED_PRELOAD_LIBRARIES": libraries}))
    assert parameters.get("shared_preload_libraries") == expected


@pytest.mark.parametrize("value", ["200", "64", "1000"])
def test_max_prepared_transactions_is_set_when_enabled(base_env: dict[str, str], value: str) -> None:
    environ = base_env | {"CITUS_ENABLE": "1", "CITUS_MAX_PREPARED_TRANSACTIONS": value}
    assert dcs_parameters(parsed(environ))["max_prepared_transactions"] == int(value)


# --------------------------------------------------------------------------------------------------
# Disabled: no trace of Citus
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"CITUS_ENABLE": "false"},
        {"CITUS_ENABLE": "no", "CITUS_ROLE": "worker", "CITUS_GROUP": "4", "CITUS_DATABASE": "appdb"},
        {"CITUS_COORDINATOR_HOST": "coord-1,coord-2", "CITUS_COORDINATOR_PORT": "6000"},
        {"CITUS_MAX_PREPARED_TRANSACTIONS": "500"},
        {"PG_SHARED_PRELOAD_LIBRARIES": "pg_stat_statements,auto_explain"},
        {"PATRONI_RESTAPI_PASSWORD": "api-pw", "PATRONI_SYNCHRONOUS_MODE": "true"},
    ],
)
@pytest.mark.parametrize("scripts_dir", [None, Path("/opt/venv/bin")])
def test_disabled_config_has_no_trace_of_citus(
    base_env: dict[str, str], overrides: dict[str, str], scripts_dir: Path | None
) -> None:
    text = render(base_env | overrides, CONFIG_PATH, scripts_dir)
    assert "citus" not in text.lower()
    document = yaml.safe_load(text)
    assert "tags" not in document
    assert "callbacks" not in document["postgresql"]
    assert "post_bootstrap" not in document["bootstrap"]
    assert "max_prepared_transactions" not in dcs_parameters(document)


# --------------------------------------------------------------------------------------------------
# Callbacks carry --config
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config_path",
    [
        Path("/etc/patroni/patroni.yml"),
        Path("/srv/my configs/patroni.yml"),
        Path('/srv/it\'s "quoted"/p.yml'),
        Path("/srv/$HOME;rm -rf/`x`.yml"),
    ],
)
@pytest.mark.parametrize("scripts_dir", [None, Path("/opt/venv/bin"), Path("/opt/my venv/bin")])
def test_callbacks_carry_the_config_path(
    worker_env: dict[str, str], config_path: Path, scripts_dir: Path | None
) -> None:
    document = parsed(worker_env, config_path=config_path, scripts_dir=scripts_dir)
    commands = {
        "on_start": document["postgresql"]["callbacks"]["on_start"],
        "on_role_change": document["postgresql"]["callbacks"]["on_role_change"],
        "on_stop": document["postgresql"]["callbacks"]["on_stop"],
        "before_stop": document["postgresql"]["before_stop"],
        "post_bootstrap": document["bootstrap"]["post_bootstrap"],
    }
    assert set(commands) == set(CALLBACK_SCRIPTS)
    for action, command in commands.items():
        script = CALLBACK_SCRIPTS[action]
        executable = script if scripts_dir is None else str(scripts_dir / script)
        # Patroni runs shlex.split(command) + its own arguments.
        assert shlex.split(command) == [executable, "--config", str(config_path)]


def test_callback_commands_match_the_rendered_ones(worker_env: dict[str, str]) -> None:
    commands = callback_commands(CONFIG_PATH, Path("/opt/venv/bin"))
    document = parsed(worker_env, scripts_dir=Path("/opt/venv/bin"))
    assert document["postgresql"]["callbacks"] == {
        "on_start": commands.on_start,
        "on_role_change": commands.on_role_change,
        "on_stop": commands.on_stop,
    }
    assert document["postgresql"]["before_stop"] == commands.before_stop
    assert document["bootstrap"]["post_bootstrap"] == commands.post_bootstrap


def test_default_scripts_dir_holds_the_installed_callbacks() -> None:
    scripts = default_scripts_dir()
    assert scripts.is_absolute()
    for script in CALLBACK_SCRIPTS.values():
        assert (scripts / script).exists(), f"{script} is not installed in {scripts}"


# --------------------------------------------------------------------------------------------------
# Tags round-trip through member_config
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"CITUS_ENABLE": "true"},
        {"CITUS_ENABLE": "true", "CITUS_GROUP": "0", "CITUS_COORDINATOR_HOST": "c1:6432,[fd00::1]:7000,::1"},
        {
            "CITUS_ENABLE": "yes",
            "CITUS_ROLE": "WORKER",
            "CITUS_GROUP": " 12 ",
            "CITUS_COORDINATOR_HOST": " coord-1 , coord-2:6432 ",
            "CITUS_COORDINATOR_PORT": "6000",
            "CITUS_DATABASE": "App-DB",
            "CITUS_MAX_PREPARED_TRANSACTIONS": "500",
        },
        {"CITUS_ENABLE": "true", "CITUS_SECONDARIES": "false"},
    ],
)
def test_tags_round_trip_through_member_config(
    base_env: dict[str, str], render_to_file: RenderToFile, overrides: dict[str, str]
) -> None:
    settings, config_path = render_to_file(base_env | overrides)
    member = load_member_config(config_path)
    assert member.citus == settings.citus
    assert member.citus.enabled is True


def test_worker_round_trip(worker_env: dict[str, str], render_to_file: RenderToFile) -> None:
    settings, config_path = render_to_file(worker_env)
    member = load_member_config(config_path)
    assert member.citus == settings.citus
    assert member.citus.coordinator_endpoints() == [("coord-a", 5433), ("coord-b", 6432), ("10.0.0.7", 5433)]


def test_member_config_reads_the_rest_of_the_rendered_file(
    base_env: dict[str, str], render_to_file: RenderToFile
) -> None:
    base_env |= {
        "CITUS_ENABLE": "true",
        "PATRONI_RESTAPI_CONNECT_ADDRESS": "api-1:8009",
        "PATRONI_RESTAPI_PASSWORD": "api-pw",
        "PATRONI_POSTGRESQL_CONNECT_ADDRESS": "pg-1:5433",
        "PATRONI_ETCD3_HOSTS": "e1:2379,e2:2379",
        "PG_SOCKET_DIR": "/srv/run",
    }
    settings, config_path = render_to_file(base_env)
    member = load_member_config(config_path)
    assert (member.scope, member.name) == ("demo-1", "member-1")
    assert member.dcs.namespace == "/service/"
    assert member.dcs.sections == {"etcd3": {"hosts": ["e1:2379", "e2:2379"]}}
    assert member.rest_url == "http://api-1:8009"
    assert member.rest_auth == settings.patroni.restapi_auth
    assert member.superuser == settings.patroni.superuser
    assert (member.postgres_host, member.postgres_port) == ("pg-1", 5433)
    assert member.socket_dir == "/srv/run"
    assert member.path == config_path


@pytest.mark.parametrize(
    "overrides", [ETCD3_TLS_AND_USER, {"PATRONI_ZOOKEEPER_HOSTS": "zk-1:2181,zk-2:2181"}]
)
def test_the_dcs_round_trips_through_member_config(
    base_env: dict[str, str], render_to_file: RenderToFile, overrides: dict[str, str]
) -> None:
    settings, config_path = render_to_file(base_env | {"CITUS_ENABLE": "true"} | overrides)
    assert load_member_config(config_path).dcs.sections == settings.patroni.dcs.patroni_section()


@pytest.mark.parametrize(
    "overrides",
    [
        {"CITUS_NODE_SSLMODE": "verify-full", "CITUS_NODE_SSLROOTCERT": "/tls/nodes-ca.crt"},
        {"CITUS_NODE_SSLMODE": "verify-ca", **SERVER_TLS, "PG_SSL_CA_FILE": "/tls/ca.crt"},
    ],
)
def test_the_node_root_certificate_round_trips_through_member_config(
    worker_env: dict[str, str], render_to_file: RenderToFile, overrides: dict[str, str]
) -> None:
    settings, config_path = render_to_file(worker_env | overrides)
    assert load_member_config(config_path).citus == settings.citus
    assert settings.citus.node_sslrootcert is not None


def test_disabled_round_trip_stays_disabled(base_env: dict[str, str], render_to_file: RenderToFile) -> None:
    _, config_path = render_to_file(base_env | {"CITUS_ROLE": "worker", "CITUS_GROUP": "2"})
    assert load_member_config(config_path).citus.enabled is False


# --------------------------------------------------------------------------------------------------
# Hostile values cannot inject YAML structure
# --------------------------------------------------------------------------------------------------

HOSTILE_PASSWORDS = [
    "a: b",
    "x #not a comment",
    "{}",
    "{a: 1}",
    "[1, 2]",
    "&anchor",
    "*alias",
    "!!python/object/apply:os.system ['id']",
    "- item",
    "|",
    ">-",
    "'",
    '"',
    "\\",
    '\\"',
    "%YAML 1.1",
    "---",
    "...",
    "@`",
    "\t tab",
    "null",
    "~",
    "yes",
    "123",
    "0x1F",
    "1e3",
    ":",
    "? key",
    "pässwörd ✓",
    "\u2028line separator",
    "\u0085next line",
    "}\nscope: hijacked",  # newline: refused, see test_multi_line_passwords_are_refused_before_rendering
]


@pytest.mark.parametrize("password", [p for p in HOSTILE_PASSWORDS if "\n" not in p])
@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ("PATRONI_SUPERUSER_PASSWORD", ("postgresql", "authentication", "superuser", "password")),
        ("PATRONI_REPLICATION_PASSWORD", ("postgresql", "authentication", "replication", "password")),
        ("PATRONI_RESTAPI_PASSWORD", ("restapi", "authentication", "password")),
        ("PATRONI_ETCD3_PASSWORD", ("etcd3", "password")),
    ],
)
@pytest.mark.parametrize("citus_enable", ["false", "true"])
def test_hostile_passwords_stay_one_string(
    base_env: dict[str, str], setting: str, path: tuple[str, ...], password: str, citus_enable: str
) -> None:
    etcd3_user = {"PATRONI_ETCD3_USERNAME": "patroni"} if setting == "PATRONI_ETCD3_PASSWORD" else {}
    document = parsed(base_env | etcd3_user | {setting: password, "CITUS_ENABLE": citus_enable})
    expected_keys = TOP_LEVEL_KEYS | ({"tags"} if citus_enable == "true" else set())
    assert set(document) == expected_keys
    assert document["scope"] == "demo-1"
    node: Any = document
    for key in path:
        node = node[key]
    assert node == password
    assert isinstance(node, str)


@pytest.mark.parametrize("password", [p for p in HOSTILE_PASSWORDS if "\n" in p] + ["x\ny", "x\n  - z: 1"])
def test_multi_line_passwords_are_refused_before_rendering(base_env: dict[str, str], password: str) -> None:
    with pytest.raises(ConfigurationError):
        load_settings(base_env | {"PATRONI_SUPERUSER_PASSWORD": password})


@pytest.mark.parametrize(
    ("setting", "value", "path"),
    [
        ("PATRONI_POSTGRESQL_DATA_DIR", "/data: {x: 1} #c", ("postgresql", "data_dir")),
        ("PATRONI_POSTGRESQL_PGPASS", '/tmp/it\'s "pgpass" [1]', ("postgresql", "pgpass")),
        ("PATRONI_POSTGRESQL_BIN_DIR", "/opt/&a *a !!str", ("postgresql", "bin_dir")),
        ("PG_SOCKET_DIR", "/run/- item: x", ("postgresql", "parameters", "unix_socket_directories")),
    ],
)
def test_hostile_paths_stay_one_string(
    base_env: dict[str, str], setting: str, value: str, path: tuple[str, ...]
) -> None:
    document = parsed(base_env | {setting: value})
    assert set(document) == TOP_LEVEL_KEYS
    node: Any = document
    for key in path:
        node = node[key]
    assert node == value


def test_hostile_config_path_stays_one_command(worker_env: dict[str, str]) -> None:
    config_path = Path("/etc/x: y #z/{a}/'b'\"c\"/p.yml")
    document = parsed(worker_env, config_path=config_path)
    assert set(document) == TOP_LEVEL_KEYS | {"tags"}
    command = document["postgresql"]["callbacks"]["on_start"]
    assert shlex.split(command)[1:] == ["--config", str(config_path)]


# --------------------------------------------------------------------------------------------------
# write_private_file
# --------------------------------------------------------------------------------------------------


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_private_file_is_0600_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "patroni.yml"
    write_private_file(target, "scope: x\n")
    assert target.read_text(encoding="utf-8") == "scope: x\n"
    assert mode_of(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["patroni.yml"]


def test_write_private_file_ignores_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        write_private_file(tmp_path / "patroni.yml", "x\n")
    finally:
        os.umask(previous)
    assert mode_of(tmp_path / "patroni.yml") == 0o600


def test_write_private_file_replaces_a_world_readable_file(tmp_path: Path) -> None:
    target = tmp_path / "patroni.yml"
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o644)
    write_private_file(target, "new\n")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert mode_of(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["patroni.yml"]


def test_write_private_file_creates_parent_directories(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "patroni" / "patroni.yml"
    write_private_file(target, "x\n")
    assert mode_of(target) == 0o600


def test_write_private_file_sets_the_owner(tmp_path: Path) -> None:
    target = tmp_path / "patroni.yml"
    write_private_file(target, "x\n", owner=(os.getuid(), os.getgid()))
    info = target.stat()
    assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())


@pytest.mark.parametrize("failing", ["os.replace", "os.chmod"])
def test_write_private_file_is_atomic_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "patroni.yml"
    target.write_text("old\n", encoding="utf-8")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(f"patroni_citus.template.{failing}", fail)
    with pytest.raises(OSError, match="No space left"):
        write_private_file(target, "new\n")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["patroni.yml"]


def test_rendered_config_written_privately_loads_back(worker_env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "patroni.yml"
    settings = load_settings(worker_env)
    write_private_file(target, render_config(settings, target))
    assert mode_of(target) == 0o600
    assert load_member_config(target).citus == settings.citus


def test_the_one_template_is_the_top_level_file_and_the_package_renders_from_it() -> None:
    """Installed or from the checkout, what renders is the repository's top-level patroni.yml.j2."""
    root = Path(__file__).resolve().parents[2]
    assert not (root / "patroni_citus" / TEMPLATE_NAME).exists(), "one template, at the top level"
    assert template_text() == (root / TEMPLATE_NAME).read_text(encoding="utf-8")
