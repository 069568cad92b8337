"""Reading a member's patroni.yml: every malformed file is one ConfigurationError naming the file."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from patroni_citus.errors import ConfigurationError
from patroni_citus.member_config import load_member_config
from patroni_citus.settings import CitusSettings, Credentials

MINIMAL: dict[str, Any] = {
    "scope": "demo-1",
    "name": "member-1",
    "restapi": {"listen": "0.0.0.0:8008", "connect_address": "node-1:8008"},
    "etcd3": {"hosts": ["e1:2379"]},
    "postgresql": {
        "listen": "10.0.0.9:5432",
        "connect_address": "node-1:5433",
        "authentication": {"superuser": {"username": "postgres", "password": "pw"}},
    },
}


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "patroni.yml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def write_config(tmp_path: Path, config: Any) -> Path:
    return write(tmp_path, yaml.safe_dump(config))


def with_changes(**changes: Any) -> dict[str, Any]:
    """MINIMAL with keys replaced, nested ones spelled a__b (a value of ... deletes the key)."""
    config: dict[str, Any] = copy.deepcopy(MINIMAL)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = config
        for key in parents:
            node = node[key]
        if value is ...:
            del node[leaf]
        else:
            node[leaf] = value
    return config


def refusal(path: Path) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        load_member_config(path)
    error = caught.value
    assert error.exit_code == 2
    assert error.setting == "--config"
    assert str(error).startswith(f"--config={str(path)!r} is invalid: ")
    assert "\n" not in str(error)
    return error


def test_a_minimal_config_loads(tmp_path: Path) -> None:
    member = load_member_config(write_config(tmp_path, MINIMAL))
    assert (member.scope, member.name, member.dcs.namespace) == ("demo-1", "member-1", "/service/")
    assert dict(member.dcs.sections) == {"etcd3": {"hosts": ["e1:2379"]}}
    assert member.rest_url == "http://node-1:8008"
    assert member.rest_auth is None
    assert member.superuser == Credentials("postgres", "pw")
    assert (member.postgres_host, member.postgres_port) == ("node-1", 5433)
    assert member.socket_dir is None
    assert member.citus == CitusSettings(enabled=False)


def test_listen_is_used_when_there_is_no_connect_address(tmp_path: Path) -> None:
    member = load_member_config(write_config(tmp_path, with_changes(postgresql__connect_address=...)))
    assert (member.postgres_host, member.postgres_port) == ("10.0.0.9", 5432)


def test_the_dcs_section_is_passed_on_as_patroni_reads_it(tmp_path: Path) -> None:
    etcd3 = {"hosts": "e1:2379,e2:2379", "protocol": "https", "cacert": "/ca.pem", "password": "pw"}
    member = load_member_config(write_config(tmp_path, with_changes(etcd3=etcd3)))
    assert dict(member.dcs.sections) == {"etcd3": etcd3}
    assert member.dcs.describe() == "etcd3 https://e1:2379,e2:2379"


def test_a_zookeeper_member_reads_zookeeper(tmp_path: Path) -> None:
    member = load_member_config(
        write_config(tmp_path, with_changes(etcd3=..., zookeeper={"hosts": ["z:2181"]}))
    )
    assert member.dcs.kind == "zookeeper"


def test_a_config_without_a_dcs_is_refused(tmp_path: Path) -> None:
    assert "names no DCS" in str(refusal(write_config(tmp_path, with_changes(etcd3=...))))


def test_citus_tags_enable_citus(tmp_path: Path) -> None:
    tags = {"citus_role": "worker", "citus_group": 2, "citus_coordinator_host": "c1,c2:6432"}
    member = load_member_config(write_config(tmp_path, with_changes(tags=tags)))
    assert member.citus.enabled is True
    assert (member.citus.role, member.citus.group) == ("worker", 2)
    assert member.citus.coordinator_hosts == ("c1", "c2:6432")
    assert member.citus.hold_timeout == 15


def test_the_hold_timeout_travels_as_a_tag(tmp_path: Path) -> None:
    tags = {"citus_role": "worker", "citus_group": 1, "citus_coordinator_host": "c1", "citus_hold_timeout": 7}
    assert load_member_config(write_config(tmp_path, with_changes(tags=tags))).citus.hold_timeout == 7


def test_other_tags_do_not_enable_citus(tmp_path: Path) -> None:
    member = load_member_config(write_config(tmp_path, with_changes(tags={"nofailover": True})))
    assert member.citus.enabled is False


@pytest.mark.parametrize(
    ("tags", "setting"),
    [
        ({"citus_role": "worker"}, "CITUS_GROUP"),
        ({"citus_role": "worker", "citus_group": "abc"}, "CITUS_GROUP"),
        ({"citus_role": "master"}, "CITUS_ROLE"),
        ({"citus_role": "coordinator", "citus_coordinator_host": "c1;drop"}, "CITUS_COORDINATOR_HOST"),
        ({"citus_role": "coordinator", "citus_coordinator_port": 0}, "CITUS_COORDINATOR_PORT"),
        ({"citus_role": "coordinator", "citus_database": "a b"}, "CITUS_DATABASE"),
        ({"citus_role": "coordinator", "citus_hold_timeout": 0}, "CITUS_HOLD_TIMEOUT"),
    ],
)
def test_bad_citus_tags_are_refused_by_the_same_rules_as_the_environment(
    tmp_path: Path, tags: dict[str, Any], setting: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_member_config(write_config(tmp_path, with_changes(tags=tags)))
    assert caught.value.setting == setting
    assert caught.value.exit_code == 2


# --------------------------------------------------------------------------------------------------
# Malformed files
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ("scope: [unclosed\n", None),
        ("scope: x\n  bad: indentation\n", 2),
        ("a: 1\na: {\n", None),
        ("key: 'unterminated\n", None),
        ("\tscope: tab\n", 1),
        ("scope: x\n- item\n", 2),
    ],
)
def test_malformed_yaml(tmp_path: Path, content: str, line: int | None) -> None:
    error = refusal(write(tmp_path, content))
    assert "not valid YAML" in str(error)
    if line is not None:
        assert f"at line {line}" in str(error)


def test_unsafe_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, "scope: !!python/object/apply:os.system ['true']\n"))
    assert "not valid YAML" in str(error)


@pytest.mark.parametrize("content", ["", "null\n", "- a\n- b\n", "just a string\n", "42\n", "---\n...\n"])
def test_not_a_mapping(tmp_path: Path, content: str) -> None:
    assert "not a YAML mapping" in str(refusal(write(tmp_path, content)))


def test_missing_file(tmp_path: Path) -> None:
    error = refusal(tmp_path / "absent.yml")
    assert "cannot read it (No such file or directory)" in str(error)


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    assert "cannot read it" in str(refusal(tmp_path))


def test_not_utf8(tmp_path: Path) -> None:
    assert "not UTF-8" in str(refusal(write(tmp_path, b"scope: \xff\xfe\n")))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"restapi": ...}, "no 'restapi' section"),
        ({"restapi": None}, "no 'restapi' section"),
        ({"restapi": "node-1:8008"}, "no 'restapi' section"),
        ({"restapi": ["node-1:8008"]}, "no 'restapi' section"),
        ({"postgresql": ...}, "no 'postgresql' section"),
        ({"postgresql": 5432}, "no 'postgresql' section"),
        ({"postgresql__authentication": ...}, "postgresql.authentication.superuser is missing"),
        ({"postgresql__authentication": None}, "postgresql.authentication.superuser is missing"),
        ({"postgresql__authentication": "postgres"}, "'postgresql.authentication' must be a mapping"),
        ({"postgresql__authentication": ["postgres"]}, "'postgresql.authentication' must be a mapping"),
        ({"postgresql__authentication__superuser": ...}, "postgresql.authentication.superuser is missing"),
        (
            {"postgresql__authentication__superuser": "postgres"},
            "postgresql.authentication.superuser is missing",
        ),
        ({"postgresql__authentication__superuser__password": ...}, "superuser is missing"),
        ({"postgresql__authentication__superuser__username": None}, "superuser is missing"),
        (
            {"postgresql__connect_address": ..., "postgresql__listen": ...},
            "connect_address must be host:port",
        ),
        ({"postgresql__connect_address": "node-1"}, "connect_address must be host:port"),
        ({"postgresql__connect_address": "node-1:abc"}, "connect_address must be host:port"),
        ({"postgresql__connect_address": "node-1:\u00b2"}, "connect_address must be host:port"),
        (
            {"postgresql__parameters": "unix_socket_directories=/run"},
            "'postgresql.parameters' must be a mapping",
        ),
        ({"tags": ["citus_role"]}, "'tags' must be a mapping"),
        ({"tags": "citus_role=worker"}, "'tags' must be a mapping"),
        ({"etcd3": "e1:2379"}, "'etcd3' must be a mapping"),
        ({"bootstrap": ["dcs"]}, "'bootstrap' must be a mapping"),
        ({"bootstrap": {"dcs": "ttl=30"}}, "'bootstrap.dcs' must be a mapping"),
        (
            {"bootstrap": {"dcs": {"postgresql": {"parameters": ["max_prepared_transactions"]}}}},
            "'bootstrap.dcs.postgresql.parameters' must be a mapping",
        ),
    ],
)
def test_missing_or_malformed_sections(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    error = refusal(write_config(tmp_path, with_changes(**changes)))
    assert message in str(error)


def test_errors_never_show_the_superuser_password(tmp_path: Path) -> None:
    config = with_changes(
        postgresql__connect_address="bad", postgresql__authentication__superuser__password="S3cret!"
    )
    assert "S3cret!" not in str(refusal(write_config(tmp_path, config)))
