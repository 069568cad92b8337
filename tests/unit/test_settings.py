"""Every rule of settings.py: what is accepted, what is refused, and how the refusal reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from patroni_citus.errors import ConfigurationError, SecretSettingError
from patroni_citus.settings import (
    CitusSettings,
    Credentials,
    DcsSettings,
    Settings,
    SettingsErrors,
    load_citus_settings,
    load_dcs_settings,
    load_settings,
    load_settings_with_consumed,
    typo_findings,
)

BOOL = "use true/false, 1/0, yes/no or on/off"
ROLE = "use coordinator or worker"
HOSTS = "use comma-separated host names or IP addresses, each optionally :port"
ADDRESS = "use host:port with a host name or IP address and a port from 1 to 65535"
WILDCARD = "not a wildcard"
DATABASE = "use a database name of letters, digits, _ and -"
NAME = "use letters, digits, _ . - (at most 63)"
NETWORKS = "use a comma-separated list of CIDR networks (e.g. 10.0.0.0/8) or samehost/samenet/all"
LIBRARIES = "use a comma-separated list of library names"
ABSOLUTE = "use an absolute path"
ROLE_NAME = "use a role name of letters, digits and _"
BUILTIN = "built-in Citus mode"


def between(minimum: int, maximum: int) -> str:
    return f"use an integer from {minimum} to {maximum}"


def refusal(environ: dict[str, str]) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environ)
    return caught.value


def assert_names(error: ConfigurationError, setting: str, shown: str | None, allowed: str) -> None:
    """One line, naming the variable and its value (repr, or '(unset)') and saying what is allowed."""
    message = str(error)
    assert error.exit_code == 2
    assert error.setting == setting
    assert "\n" not in message and "\r" not in message
    expected_value = "(unset)" if shown is None else repr(shown)
    assert message.startswith(f"{setting}={expected_value} is invalid: "), message
    assert allowed in message, message


# --------------------------------------------------------------------------------------------------
# Defaults
# --------------------------------------------------------------------------------------------------


def test_defaults_of_a_minimal_environment(base_env: dict[str, str], fixed_hostname: str) -> None:
    settings = load_settings(base_env)
    assert isinstance(settings, Settings)
    assert settings.citus == CitusSettings()
    citus = settings.citus
    assert (citus.enabled, citus.role, citus.group) == (False, "coordinator", 0)
    assert (citus.coordinator_hosts, citus.coordinator_port) == (("localhost",), 5432)
    assert (citus.database, citus.max_prepared_transactions) == ("citus", 200)
    patroni = settings.patroni
    assert (patroni.scope, patroni.name, patroni.namespace) == ("demo-1", "member-1", "/service/")
    assert patroni.superuser == Credentials("postgres", base_env["PATRONI_SUPERUSER_PASSWORD"])
    assert patroni.replication == Credentials("replicator", base_env["PATRONI_REPLICATION_PASSWORD"])
    assert patroni.restapi_auth is None
    assert patroni.dcs == DcsSettings()
    dcs = patroni.dcs
    assert (dcs.kind, dcs.hosts, dcs.protocol) == ("etcd3", ("127.0.0.1:2379",), "http")
    assert (dcs.cacert, dcs.cert, dcs.key, dcs.auth) == (None, None, None, None)
    assert patroni.restapi_listen == "0.0.0.0:8008"
    assert patroni.postgres_listen == "0.0.0.0:5432"
    # A wildcard listen address is advertised under this machine's name.
    assert patroni.restapi_connect_address == f"{fixed_hostname}:8008"
    assert patroni.postgres_connect_address == f"{fixed_hostname}:5432"
    assert patroni.data_dir == "/var/lib/postgresql/data"
    assert patroni.bin_dir is None
    assert patroni.pgpass == "/tmp/pgpass"
    assert patroni.socket_dir == "/var/run/postgresql"
    assert patroni.allowed_networks == ("samenet",)
    assert patroni.shared_preload_libraries == ()
    assert (patroni.ttl, patroni.loop_wait, patroni.retry_timeout) == (30, 10, 10)
    assert patroni.synchronous_mode is False
    assert (patroni.ssl_cert_file, patroni.ssl_key_file, patroni.ssl_ca_file) == (None, None, None)
    assert patroni.hba_hostssl is False
    assert citus.node_sslrootcert is None


def test_name_defaults_to_the_host_name(base_env: dict[str, str], fixed_hostname: str) -> None:
    del base_env["PATRONI_NAME"]
    assert load_settings(base_env).patroni.name == fixed_hostname


def test_an_unusable_host_name_is_refused_as_patroni_name(
    base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("patroni_citus.settings.socket.gethostname", lambda: "bad host")
    del base_env["PATRONI_NAME"]
    assert_names(refusal(base_env), "PATRONI_NAME", "bad host", NAME)


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
@pytest.mark.parametrize(
    ("setting", "attribute", "default"),
    [
        ("CITUS_ENABLE", "enabled", False),
        ("CITUS_ROLE", "role", "coordinator"),
        ("CITUS_COORDINATOR_HOST", "coordinator_hosts", ("localhost",)),
        ("CITUS_COORDINATOR_PORT", "coordinator_port", 5432),
        ("CITUS_DATABASE", "database", "citus"),
        ("CITUS_MAX_PREPARED_TRANSACTIONS", "max_prepared_transactions", 200),
    ],
)
def test_a_blank_citus_variable_means_its_default(
    base_env: dict[str, str], setting: str, attribute: str, default: object, blank: str
) -> None:
    base_env[setting] = blank
    assert getattr(load_settings(base_env).citus, attribute) == default


def test_citus_settings_alone_need_no_patroni_variables() -> None:
    assert load_citus_settings({}) == CitusSettings()


def test_dcs_settings_alone_need_no_other_variables() -> None:
    assert load_dcs_settings({}) == DcsSettings()


# --------------------------------------------------------------------------------------------------
# Booleans
# --------------------------------------------------------------------------------------------------

TRUE_WORDS = ["true", "True", "TRUE", "1", "yes", "Yes", "YES", "on", " true ", "yes\n"]
FALSE_WORDS = ["false", "False", "FALSE", "0", "no", "No", "off", " 0 "]
BAD_BOOLS = [
    "2",
    "-1",
    "y",
    "n",
    "t",
    "tru",
    "truee",
    "enable",
    "enabled",
    "null",
    "none",
    "1.0",
    "yes please",
]


BOOL_SETTINGS = {
    "CITUS_ENABLE": lambda s: s.citus.enabled,
    "CITUS_STANDALONE": lambda s: s.citus.standalone,
    "PATRONI_SYNCHRONOUS_MODE": lambda s: s.patroni.synchronous_mode,
}


@pytest.mark.parametrize("setting", BOOL_SETTINGS)
@pytest.mark.parametrize(
    ("value", "expected"), [(w, True) for w in TRUE_WORDS] + [(w, False) for w in FALSE_WORDS]
)
def test_booleans_accepted(base_env: dict[str, str], setting: str, value: str, expected: bool) -> None:
    base_env[setting] = value
    assert BOOL_SETTINGS[setting](load_settings(base_env)) is expected


@pytest.mark.parametrize("setting", BOOL_SETTINGS)
@pytest.mark.parametrize("value", BAD_BOOLS)
def test_booleans_refused(base_env: dict[str, str], setting: str, value: str) -> None:
    base_env[setting] = value
    assert_names(refusal(base_env), setting, value, BOOL)


# --------------------------------------------------------------------------------------------------
# Role and group
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "group", "expected_role", "expected_group"),
    [
        ("coordinator", None, "coordinator", 0),
        ("coordinator", "0", "coordinator", 0),
        ("coordinator", " 0 ", "coordinator", 0),
        ("Coordinator", "", "coordinator", 0),
        ("worker", "1", "worker", 1),
        ("WORKER", "42", "worker", 42),
        (" worker ", " 7 ", "worker", 7),
        ("worker", "2147483647", "worker", 2147483647),
    ],
)
def test_roles_and_groups_accepted(
    base_env: dict[str, str], role: str, group: str | None, expected_role: str, expected_group: int
) -> None:
    base_env |= {"CITUS_ROLE": role, "CITUS_COORDINATOR_HOST": "coord-1"}
    if group is not None:
        base_env["CITUS_GROUP"] = group
    citus = load_settings(base_env).citus
    assert (citus.role, citus.group, citus.is_coordinator) == (
        expected_role,
        expected_group,
        expected_role == "coordinator",
    )


@pytest.mark.parametrize(
    "role", ["master", "primary", "replica", "workers", "coord", "worker;drop", "worker coordinator", "0"]
)
def test_roles_refused(base_env: dict[str, str], role: str) -> None:
    base_env["CITUS_ROLE"] = role
    assert_names(refusal(base_env), "CITUS_ROLE", role, ROLE)


@pytest.mark.parametrize("group", ["1", "2", "-1", "abc", "0.0", "00x"])
def test_coordinator_group_must_be_zero(base_env: dict[str, str], group: str) -> None:
    base_env |= {"CITUS_ROLE": "coordinator", "CITUS_GROUP": group}
    assert_names(refusal(base_env), "CITUS_GROUP", group, "must be 0 for CITUS_ROLE=coordinator")


@pytest.mark.parametrize("group", [None, "", "   "])
def test_worker_group_is_required(base_env: dict[str, str], group: str | None) -> None:
    base_env["CITUS_ROLE"] = "worker"
    if group is not None:
        base_env["CITUS_GROUP"] = group
    assert_names(refusal(base_env), "CITUS_GROUP", None, "required for CITUS_ROLE=worker")


@pytest.mark.parametrize(
    "group",
    [
        "0",
        "-1",
        "abc",
        "1.5",
        "1e3",
        "0x10",
        "1_0",  # int() would read 10
        "\u0661",  # ARABIC-INDIC DIGIT ONE: int() would read 1
        "2147483648",
        "1;DROP TABLE pg_dist_node",
    ],
)
def test_worker_groups_refused(base_env: dict[str, str], group: str) -> None:
    base_env |= {"CITUS_ROLE": "worker", "CITUS_GROUP": group}
    assert_names(refusal(base_env), "CITUS_GROUP", group, between(1, 2**31 - 1))


def test_citus_variables_are_checked_even_when_citus_is_disabled(base_env: dict[str, str]) -> None:
    base_env |= {"CITUS_ENABLE": "false", "CITUS_ROLE": "wroker"}
    assert_names(refusal(base_env), "CITUS_ROLE", "wroker", ROLE)


# --------------------------------------------------------------------------------------------------
# Coordinator hosts and port
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hosts", "endpoints"),
    [
        ("coord", ("coord",), [("coord", 5432)]),
        ("c1,c2:6432", ("c1", "c2:6432"), [("c1", 5432), ("c2", 6432)]),
        (" c1 , c2 ", ("c1", "c2"), [("c1", 5432), ("c2", 5432)]),
        ("db-1.example.com", ("db-1.example.com",), [("db-1.example.com", 5432)]),
        ("db.example.com.", ("db.example.com.",), [("db.example.com.", 5432)]),
        ("coord_1", ("coord_1",), [("coord_1", 5432)]),  # compose service names carry underscores
        ("10.0.0.1:5433", ("10.0.0.1:5433",), [("10.0.0.1", 5433)]),
        ("[::1]:7000", ("[::1]:7000",), [("::1", 7000)]),
        ("::1", ("::1",), [("::1", 5432)]),
        ("[fd00::5]", ("[fd00::5]",), [("fd00::5", 5432)]),
        ("c1:1,c2:65535", ("c1:1", "c2:65535"), [("c1", 1), ("c2", 65535)]),
    ],
)
def test_coordinator_hosts_accepted(
    base_env: dict[str, str], value: str, hosts: tuple[str, ...], endpoints: list[tuple[str, int]]
) -> None:
    base_env["CITUS_COORDINATOR_HOST"] = value
    citus = load_settings(base_env).citus
    assert citus.coordinator_hosts == hosts
    assert citus.coordinator_endpoints() == endpoints


def test_host_port_wins_over_coordinator_port(base_env: dict[str, str]) -> None:
    base_env |= {"CITUS_COORDINATOR_HOST": "c1,c2:6432", "CITUS_COORDINATOR_PORT": "7000"}
    assert load_settings(base_env).citus.coordinator_endpoints() == [("c1", 7000), ("c2", 6432)]


@pytest.mark.parametrize(
    "value",
    [
        "c1,,c2",
        "c1,",
        ",c1",
        ",",
        "c1, ,c2",
        "c 1",
        "'c1'",
        '"c1"',
        "c1'",
        "c1;DROP TABLE pg_dist_node",
        "c1' OR '1'='1",
        "c1);--",
        "$(reboot)",
        "`id`",
        "c1\n:5432",  # "$" in a regex matches before a final newline
        "c1\nc2",
        "c1:0",
        "c1:65536",
        "c1:abc",
        "c1:",
        "c1:-1",
        "c1:5432:1",
        "c1:\u00b2",  # SUPERSCRIPT TWO: str.isdigit() is true, int() fails
        "c1:\u0665\u0664\u0663\u0662",  # ARABIC-INDIC 5432
        "10.0.0.256",
        "999.1.1.1",
        "12345",
        "-c1",
        "c1-",
        "a..b",
        ".c1",
        "host/x",
        "http://c1",
        "c1@x",
        "[c1]:5432",
        "[::1",
        "a" * 64,
        ".".join(["a" * 60] * 5),
        "kõordinator",
    ],
)
def test_coordinator_hosts_refused(base_env: dict[str, str], value: str) -> None:
    base_env["CITUS_COORDINATOR_HOST"] = value
    assert_names(refusal(base_env), "CITUS_COORDINATOR_HOST", value, HOSTS)


@pytest.mark.parametrize("value", [None, "", "  "])
def test_an_enabled_worker_needs_coordinator_hosts(base_env: dict[str, str], value: str | None) -> None:
    base_env |= {"CITUS_ENABLE": "true", "CITUS_ROLE": "worker", "CITUS_GROUP": "1"}
    if value is not None:
        base_env["CITUS_COORDINATOR_HOST"] = value
    assert_names(refusal(base_env), "CITUS_COORDINATOR_HOST", None, "required for CITUS_ROLE=worker: ")


def test_a_coordinator_and_a_disabled_worker_keep_the_localhost_default(base_env: dict[str, str]) -> None:
    coordinator = load_settings(base_env | {"CITUS_ENABLE": "true"}).citus
    assert (coordinator.coordinator_hosts, coordinator.standalone) == (("localhost",), True)
    disabled_worker = load_settings(base_env | {"CITUS_ROLE": "worker", "CITUS_GROUP": "1"}).citus
    assert disabled_worker.coordinator_hosts == ("localhost",)


@pytest.mark.parametrize(("value", "port"), [("1", 1), ("5432", 5432), (" 6432 ", 6432), ("65535", 65535)])
def test_coordinator_ports_accepted(base_env: dict[str, str], value: str, port: int) -> None:
    base_env["CITUS_COORDINATOR_PORT"] = value
    assert load_settings(base_env).citus.coordinator_port == port


@pytest.mark.parametrize(
    "value", ["0", "65536", "-1", "abc", "5432.0", "5_432", "\u0665\u0664\u0663\u0662", "5432 6432", "0x1538"]
)
def test_coordinator_ports_refused(base_env: dict[str, str], value: str) -> None:
    base_env["CITUS_COORDINATOR_PORT"] = value
    assert_names(refusal(base_env), "CITUS_COORDINATOR_PORT", value, between(1, 65535))


# --------------------------------------------------------------------------------------------------
# Database, scope, name, namespace
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["citus", "app_db", "App-DB", "_private", "d1", "a" * 63])
def test_databases_accepted(base_env: dict[str, str], value: str) -> None:
    base_env["CITUS_DATABASE"] = value
    assert load_settings(base_env).citus.database == value


@pytest.mark.parametrize(
    "value",
    [
        "1db",
        "-db",
        "my db",
        "db;drop database postgres",
        "db'",
        'db"',
        "d\nb",
        "db.x",
        "db/x",
        "a" * 64,
        "dátabase",
        "db\u2028x",
    ],
)
def test_databases_refused(base_env: dict[str, str], value: str) -> None:
    base_env["CITUS_DATABASE"] = value
    assert_names(refusal(base_env), "CITUS_DATABASE", value, DATABASE)


@pytest.mark.parametrize("setting", ["PATRONI_SCOPE", "PATRONI_NAME"])
@pytest.mark.parametrize("value", ["a", "demo-0", "Demo.1_x", "0demo", "a" * 63])
def test_scope_and_name_accepted(base_env: dict[str, str], setting: str, value: str) -> None:
    base_env[setting] = value
    patroni = load_settings(base_env).patroni
    assert (patroni.scope if setting == "PATRONI_SCOPE" else patroni.name) == value


@pytest.mark.parametrize("setting", ["PATRONI_SCOPE", "PATRONI_NAME"])
@pytest.mark.parametrize(
    "value", ["-demo", ".demo", "_demo", "demo 0", "demo/0", "demo:0", "de'mo", "a" * 64, "démo", "de\nmo"]
)
def test_scope_and_name_refused(base_env: dict[str, str], setting: str, value: str) -> None:
    base_env[setting] = value
    assert_names(refusal(base_env), setting, value, NAME)


@pytest.mark.parametrize("value", [None, "", "  "])
def test_scope_is_required(base_env: dict[str, str], value: str | None) -> None:
    base_env.pop("PATRONI_SCOPE")
    if value is not None:
        base_env["PATRONI_SCOPE"] = value
    assert_names(refusal(base_env), "PATRONI_SCOPE", None, "required")


@pytest.mark.parametrize("value", ["/service/", "/", "/citus-demo", "/a/b_c.d/"])
def test_namespaces_accepted(base_env: dict[str, str], value: str) -> None:
    base_env["PATRONI_NAMESPACE"] = value
    assert load_settings(base_env).patroni.namespace == value


@pytest.mark.parametrize("value", ["service", "/ser vice/", "/a:b", "/a\n/b", "/a'b", "/a#b"])
def test_namespaces_refused(base_env: dict[str, str], value: str) -> None:
    base_env["PATRONI_NAMESPACE"] = value
    assert_names(refusal(base_env), "PATRONI_NAMESPACE", value, "use a path like /service/")


# --------------------------------------------------------------------------------------------------
# Addresses and etcd hosts
# --------------------------------------------------------------------------------------------------

LISTEN_SETTINGS = ["PATRONI_RESTAPI_LISTEN", "PATRONI_POSTGRESQL_LISTEN"]
CONNECT_SETTINGS = ["PATRONI_RESTAPI_CONNECT_ADDRESS", "PATRONI_POSTGRESQL_CONNECT_ADDRESS"]
ATTRIBUTE = {
    "PATRONI_RESTAPI_LISTEN": "restapi_listen",
    "PATRONI_POSTGRESQL_LISTEN": "postgres_listen",
    "PATRONI_RESTAPI_CONNECT_ADDRESS": "restapi_connect_address",
    "PATRONI_POSTGRESQL_CONNECT_ADDRESS": "postgres_connect_address",
}
BAD_ADDRESSES = [
    "8008",
    "host",
    ":8008",
    "host:",
    "host:0",
    "host:65536",
    "host:abc",
    "host:-1",
    "host:\u00b2",
    "host;x:8008",
    "ho st:8008",
    "'host':8008",
    "host\n:8008",
    "10.0.0.256:8008",
    "http://host:8008",
    "[host]:8008",
]


@pytest.mark.parametrize("setting", LISTEN_SETTINGS + CONNECT_SETTINGS)
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.1.2.3:7000", "10.1.2.3:7000"),
        ("pg-1.example:1", "pg-1.example:1"),
        ("[fd00::1]:65535", "[fd00::1]:65535"),
        (" pg-1:05432 ", "pg-1:5432"),
    ],
)
def test_addresses_accepted(base_env: dict[str, str], setting: str, value: str, expected: str) -> None:
    base_env[setting] = value
    assert getattr(load_settings(base_env).patroni, ATTRIBUTE[setting]) == expected


@pytest.mark.parametrize("setting", LISTEN_SETTINGS)
@pytest.mark.parametrize("value", ["0.0.0.0:8008", "*:8008", "[::]:8008", ":::8008"])
def test_listen_addresses_may_use_a_wildcard(base_env: dict[str, str], setting: str, value: str) -> None:
    base_env[setting] = value
    assert getattr(load_settings(base_env).patroni, ATTRIBUTE[setting]) == value


@pytest.mark.parametrize("setting", CONNECT_SETTINGS)
@pytest.mark.parametrize("value", ["0.0.0.0:8008", "*:8008", "[::]:8008"])
def test_connect_addresses_must_not_be_a_wildcard(base_env: dict[str, str], setting: str, value: str) -> None:
    base_env[setting] = value
    error = refusal(base_env)
    assert error.setting == setting
    assert repr(value) in str(error)
    assert WILDCARD in str(error) or ADDRESS in str(error)


@pytest.mark.parametrize("setting", LISTEN_SETTINGS + CONNECT_SETTINGS)
@pytest.mark.parametrize("value", BAD_ADDRESSES)
def test_addresses_refused(base_env: dict[str, str], setting: str, value: str) -> None:
    base_env[setting] = value
    assert_names(refusal(base_env), setting, value.strip(), ADDRESS)


@pytest.mark.parametrize(
    ("listen_setting", "connect_attribute", "listen", "advertised"),
    [
        ("PATRONI_POSTGRESQL_LISTEN", "postgres_connect_address", "10.0.0.5:5433", "10.0.0.5:5433"),
        ("PATRONI_POSTGRESQL_LISTEN", "postgres_connect_address", "0.0.0.0:5433", "member-host:5433"),
        ("PATRONI_POSTGRESQL_LISTEN", "postgres_connect_address", "[::]:5433", "member-host:5433"),
        ("PATRONI_RESTAPI_LISTEN", "restapi_connect_address", "*:8009", "member-host:8009"),
        ("PATRONI_RESTAPI_LISTEN", "restapi_connect_address", "api-1:8009", "api-1:8009"),
    ],
)
def test_connect_address_defaults_to_a_reachable_listen_address(
    base_env: dict[str, str], listen_setting: str, connect_attribute: str, listen: str, advertised: str
) -> None:
    base_env[listen_setting] = listen
    assert getattr(load_settings(base_env).patroni, connect_attribute) == advertised


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("etcd-1:2379", ("etcd-1:2379",)),
        ("etcd-1:2379,etcd-2:2379,etcd-3:2379", ("etcd-1:2379", "etcd-2:2379", "etcd-3:2379")),
        (" e1:2379 , e2:2380 ", ("e1:2379", "e2:2380")),
        ("10.0.0.1:2379,[fd00::1]:2379", ("10.0.0.1:2379", "[fd00::1]:2379")),
    ],
)
def test_etcd_hosts_accepted(base_env: dict[str, str], value: str, expected: tuple[str, ...]) -> None:
    base_env["PATRONI_ETCD3_HOSTS"] = value
    assert load_settings(base_env).patroni.dcs.hosts == expected


@pytest.mark.parametrize(
    ("value", "bad_entry"),
    [
        ("etcd-1", "etcd-1"),
        ("etcd-1:2379,", ""),
        (",etcd-1:2379", ""),
        ("etcd-1:2379,,etcd-2:2379", ""),
        (",", ""),
        ("http://etcd-1:2379", "http://etcd-1:2379"),
        ("etcd-1:0", "etcd-1:0"),
        ("etcd-1:2379;etcd-2:2379", "etcd-1:2379;etcd-2:2379"),
        ("etcd-1:2379 etcd-2:2379", "etcd-1:2379 etcd-2:2379"),
        ("e1:2379, 0.0.0.0:2379", "0.0.0.0:2379"),
        ("'etcd-1':2379", "'etcd-1':2379"),
    ],
)
def test_etcd_hosts_refused(base_env: dict[str, str], value: str, bad_entry: str) -> None:
    base_env["PATRONI_ETCD3_HOSTS"] = value
    error = refusal(base_env)
    # The whole value is shown, like every other setting, and the message points at the bad entry.
    assert_names(error, "PATRONI_ETCD3_HOSTS", value, "use a comma-separated list of host:port")
    assert f"entry {bad_entry!r} is not" in str(error)


# --------------------------------------------------------------------------------------------------
# Networks and libraries
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("samenet", ("samenet",)),
        ("samehost,samenet,all", ("samehost", "samenet", "all")),
        ("10.0.0.0/8", ("10.0.0.0/8",)),
        ("10.0.0.0/8, 192.168.0.0/16", ("10.0.0.0/8", "192.168.0.0/16")),
        ("10.0.0.1", ("10.0.0.1/32",)),
        ("0.0.0.0/0", ("0.0.0.0/0",)),
        ("fd00::/8,::1/128", ("fd00::/8", "::1/128")),
    ],
)
def test_networks_accepted(base_env: dict[str, str], value: str, expected: tuple[str, ...]) -> None:
    base_env["PG_ALLOWED_NETWORKS"] = value
    assert load_settings(base_env).patroni.allowed_networks == expected


@pytest.mark.parametrize(
    "value",
    [
        "10.0.0.1/8",  # host bits set: strict CIDR only
        "192.168.1.1/24",
        "fd00::1/8",
        "10.0.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/8,",
        ",10.0.0.0/8",
        "samenets",
        "any",
        "localhost",
        "10.0.0.0/8 trust",
        "0.0.0.0/0 trust\nlocal all all trust",
        "10.0.0.0/8;",
        "10.0.0.256/32",
        "replication",
    ],
)
def test_networks_refused(base_env: dict[str, str], value: str) -> None:
    base_env["PG_ALLOWED_NETWORKS"] = value
    assert_names(refusal(base_env), "PG_ALLOWED_NETWORKS", value, NETWORKS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pg_stat_statements", ("pg_stat_statements",)),
        ("pg_stat_statements,auto_explain", ("pg_stat_statements", "auto_explain")),
        ("a,b,a,b", ("a", "b")),
        ("a,,b, ,", ("a", "b")),
        (" timescaledb-2.1 , pg$x ", ("timescaledb-2.1", "pg$x")),
        ("citus,pg_cron", ("citus", "pg_cron")),
    ],
)
def test_libraries_accepted(base_env: dict[str, str], value: str, expected: tuple[str, ...]) -> None:
    base_env["PG_SHARED_PRELOAD_LIBRARIES"] = value
    assert load_settings(base_env).patroni.shared_preload_libraries == expected


@pytest.mark.parametrize(
    "value", ["pg_stat statements", "a;b", "a'b", 'a"b', "$libdir/foo", "a" * 64, "a\nb", "a:b", "a=b"]
)
def test_libraries_refused(base_env: dict[str, str], value: str) -> None:
    base_env["PG_SHARED_PRELOAD_LIBRARIES"] = value
    assert_names(refusal(base_env), "PG_SHARED_PRELOAD_LIBRARIES", value, LIBRARIES)


# --------------------------------------------------------------------------------------------------
# Patroni timing and max_prepared_transactions
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "loop_wait", "retry_timeout"),
    [("30", "10", "10"), ("31", "11", "10"), ("40", "10", "15"), ("20", "2", "9"), ("3600", "1", "3")],
)
def test_timings_accepted(base_env: dict[str, str], ttl: str, loop_wait: str, retry_timeout: str) -> None:
    base_env |= {"PATRONI_TTL": ttl, "PATRONI_LOOP_WAIT": loop_wait, "PATRONI_RETRY_TIMEOUT": retry_timeout}
    patroni = load_settings(base_env).patroni
    assert (patroni.ttl, patroni.loop_wait, patroni.retry_timeout) == (
        int(ttl),
        int(loop_wait),
        int(retry_timeout),
    )


@pytest.mark.parametrize(
    ("overrides", "ttl_shown", "needed"),
    [
        ({"PATRONI_LOOP_WAIT": "11"}, "30", 31),
        ({"PATRONI_RETRY_TIMEOUT": "11"}, "30", 32),
        ({"PATRONI_TTL": "29"}, "29", 30),
        ({"PATRONI_TTL": "40", "PATRONI_LOOP_WAIT": "10", "PATRONI_RETRY_TIMEOUT": "16"}, "40", 42),
        ({"PATRONI_TTL": "20", "PATRONI_LOOP_WAIT": "1", "PATRONI_RETRY_TIMEOUT": "10"}, "20", 21),
    ],
)
def test_ttl_must_cover_loop_wait_plus_twice_retry_timeout(
    base_env: dict[str, str], overrides: dict[str, str], ttl_shown: str, needed: int
) -> None:
    base_env |= overrides
    error = refusal(base_env)
    assert_names(error, "PATRONI_TTL", ttl_shown, "PATRONI_LOOP_WAIT + 2 * PATRONI_RETRY_TIMEOUT")
    assert f"({needed})" in str(error)


@pytest.mark.parametrize(
    ("setting", "value", "minimum", "maximum"),
    [
        ("PATRONI_TTL", "19", 20, 3600),
        ("PATRONI_TTL", "3601", 20, 3600),
        ("PATRONI_TTL", "30s", 20, 3600),
        ("PATRONI_LOOP_WAIT", "0", 1, 3600),
        ("PATRONI_LOOP_WAIT", "ten", 1, 3600),
        ("PATRONI_RETRY_TIMEOUT", "2", 3, 3600),
        ("PATRONI_RETRY_TIMEOUT", "10.5", 3, 3600),
        ("CITUS_MAX_PREPARED_TRANSACTIONS", "0", 1, 262143),
        ("CITUS_MAX_PREPARED_TRANSACTIONS", "262144", 1, 262143),
        ("CITUS_MAX_PREPARED_TRANSACTIONS", "-5", 1, 262143),
        ("CITUS_MAX_PREPARED_TRANSACTIONS", "lots", 1, 262143),
        ("CITUS_REGISTRATION_TIMEOUT", "0", 1, 3600),
        ("CITUS_REGISTRATION_TIMEOUT", "1m", 1, 3600),
        ("CITUS_HOLD_TIMEOUT", "0", 1, 3600),
        ("CITUS_HOLD_TIMEOUT", "2.5", 1, 3600),
    ],
)
def test_integers_out_of_range_refused(
    base_env: dict[str, str], setting: str, value: str, minimum: int, maximum: int
) -> None:
    base_env[setting] = value
    assert_names(refusal(base_env), setting, value, between(minimum, maximum))


def test_hold_timeout_defaults_under_the_smallest_ttl(base_env: dict[str, str]) -> None:
    base_env.update(PATRONI_TTL="20", PATRONI_LOOP_WAIT="2", PATRONI_RETRY_TIMEOUT="5")
    assert load_settings(base_env).citus.hold_timeout == 15


@pytest.mark.parametrize(("hold", "ttl"), [("30", "30"), ("45", "30"), ("20", "20")])
def test_hold_timeout_must_end_before_the_leader_lease(base_env: dict[str, str], hold: str, ttl: str) -> None:
    base_env.update(PATRONI_TTL=ttl, PATRONI_LOOP_WAIT="2", PATRONI_RETRY_TIMEOUT="5")
    base_env["CITUS_HOLD_TIMEOUT"] = hold
    message = str(refusal(base_env))
    expected = f"CITUS_HOLD_TIMEOUT='{hold}' is invalid: must be less than PATRONI_TTL ({ttl})"
    assert message.startswith(expected)
    assert "\n" not in message


def test_max_prepared_transactions_accepted(base_env: dict[str, str]) -> None:
    base_env["CITUS_MAX_PREPARED_TRANSACTIONS"] = "500"
    assert load_settings(base_env).citus.max_prepared_transactions == 500


# --------------------------------------------------------------------------------------------------
# Paths and user names
# --------------------------------------------------------------------------------------------------

PATH_SETTINGS = {
    "PATRONI_POSTGRESQL_DATA_DIR": "data_dir",
    "PATRONI_POSTGRESQL_BIN_DIR": "bin_dir",
    "PATRONI_POSTGRESQL_PGPASS": "pgpass",
    "PG_SOCKET_DIR": "socket_dir",
}


@pytest.mark.parametrize("setting", PATH_SETTINGS)
@pytest.mark.parametrize("value", ["/x", "/srv/pg data/15", "/tmp/a: b #c {d}"])
def test_absolute_paths_accepted(base_env: dict[str, str], setting: str, value: str) -> None:
    base_env[setting] = value
    assert getattr(load_settings(base_env).patroni, PATH_SETTINGS[setting]) == value


@pytest.mark.parametrize("setting", PATH_SETTINGS)
@pytest.mark.parametrize("value", ["data", "./data", "~/data", "/data\n/x"])
def test_relative_paths_refused(base_env: dict[str, str], setting: str, value: str) -> None:
    base_env[setting] = value
    assert_names(refusal(base_env), setting, value, ABSOLUTE)


@pytest.mark.parametrize("prefix", ["PATRONI_SUPERUSER", "PATRONI_REPLICATION", "PATRONI_RESTAPI"])
@pytest.mark.parametrize("value", ["1admin", "ad min", "ad-min", "ad;min", "ad'min", "a" * 64, "ädmin"])
def test_user_names_refused(base_env: dict[str, str], prefix: str, value: str) -> None:
    base_env[f"{prefix}_USERNAME"] = value
    assert_names(refusal(base_env), f"{prefix}_USERNAME", value, ROLE_NAME)


def test_user_names_accepted(base_env: dict[str, str]) -> None:
    base_env |= {
        "PATRONI_SUPERUSER_USERNAME": "Admin_1",
        "PATRONI_REPLICATION_USERNAME": "_standby",
        "PATRONI_RESTAPI_USERNAME": "api",
        "PATRONI_RESTAPI_PASSWORD": "api-pw",
    }
    patroni = load_settings(base_env).patroni
    assert patroni.superuser.username == "Admin_1"
    assert patroni.replication.username == "_standby"
    assert patroni.restapi_auth == Credentials("api", "api-pw")


def test_replication_user_must_differ_from_superuser(base_env: dict[str, str]) -> None:
    base_env |= {"PATRONI_SUPERUSER_USERNAME": "postgres", "PATRONI_REPLICATION_USERNAME": "postgres"}
    assert_names(
        refusal(base_env),
        "PATRONI_REPLICATION_USERNAME",
        "postgres",
        "must differ from PATRONI_SUPERUSER_USERNAME",
    )


# --------------------------------------------------------------------------------------------------
# Passwords: value or _FILE, never shown
# --------------------------------------------------------------------------------------------------

PASSWORD_SETTINGS = ["PATRONI_SUPERUSER_PASSWORD", "PATRONI_REPLICATION_PASSWORD", "PATRONI_RESTAPI_PASSWORD"]
SECRET = "Top-Secret-Value-42"


def password_of(settings: Settings, setting: str) -> str | None:
    credentials = {
        "PATRONI_SUPERUSER_PASSWORD": settings.patroni.superuser,
        "PATRONI_REPLICATION_PASSWORD": settings.patroni.replication,
        "PATRONI_RESTAPI_PASSWORD": settings.patroni.restapi_auth,
    }[setting]
    return None if credentials is None else credentials.password


def assert_secret_hidden(error: BaseException, *secrets: str) -> None:
    for shown in (str(error), repr(error), repr(error.args)):
        for secret in secrets:
            for line in secret.splitlines() or [secret]:
                assert not line or line not in shown, shown


@pytest.mark.parametrize("setting", PASSWORD_SETTINGS)
@pytest.mark.parametrize(
    "value", [SECRET, " spaced pw ", "a'b\"c: #{}[]&*!|>%@`\\", "pässwörd", "x", "\u2028looks-like-a-newline"]
)
def test_passwords_are_taken_verbatim(base_env: dict[str, str], setting: str, value: str) -> None:
    base_env.pop(setting, None)
    base_env[setting] = value
    assert password_of(load_settings(base_env), setting) == value


@pytest.mark.parametrize("setting", PASSWORD_SETTINGS)
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (f"{SECRET}\n", SECRET),
        (f"{SECRET}\r\n", SECRET),
        (f"{SECRET}\n\n", SECRET),
        (SECRET, SECRET),
        (" padded ", " padded "),
    ],
)
def test_password_files_accepted(
    base_env: dict[str, str], tmp_path: Path, setting: str, content: str, expected: str
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(content, encoding="utf-8")
    base_env.pop(setting, None)
    base_env[f"{setting}_FILE"] = str(secret_file)
    assert password_of(load_settings(base_env), setting) == expected


@pytest.mark.parametrize("setting", PASSWORD_SETTINGS)
def test_password_and_password_file_together_refused(
    base_env: dict[str, str], tmp_path: Path, setting: str
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("file-Secret-pw\n", encoding="utf-8")
    base_env |= {setting: SECRET, f"{setting}_FILE": str(secret_file)}
    error = refusal(base_env)
    assert isinstance(error, SecretSettingError)
    assert error.exit_code == 2 and error.setting == setting
    assert str(error) == f"{setting} is invalid: set either {setting} or {setting}_FILE, not both"
    assert_secret_hidden(error, SECRET, "file-Secret-pw")


@pytest.mark.parametrize("setting", ["PATRONI_SUPERUSER_PASSWORD", "PATRONI_REPLICATION_PASSWORD"])
@pytest.mark.parametrize("blank", [None, "", "   "])
def test_required_passwords(base_env: dict[str, str], setting: str, blank: str | None) -> None:
    base_env.pop(setting)
    if blank is not None:
        base_env[setting] = blank
    assert_names(refusal(base_env), setting, None, f"required; set {setting} or {setting}_FILE")


def test_restapi_password_is_optional(base_env: dict[str, str]) -> None:
    assert load_settings(base_env).patroni.restapi_auth is None
    base_env["PATRONI_RESTAPI_PASSWORD"] = "api-pw"
    assert load_settings(base_env).patroni.restapi_auth == Credentials("patroni", "api-pw")


@pytest.mark.parametrize("setting", PASSWORD_SETTINGS)
def test_missing_password_file_refused(base_env: dict[str, str], tmp_path: Path, setting: str) -> None:
    missing = str(tmp_path / "no-such-secret")
    base_env.pop(setting, None)
    base_env[f"{setting}_FILE"] = missing
    error = refusal(base_env)
    assert_names(error, f"{setting}_FILE", missing, "the file cannot be read (No such file or directory)")


def test_password_file_that_is_a_directory_refused(base_env: dict[str, str], tmp_path: Path) -> None:
    base_env.pop("PATRONI_SUPERUSER_PASSWORD")
    base_env["PATRONI_SUPERUSER_PASSWORD_FILE"] = str(tmp_path)
    assert_names(
        refusal(base_env), "PATRONI_SUPERUSER_PASSWORD_FILE", str(tmp_path), "the file cannot be read"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file regardless of its mode")
def test_unreadable_password_file_refused(base_env: dict[str, str], tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET, encoding="utf-8")
    secret_file.chmod(0)
    base_env.pop("PATRONI_SUPERUSER_PASSWORD")
    base_env["PATRONI_SUPERUSER_PASSWORD_FILE"] = str(secret_file)
    error = refusal(base_env)
    assert_names(error, "PATRONI_SUPERUSER_PASSWORD_FILE", str(secret_file), "(Permission denied)")
    assert_secret_hidden(error, SECRET)


def test_password_file_not_utf8_refused(base_env: dict[str, str], tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"\xff\xfe-secret\n")
    base_env.pop("PATRONI_SUPERUSER_PASSWORD")
    base_env["PATRONI_SUPERUSER_PASSWORD_FILE"] = str(secret_file)
    error = refusal(base_env)
    assert_names(error, "PATRONI_SUPERUSER_PASSWORD_FILE", str(secret_file), "not UTF-8 text")
    assert "-secret" not in str(error)


@pytest.mark.parametrize("setting", PASSWORD_SETTINGS)
@pytest.mark.parametrize("content", ["", "\n", "\r\n", "\n\n", "   ", " \t \n"])
def test_empty_password_file_refused(
    base_env: dict[str, str], tmp_path: Path, setting: str, content: str
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(content, encoding="utf-8")
    base_env.pop(setting, None)
    base_env[f"{setting}_FILE"] = str(secret_file)
    assert_names(refusal(base_env), f"{setting}_FILE", str(secret_file), "the file is empty")


@pytest.mark.parametrize("setting", PASSWORD_SETTINGS)
@pytest.mark.parametrize(
    "content",
    [
        f"{SECRET}\nsecond-Line-secret\n",
        f"first-Line-secret\n{SECRET}",
        f"{SECRET}\rx\ny",
        "\nTrailing-secret",
    ],
)
def test_multi_line_password_file_refused(
    base_env: dict[str, str], tmp_path: Path, setting: str, content: str
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(content, encoding="utf-8", newline="")
    base_env.pop(setting, None)
    base_env[f"{setting}_FILE"] = str(secret_file)
    error = refusal(base_env)
    assert isinstance(error, SecretSettingError)
    assert error.exit_code == 2 and error.setting == setting
    assert str(error) == f"{setting} is invalid: a password must be a single line"
    assert_secret_hidden(error, *content.replace("\r", "\n").split("\n"))


@pytest.mark.parametrize("setting", PASSWORD_SETTINGS)
@pytest.mark.parametrize("value", [f"{SECRET}\nsecond-Line-secret", f"first-Line-secret\n{SECRET}\n"])
def test_multi_line_password_refused(base_env: dict[str, str], setting: str, value: str) -> None:
    base_env.pop(setting, None)
    base_env[setting] = value
    error = refusal(base_env)
    assert isinstance(error, SecretSettingError)
    assert str(error) == f"{setting} is invalid: a password must be a single line"
    assert_secret_hidden(error, SECRET, "second-Line-secret", "first-Line-secret")


def test_passwords_never_appear_in_repr(base_env: dict[str, str]) -> None:
    settings = load_settings(base_env | {"PATRONI_RESTAPI_PASSWORD": "api-Secret-pw"})
    shown = repr(settings)
    for secret in (
        base_env["PATRONI_SUPERUSER_PASSWORD"],
        base_env["PATRONI_REPLICATION_PASSWORD"],
        "api-Secret-pw",
    ):
        assert secret not in shown


@pytest.mark.parametrize(
    "overrides",
    [
        {"CITUS_ROLE": "bogus"},
        {"PATRONI_TTL": "5"},
        {"PATRONI_REPLICATION_USERNAME": "postgres"},
        {"PG_ALLOWED_NETWORKS": "nowhere"},
        {"PATRONI_SCOPE": "bad scope"},
    ],
)
def test_no_error_shows_any_password(
    base_env: dict[str, str], secrets: tuple[str, str], overrides: dict[str, str]
) -> None:
    base_env |= overrides
    assert_secret_hidden(refusal(base_env), *secrets)


# --------------------------------------------------------------------------------------------------
# Patroni's built-in Citus mode
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("builtin", "value"),
    [("PATRONI_CITUS_GROUP", "0"), ("PATRONI_CITUS_GROUP", "2"), ("PATRONI_CITUS_DATABASE", "citus")],
)
def test_builtin_citus_mode_is_refused_with_citus_enabled(
    base_env: dict[str, str], builtin: str, value: str
) -> None:
    base_env |= {"CITUS_ENABLE": "true", builtin: value}
    error = refusal(base_env)
    assert_names(error, builtin, value, BUILTIN)
    assert "CITUS_ENABLE" in str(error)


def test_builtin_citus_mode_refusal_names_the_group_when_both_are_set(base_env: dict[str, str]) -> None:
    base_env |= {"CITUS_ENABLE": "yes", "PATRONI_CITUS_GROUP": "1", "PATRONI_CITUS_DATABASE": "citus"}
    assert_names(refusal(base_env), "PATRONI_CITUS_GROUP", "1", BUILTIN)


@pytest.mark.parametrize("builtin", ["PATRONI_CITUS_GROUP", "PATRONI_CITUS_DATABASE"])
def test_builtin_citus_mode_alone_is_none_of_our_business(base_env: dict[str, str], builtin: str) -> None:
    base_env[builtin] = "1" if builtin == "PATRONI_CITUS_GROUP" else "citus"
    assert load_settings(base_env).citus.enabled is False


@pytest.mark.parametrize("blank", ["", "  "])
def test_blank_builtin_citus_variables_do_not_count(base_env: dict[str, str], blank: str) -> None:
    base_env |= {"CITUS_ENABLE": "true", "PATRONI_CITUS_GROUP": blank, "PATRONI_CITUS_DATABASE": blank}
    assert load_settings(base_env).citus.enabled is True


# --------------------------------------------------------------------------------------------------
# The DCS: etcd3 (TLS, client certificate, RBAC user) or ZooKeeper, in Patroni's own variable names
# --------------------------------------------------------------------------------------------------

ETCD3_FILES = {"PATRONI_ETCD3_CACERT": "cacert", "PATRONI_ETCD3_CERT": "cert", "PATRONI_ETCD3_KEY": "key"}
HTTPS = {"PATRONI_ETCD3_PROTOCOL": "https"}
CLIENT_CERTIFICATE = {"PATRONI_ETCD3_CERT": "/tls/client.crt", "PATRONI_ETCD3_KEY": "/tls/client.key"}


@pytest.mark.parametrize(("value", "expected"), [("http", "http"), ("https", "https"), (" HTTPS ", "https")])
def test_etcd3_protocols_accepted(base_env: dict[str, str], value: str, expected: str) -> None:
    base_env["PATRONI_ETCD3_PROTOCOL"] = value
    assert load_settings(base_env).patroni.dcs.protocol == expected


@pytest.mark.parametrize("value", ["tls", "ssl", "https://", "grpc", "http s", "unix"])
def test_etcd3_protocols_refused(base_env: dict[str, str], value: str) -> None:
    base_env["PATRONI_ETCD3_PROTOCOL"] = value
    assert_names(refusal(base_env), "PATRONI_ETCD3_PROTOCOL", value, "use http or https")


@pytest.mark.parametrize(
    "overrides",
    [
        {"PATRONI_ETCD3_CACERT": "/tls/ca.crt"},
        CLIENT_CERTIFICATE,
        {"PATRONI_ETCD3_CACERT": "/tls/ca.crt", **CLIENT_CERTIFICATE},
    ],
)
def test_etcd3_tls_files_accepted_with_https(base_env: dict[str, str], overrides: dict[str, str]) -> None:
    dcs = load_settings(base_env | HTTPS | overrides).patroni.dcs
    assert dcs.protocol == "https"
    for setting, attribute in ETCD3_FILES.items():
        assert getattr(dcs, attribute) == overrides.get(setting)


@pytest.mark.parametrize("setting", ETCD3_FILES)
@pytest.mark.parametrize("value", ["ca.crt", "./tls/ca.crt", "~/ca.crt", "/tls/a\n/b"])
def test_etcd3_tls_files_must_be_absolute(base_env: dict[str, str], setting: str, value: str) -> None:
    base_env |= HTTPS | CLIENT_CERTIFICATE | {setting: value}
    assert_names(refusal(base_env), setting, value, ABSOLUTE)


@pytest.mark.parametrize(
    ("present", "missing"),
    [("PATRONI_ETCD3_CERT", "PATRONI_ETCD3_KEY"), ("PATRONI_ETCD3_KEY", "PATRONI_ETCD3_CERT")],
)
def test_etcd3_client_certificate_and_key_go_together(
    base_env: dict[str, str], present: str, missing: str
) -> None:
    base_env |= HTTPS | {present: CLIENT_CERTIFICATE[present]}
    assert_names(refusal(base_env), missing, None, f"required with {present}")


@pytest.mark.parametrize("protocol", [None, "http", "HTTP"])
@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({"PATRONI_ETCD3_CACERT": "/tls/ca.crt"}, "PATRONI_ETCD3_CACERT"),
        (CLIENT_CERTIFICATE, "PATRONI_ETCD3_CERT"),
        ({"PATRONI_ETCD3_CACERT": "/tls/ca.crt", **CLIENT_CERTIFICATE}, "PATRONI_ETCD3_CACERT"),
    ],
)
def test_etcd3_tls_files_need_https(
    base_env: dict[str, str], files: dict[str, str], named: str, protocol: str | None
) -> None:
    base_env |= files
    if protocol is not None:
        base_env["PATRONI_ETCD3_PROTOCOL"] = protocol
    assert_names(refusal(base_env), named, files[named], "set PATRONI_ETCD3_PROTOCOL=https")


ETCD3_SECRET = "etcd-Secret-pw-3"


def test_etcd3_user_and_password_accepted(base_env: dict[str, str]) -> None:
    base_env |= {"PATRONI_ETCD3_USERNAME": "patroni@formation", "PATRONI_ETCD3_PASSWORD": ETCD3_SECRET}
    assert load_settings(base_env).patroni.dcs.auth == Credentials("patroni@formation", ETCD3_SECRET)


def test_etcd3_password_from_a_file(base_env: dict[str, str], tmp_path: Path) -> None:
    secret_file = tmp_path / "etcd-password"
    secret_file.write_text(f"{ETCD3_SECRET}\n", encoding="utf-8")
    base_env |= {"PATRONI_ETCD3_USERNAME": "patroni", "PATRONI_ETCD3_PASSWORD_FILE": str(secret_file)}
    assert load_settings(base_env).patroni.dcs.auth == Credentials("patroni", ETCD3_SECRET)


def test_etcd3_login_is_optional(base_env: dict[str, str]) -> None:
    assert load_settings(base_env | {"PATRONI_ETCD3_USERNAME": " "}).patroni.dcs.auth is None


@pytest.mark.parametrize("blank", [None, "", "  "])
def test_etcd3_user_needs_a_password(base_env: dict[str, str], blank: str | None) -> None:
    base_env["PATRONI_ETCD3_USERNAME"] = "patroni"
    if blank is not None:
        base_env["PATRONI_ETCD3_PASSWORD"] = blank
    assert_names(
        refusal(base_env),
        "PATRONI_ETCD3_PASSWORD",
        None,
        "required; set PATRONI_ETCD3_PASSWORD or PATRONI_ETCD3_PASSWORD_FILE",
    )


@pytest.mark.parametrize("setting", ["PATRONI_ETCD3_PASSWORD", "PATRONI_ETCD3_PASSWORD_FILE"])
def test_etcd3_password_needs_a_user(base_env: dict[str, str], tmp_path: Path, setting: str) -> None:
    secret_file = tmp_path / "etcd-password"
    secret_file.write_text(ETCD3_SECRET, encoding="utf-8")
    base_env[setting] = ETCD3_SECRET if setting == "PATRONI_ETCD3_PASSWORD" else str(secret_file)
    error = refusal(base_env)
    assert_names(error, "PATRONI_ETCD3_USERNAME", None, "required with PATRONI_ETCD3_PASSWORD")
    assert_secret_hidden(error, ETCD3_SECRET)


@pytest.mark.parametrize("value", ["pat roni", "pat\troni", "a" * 256, "pat\x7froni"])
def test_etcd3_user_names_refused(base_env: dict[str, str], value: str) -> None:
    base_env |= {"PATRONI_ETCD3_USERNAME": value, "PATRONI_ETCD3_PASSWORD": ETCD3_SECRET}
    error = refusal(base_env)
    assert_names(
        error, "PATRONI_ETCD3_USERNAME", value, "use a user name without spaces or control characters"
    )
    assert_secret_hidden(error, ETCD3_SECRET)


def test_etcd3_password_and_password_file_together_refused(base_env: dict[str, str], tmp_path: Path) -> None:
    secret_file = tmp_path / "etcd-password"
    secret_file.write_text("file-Secret-pw\n", encoding="utf-8")
    base_env |= {
        "PATRONI_ETCD3_USERNAME": "patroni",
        "PATRONI_ETCD3_PASSWORD": ETCD3_SECRET,
        "PATRONI_ETCD3_PASSWORD_FILE": str(secret_file),
    }
    error = refusal(base_env)
    assert isinstance(error, SecretSettingError)
    assert str(error) == (
        "PATRONI_ETCD3_PASSWORD is invalid: "
        "set either PATRONI_ETCD3_PASSWORD or PATRONI_ETCD3_PASSWORD_FILE, not both"
    )
    assert_secret_hidden(error, ETCD3_SECRET, "file-Secret-pw")


def test_etcd3_multi_line_password_refused(base_env: dict[str, str]) -> None:
    base_env |= {"PATRONI_ETCD3_USERNAME": "patroni", "PATRONI_ETCD3_PASSWORD": f"{ETCD3_SECRET}\nsecond"}
    error = refusal(base_env)
    assert isinstance(error, SecretSettingError)
    assert str(error) == "PATRONI_ETCD3_PASSWORD is invalid: a password must be a single line"
    assert_secret_hidden(error, ETCD3_SECRET)


def test_etcd3_password_never_appears_in_repr(base_env: dict[str, str]) -> None:
    base_env |= {"PATRONI_ETCD3_USERNAME": "patroni", "PATRONI_ETCD3_PASSWORD": ETCD3_SECRET}
    settings = load_settings(base_env)
    assert ETCD3_SECRET not in repr(settings) and ETCD3_SECRET not in repr(settings.patroni.dcs)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("zk-1:2181", ("zk-1:2181",)),
        (" zk-1:2181 , zk-2:2181,10.0.0.3:2182 ", ("zk-1:2181", "zk-2:2181", "10.0.0.3:2182")),
        ("[fd00::1]:2181", ("[fd00::1]:2181",)),
    ],
)
def test_zookeeper_hosts_choose_zookeeper(
    base_env: dict[str, str], value: str, expected: tuple[str, ...]
) -> None:
    base_env["PATRONI_ZOOKEEPER_HOSTS"] = value
    assert load_settings(base_env).patroni.dcs == DcsSettings(kind="zookeeper", hosts=expected)


@pytest.mark.parametrize(
    ("value", "bad_entry"),
    [("zk-1", "zk-1"), ("zk-1:2181,", ""), ("zk-1:99999", "zk-1:99999"), ("*:2181", "*:2181")],
)
def test_zookeeper_hosts_refused(base_env: dict[str, str], value: str, bad_entry: str) -> None:
    base_env["PATRONI_ZOOKEEPER_HOSTS"] = value
    error = refusal(base_env)
    assert_names(
        error, "PATRONI_ZOOKEEPER_HOSTS", value, "use a comma-separated list of host:port (e.g. zk-1:2181)"
    )
    assert f"entry {bad_entry!r} is not" in str(error)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("PATRONI_ETCD3_HOSTS", "e1:2379"),
        ("PATRONI_ETCD3_PROTOCOL", "https"),
        ("PATRONI_ETCD3_CACERT", "/tls/ca.crt"),
        ("PATRONI_ETCD3_USERNAME", "patroni"),
        ("PATRONI_ETCD3_PASSWORD", ETCD3_SECRET),
        ("PATRONI_ETCD3_KEY_PASSWORD", ETCD3_SECRET),  # Patroni's own, not read here: still a second DCS
    ],
)
def test_zookeeper_and_etcd3_together_refused(base_env: dict[str, str], setting: str, value: str) -> None:
    base_env |= {"PATRONI_ZOOKEEPER_HOSTS": "zk-1:2181", setting: value}
    error = refusal(base_env)
    assert_names(error, "PATRONI_ZOOKEEPER_HOSTS", "zk-1:2181", f"set one DCS: {setting} is set too")
    assert_secret_hidden(error, ETCD3_SECRET)


def test_blank_etcd3_variables_do_not_count_against_zookeeper(base_env: dict[str, str]) -> None:
    base_env |= {"PATRONI_ZOOKEEPER_HOSTS": "zk-1:2181", "PATRONI_ETCD3_HOSTS": "", "PATRONI_ETCD3_KEY": " "}
    assert load_settings(base_env).patroni.dcs.kind == "zookeeper"


@pytest.mark.parametrize("setting", ["PATRONI_ZOOKEEPER_USE_SSL", "PATRONI_ZOOKEEPER_CACERT"])
def test_zookeeper_settings_without_zookeeper_hosts_refused(base_env: dict[str, str], setting: str) -> None:
    base_env[setting] = "true" if setting.endswith("SSL") else "/tls/zk-ca.crt"
    assert_names(refusal(base_env), "PATRONI_ZOOKEEPER_HOSTS", None, f"required when {setting} is set")


def test_etcd3_patroni_section_has_patronis_own_keys() -> None:
    dcs = DcsSettings(
        hosts=("e1:2379", "e2:2379"),
        protocol="https",
        cacert="/tls/ca.crt",
        cert="/tls/client.crt",
        key="/tls/client.key",
        auth=Credentials("patroni", ETCD3_SECRET),
    )
    assert dcs.patroni_section() == {
        "etcd3": {
            "hosts": ["e1:2379", "e2:2379"],
            "protocol": "https",
            "cacert": "/tls/ca.crt",
            "cert": "/tls/client.crt",
            "key": "/tls/client.key",
            "username": "patroni",
            "password": ETCD3_SECRET,
        }
    }
    assert DcsSettings().patroni_section() == {"etcd3": {"hosts": ["127.0.0.1:2379"]}}


# --------------------------------------------------------------------------------------------------
# PostgreSQL's own TLS, and hostssl
# --------------------------------------------------------------------------------------------------

SERVER_TLS = {"PG_SSL_CERT_FILE": "/tls/server.crt", "PG_SSL_KEY_FILE": "/tls/server.key"}
SERVER_TLS_FILES = {
    "PG_SSL_CERT_FILE": "ssl_cert_file",
    "PG_SSL_KEY_FILE": "ssl_key_file",
    "PG_SSL_CA_FILE": "ssl_ca_file",
}


@pytest.mark.parametrize("overrides", [SERVER_TLS, {**SERVER_TLS, "PG_SSL_CA_FILE": "/tls/ca.crt"}])
def test_server_tls_files_accepted(base_env: dict[str, str], overrides: dict[str, str]) -> None:
    patroni = load_settings(base_env | overrides).patroni
    for setting, attribute in SERVER_TLS_FILES.items():
        assert getattr(patroni, attribute) == overrides.get(setting)


@pytest.mark.parametrize("setting", SERVER_TLS_FILES)
@pytest.mark.parametrize("value", ["server.crt", "./tls/server.crt", "/tls/a\n/b"])
def test_server_tls_files_must_be_absolute(base_env: dict[str, str], setting: str, value: str) -> None:
    base_env |= SERVER_TLS | {"PG_SSL_CA_FILE": "/tls/ca.crt", setting: value}
    assert_names(refusal(base_env), setting, value, ABSOLUTE)


@pytest.mark.parametrize(
    ("present", "missing"), [("PG_SSL_CERT_FILE", "PG_SSL_KEY_FILE"), ("PG_SSL_KEY_FILE", "PG_SSL_CERT_FILE")]
)
def test_server_certificate_and_key_go_together(base_env: dict[str, str], present: str, missing: str) -> None:
    base_env[present] = SERVER_TLS[present]
    assert_names(refusal(base_env), missing, None, f"required with {present}")


def test_server_ca_file_needs_the_certificate(base_env: dict[str, str]) -> None:
    base_env["PG_SSL_CA_FILE"] = "/tls/ca.crt"
    assert_names(
        refusal(base_env), "PG_SSL_CA_FILE", "/tls/ca.crt", "needs PG_SSL_CERT_FILE and PG_SSL_KEY_FILE"
    )


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("on", True), ("0", False), ("", False)])
def test_hostssl_accepted_with_a_certificate(base_env: dict[str, str], value: str, expected: bool) -> None:
    assert load_settings(base_env | SERVER_TLS | {"PG_HBA_HOSTSSL": value}).patroni.hba_hostssl is expected


@pytest.mark.parametrize("value", ["true", "YES", "1"])
def test_hostssl_needs_a_certificate(base_env: dict[str, str], value: str) -> None:
    base_env["PG_HBA_HOSTSSL"] = value
    assert_names(refusal(base_env), "PG_HBA_HOSTSSL", value, "needs PG_SSL_CERT_FILE and PG_SSL_KEY_FILE")


def test_hostssl_false_needs_nothing(base_env: dict[str, str]) -> None:
    assert load_settings(base_env | {"PG_HBA_HOSTSSL": "off"}).patroni.hba_hostssl is False


@pytest.mark.parametrize("value", ["hostssl", "2", "tls"])
def test_hostssl_booleans_refused(base_env: dict[str, str], value: str) -> None:
    base_env |= SERVER_TLS | {"PG_HBA_HOSTSSL": value}
    assert_names(refusal(base_env), "PG_HBA_HOSTSSL", value, BOOL)


# --------------------------------------------------------------------------------------------------
# Citus between nodes: the root certificate of verify-ca / verify-full
# --------------------------------------------------------------------------------------------------

VERIFYING = ["verify-ca", "verify-full"]
CONNINFO_PATH = "use an absolute path without spaces, quotes or backslashes"


@pytest.mark.parametrize("mode", VERIFYING)
def test_verifying_sslmodes_need_a_root_certificate(base_env: dict[str, str], mode: str) -> None:
    base_env["CITUS_NODE_SSLMODE"] = mode
    assert_names(
        refusal(base_env), "CITUS_NODE_SSLMODE", mode, "set CITUS_NODE_SSLROOTCERT (or PG_SSL_CA_FILE)"
    )


def test_the_root_certificate_rule_holds_for_citus_settings_alone() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_citus_settings({"CITUS_NODE_SSLMODE": " Verify-Full "})
    assert_names(caught.value, "CITUS_NODE_SSLMODE", " Verify-Full ", "set CITUS_NODE_SSLROOTCERT")
    citus = load_citus_settings(
        {"CITUS_NODE_SSLMODE": "verify-full", "CITUS_NODE_SSLROOTCERT": "/tls/ca.crt"}
    )
    assert citus.node_sslrootcert == "/tls/ca.crt"
    assert load_citus_settings(
        {"CITUS_NODE_SSLMODE": "verify-ca"}, pg_ssl_ca_file="/x.crt"
    ).node_sslrootcert == ("/x.crt")


@pytest.mark.parametrize("mode", VERIFYING)
def test_verifying_sslmodes_fall_back_to_the_servers_ca_file(base_env: dict[str, str], mode: str) -> None:
    base_env |= SERVER_TLS | {"PG_SSL_CA_FILE": "/tls/ca.crt", "CITUS_NODE_SSLMODE": mode}
    citus = load_settings(base_env).citus
    assert citus.node_sslrootcert == "/tls/ca.crt"
    assert citus.node_conninfo == f"sslmode={mode} sslrootcert=/tls/ca.crt tcp_user_timeout=30000"


@pytest.mark.parametrize("mode", [None, *VERIFYING])
def test_the_own_root_certificate_wins(base_env: dict[str, str], mode: str | None) -> None:
    base_env |= SERVER_TLS | {"PG_SSL_CA_FILE": "/tls/ca.crt", "CITUS_NODE_SSLROOTCERT": "/tls/nodes-ca.crt"}
    if mode is not None:
        base_env["CITUS_NODE_SSLMODE"] = mode
    assert load_settings(base_env).citus.node_sslrootcert == "/tls/nodes-ca.crt"


@pytest.mark.parametrize("mode", ["disable", "prefer", "require"])
def test_non_verifying_sslmodes_do_not_take_the_servers_ca_file(base_env: dict[str, str], mode: str) -> None:
    base_env |= SERVER_TLS | {"PG_SSL_CA_FILE": "/tls/ca.crt", "CITUS_NODE_SSLMODE": mode}
    citus = load_settings(base_env).citus
    assert citus.node_sslrootcert is None
    assert citus.node_conninfo == f"sslmode={mode} tcp_user_timeout=30000"


@pytest.mark.parametrize("value", ["ca.crt", "./ca.crt", "/tls/a\n/b"])
def test_node_root_certificate_must_be_absolute(base_env: dict[str, str], value: str) -> None:
    base_env["CITUS_NODE_SSLROOTCERT"] = value
    assert_names(refusal(base_env), "CITUS_NODE_SSLROOTCERT", value, ABSOLUTE)


@pytest.mark.parametrize(
    "value", ["/tls/my ca.crt", "/tls/ca'.crt", '/tls/"ca".crt', "/tls\\ca.crt", "/tls/ca\t.crt"]
)
def test_node_root_certificate_must_fit_unquoted_in_node_conninfo(
    base_env: dict[str, str], value: str
) -> None:
    base_env["CITUS_NODE_SSLROOTCERT"] = value
    assert_names(refusal(base_env), "CITUS_NODE_SSLROOTCERT", value, CONNINFO_PATH)


def test_a_fallback_ca_file_must_fit_unquoted_in_node_conninfo(base_env: dict[str, str]) -> None:
    base_env |= SERVER_TLS | {"PG_SSL_CA_FILE": "/tls/my ca.crt", "CITUS_NODE_SSLMODE": "verify-full"}
    error = refusal(base_env)
    assert_names(error, "PG_SSL_CA_FILE", "/tls/my ca.crt", CONNINFO_PATH)
    assert "or set CITUS_NODE_SSLROOTCERT" in str(error)
    # Spaces are fine where the CA file is only PostgreSQL's own ssl_ca_file.
    base_env["CITUS_NODE_SSLMODE"] = "require"
    assert load_settings(base_env).patroni.ssl_ca_file == "/tls/my ca.crt"


# --------------------------------------------------------------------------------------------------
# Which variables the settings consumed (the entrypoint keeps exactly those from Patroni)
# --------------------------------------------------------------------------------------------------


def test_consumed_variables_are_the_ones_read(base_env: dict[str, str]) -> None:
    base_env |= {
        "PATRONI_ETCD3_USERNAME": "patroni",
        "PATRONI_ETCD3_PASSWORD": ETCD3_SECRET,
        "PATRONI_LOG_LEVEL": "DEBUG",
        "PATRONI_ETCD3_KEY_PASSWORD": "key-pw",
        "PATRONI_CITUS_GROUP": "1",
        "FOO": "bar",
    }
    settings, consumed = load_settings_with_consumed(base_env)
    assert settings == load_settings(base_env)
    assert set(BASE_ENV_NAMES) | {"PATRONI_ETCD3_USERNAME", "PATRONI_ETCD3_PASSWORD"} <= consumed
    assert {
        "PATRONI_SUPERUSER_PASSWORD_FILE",
        "PATRONI_ETCD3_PASSWORD_FILE",
        "CITUS_ENABLE",
        "PG_SSL_CA_FILE",
    } <= consumed
    # Only looked at, or not ours at all: they stay Patroni's.
    assert not {"PATRONI_LOG_LEVEL", "PATRONI_ETCD3_KEY_PASSWORD", "PATRONI_CITUS_GROUP", "FOO"} & consumed
    assert "PATRONI_CITUS_DATABASE" not in consumed


def test_blank_variables_of_the_other_dcs_are_consumed(base_env: dict[str, str]) -> None:
    # Patroni would make a DCS section of a blank one, next to the one the template renders.
    _, consumed = load_settings_with_consumed(
        base_env | {"PATRONI_ZOOKEEPER_HOSTS": "zk-1:2181", "PATRONI_ETCD3_X": ""}
    )
    assert "PATRONI_ETCD3_X" in consumed
    _, consumed = load_settings_with_consumed(base_env | {"PATRONI_ZOOKEEPER_USE_SSL": " "})
    assert "PATRONI_ZOOKEEPER_USE_SSL" in consumed


BASE_ENV_NAMES = (
    "PATRONI_SCOPE",
    "PATRONI_NAME",
    "PATRONI_SUPERUSER_PASSWORD",
    "PATRONI_REPLICATION_PASSWORD",
)


# --------------------------------------------------------------------------------------------------
# Every bad variable at once, and likely typos
# --------------------------------------------------------------------------------------------------


def test_every_malformed_variable_is_reported_at_once(base_env: dict[str, str]) -> None:
    base_env |= {"CITUS_ENABLE": "maybe", "CITUS_COORDINATOR_PORT": "70000", "PATRONI_TTL": "5"}
    error = refusal(base_env)
    assert isinstance(error, SettingsErrors) and error.exit_code == 2
    lines = str(error).splitlines()
    assert [line.split("=")[0] for line in lines] == ["CITUS_ENABLE", "CITUS_COORDINATOR_PORT", "PATRONI_TTL"]


def test_a_conflict_is_reported_once_not_once_per_variable_set_aside(base_env: dict[str, str]) -> None:
    base_env |= {"CITUS_ENABLE": "yes", "PATRONI_CITUS_GROUP": "1", "PATRONI_CITUS_DATABASE": "citus"}
    base_env["CITUS_MAX_PREPARED_TRANSACTIONS"] = "lots"
    lines = str(refusal(base_env)).splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("CITUS_MAX_PREPARED_TRANSACTIONS='lots'") or lines[1].startswith(
        "CITUS_MAX_PREPARED_TRANSACTIONS='lots'"
    )
    assert sum("built-in Citus mode" in line for line in lines) == 1


def test_secret_values_stay_hidden_among_several_errors(base_env: dict[str, str]) -> None:
    base_env |= {"PATRONI_SUPERUSER_PASSWORD": f"{SECRET}\nsecond-Line-secret", "CITUS_ENABLE": "maybe"}
    error = refusal(base_env)
    assert len(str(error).splitlines()) == 2
    assert_secret_hidden(error, SECRET, "second-Line-secret")


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("CITUS_ROLLE", "CITUS_ROLE"),
        ("CITUS_ENABLED", "CITUS_ENABLE"),
        ("CITUS_COORDINATOR_HOTS", "CITUS_COORDINATOR_HOST"),
    ],
)
def test_a_misspelt_citus_variable_is_refused_with_the_name_it_meant(
    base_env: dict[str, str], typo: str, meant: str
) -> None:
    base_env[typo] = "worker"
    error = refusal(base_env)
    assert error.setting == typo and error.exit_code == 2
    assert str(error) == f"{typo} is not a patroni-citus setting; did you mean {meant}?"


def test_a_patroni_variable_close_to_one_we_render_is_only_a_warning(base_env: dict[str, str]) -> None:
    base_env["PATRONI_ETCD3_HOST"] = "etcd:2379"  # Patroni's own; it would bypass PATRONI_ETCD3_HOSTS
    load_settings(base_env)  # not refused
    warnings = [warning for _error, warning in typo_findings(base_env) if warning]
    assert warnings == [
        "PATRONI_ETCD3_HOST is not read by patroni-citus (Patroni may read it); "
        "did you mean PATRONI_ETCD3_HOSTS?"
    ]


@pytest.mark.parametrize(
    "name", ["CITUS_SOMETHING_ELSE", "PATRONI_LOG_LEVEL", "PATRONI_CITUS_GROUP", "CITUS_ROLE"]
)
def test_unrelated_or_known_variables_are_no_typos(base_env: dict[str, str], name: str) -> None:
    base_env[name] = "1" if name == "PATRONI_CITUS_GROUP" else "worker" if name == "CITUS_ROLE" else "x"
    assert typo_findings(base_env) == []
