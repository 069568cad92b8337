"""The pooler's pure parts: settings and their refusals, rendered files, the watcher's pause judgement."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from patroni_citus import pgbouncer
from patroni_citus.cli import cli
from patroni_citus.errors import ConfigurationError
from patroni_citus.local.layout import FormationLayout
from patroni_citus.member_config import load_member_config
from patroni_citus.planner import Endpoint
from patroni_citus.pooler_config import (
    PoolerFiles,
    read_target,
    render_databases,
    render_ini,
    render_userlist,
    write_config,
    write_target,
)
from patroni_citus.pooler_watch import PauseJudge, Primary
from patroni_citus.settings import Credentials, Settings, load_pooler_settings, load_settings

ADMIN_PASSWORD = "admin-Secret-3"
CLIENT_PASSWORD = 'client-"Secret"-4'


@pytest.fixture
def pooler_env(tmp_path: Path) -> dict[str, str]:
    admin, client = tmp_path / "admin.password", tmp_path / "client.password"
    admin.write_text(ADMIN_PASSWORD + "\n")
    client.write_text(CLIENT_PASSWORD + "\n")
    return {
        "CITUS_POOLER_CONFIG_DIR": str(tmp_path / "pooler"),
        "CITUS_POOLER_ADMIN_PASSWORD_FILE": str(admin),
        "CITUS_POOLER_CLIENT_PASSWORD_FILE": str(client),
    }


def refused(environ: Mapping[str, str]) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        load_pooler_settings(environ)
    message = str(caught.value)
    assert "\n" not in message and ADMIN_PASSWORD not in message and CLIENT_PASSWORD not in message
    assert caught.value.exit_code == 2
    return caught.value


def test_defaults_are_transaction_pooling_behind_scram(pooler_env: dict[str, str]) -> None:
    settings = load_pooler_settings(pooler_env)
    assert (settings.pool_mode, settings.listen, settings.admin.username) == (
        "transaction",
        "0.0.0.0:6432",
        "pooler_admin",
    )
    assert settings.admin_address == (settings.config_dir, 6432)
    ini = render_ini(settings, PoolerFiles(Path(settings.config_dir)))
    assert "auth_type = scram-sha-256" in ini and "admin_users = pooler_admin" in ini
    assert f"%include {settings.config_dir}/databases.ini" in ini
    assert ADMIN_PASSWORD not in ini and CLIENT_PASSWORD not in ini


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CITUS_POOLER_POOL_MODE", "statement"),
        ("CITUS_POOLER_LISTEN", "6432"),
        ("CITUS_POOLER_LISTEN", "host:99999"),
        ("CITUS_POOLER_MAX_CLIENT_CONN", "0"),
        ("CITUS_POOLER_POOL_SIZE", "many"),
        ("CITUS_POOLER_QUERY_WAIT_TIMEOUT", "10"),  # not more than CITUS_HOLD_TIMEOUT (15)
        ("CITUS_POOLER_ADMIN_USER", "adm;in"),
        ("CITUS_POOLER_CLIENT_USER", "pooler_admin"),  # the admin's own name
        ("CITUS_POOLER_SERVER_SSLMODE", "verify-full"),  # without a root certificate
        ("CITUS_POOLER_SERVER_SSLMODE", "maybe"),
        ("CITUS_POOLER_CONFIG_DIR", "relative/dir"),
        ("CITUS_DATABASE", "1bad"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(pooler_env: dict[str, str], name: str, value: str) -> None:
    error = refused({**pooler_env, name: value})
    assert error.setting in (name, "CITUS_POOLER_SERVER_SSLROOTCERT")


@pytest.mark.parametrize("content", ["", "   \n", "\n", "two\nlines\n"])
def test_password_files_must_hold_one_nonblank_line(
    pooler_env: dict[str, str], tmp_path: Path, content: str
) -> None:
    path = tmp_path / "bad.password"
    path.write_text(content)
    error = refused({**pooler_env, "CITUS_POOLER_CLIENT_PASSWORD_FILE": str(path)})
    assert error.setting == "CITUS_POOLER_CLIENT_PASSWORD_FILE"


@pytest.mark.parametrize("name", ["CITUS_POOLER_ADMIN_PASSWORD_FILE", "CITUS_POOLER_CLIENT_PASSWORD_FILE"])
def test_password_files_are_required_and_must_exist(pooler_env: dict[str, str], name: str) -> None:
    assert refused({k: v for k, v in pooler_env.items() if k != name}).setting == name
    assert refused({**pooler_env, name: "/nonexistent/file"}).setting == name


def test_userlist_quotes_passwords_and_files_are_private(pooler_env: dict[str, str]) -> None:
    settings = load_pooler_settings(pooler_env)
    assert render_userlist(settings) == (
        '"postgres" "client-""Secret""-4"\n' + f'"pooler_admin" "{ADMIN_PASSWORD}"\n'
    )
    files = PoolerFiles(Path(settings.config_dir))
    written = write_config(settings, files, owner=None)
    assert written == [files.ini, files.userlist]
    assert all(os.stat(path).st_mode & 0o777 == 0o600 for path in written)
    assert not files.databases.exists(), "the target is the watcher's to write"


def test_the_include_file_names_the_target_and_is_read_back(tmp_path: Path) -> None:
    files = PoolerFiles(tmp_path)
    assert read_target(files) is None
    write_target(files, "citus", Endpoint("10.0.0.5", 5433))
    assert files.databases.read_text() == "citus = host=10.0.0.5 port=5433 dbname=citus\n"
    assert read_target(files) == Endpoint("10.0.0.5", 5433)
    with pytest.raises(ConfigurationError):
        render_databases("citus", Endpoint("evil host=x", 5432))
    assert read_target(files) == Endpoint("10.0.0.5", 5433), "a refused target leaves the file alone"


def test_pause_commands_take_only_plain_database_names() -> None:
    login = pgbouncer.PoolerLogin(Endpoint("127.0.0.1", 1), Credentials("a", "b"))
    with pytest.raises(ConfigurationError):
        pgbouncer.pause_within(login, "citus; SHUTDOWN", 0.1)


def test_poolers_a_coordinator_announces_in_its_tags(pooler_env: dict[str, str]) -> None:
    tags = {
        "citus_poolers": "pgb-1:6432,10.0.0.9:6433",
        "citus_pooler_admin_user": "adm",
        "citus_pooler_admin_password_file": pooler_env["CITUS_POOLER_ADMIN_PASSWORD_FILE"],
    }
    logins = pgbouncer.tag_logins(tags)
    assert [str(login) for login in logins] == ["pgb-1:6432", "10.0.0.9:6433"]
    assert {login.admin for login in logins} == {Credentials("adm", ADMIN_PASSWORD)}
    assert pgbouncer.tag_logins({}) == []


def coordinator_env(base_env: dict[str, str], pooler_env: dict[str, str]) -> dict[str, str]:
    return {
        **base_env,
        "CITUS_ENABLE": "true",
        "CITUS_POOLERS": "pgb-1:6432",
        "CITUS_POOLER_ADMIN_PASSWORD_FILE": pooler_env["CITUS_POOLER_ADMIN_PASSWORD_FILE"],
    }


def test_coordinator_tags_carry_the_poolers_but_never_the_password(
    base_env: dict[str, str],
    pooler_env: dict[str, str],
    render_to_file: Callable[[Mapping[str, str]], tuple[Settings, Path]],
) -> None:
    _, path = render_to_file(coordinator_env(base_env, pooler_env))
    text = path.read_text()
    assert 'citus_poolers: "pgb-1:6432"' in text and ADMIN_PASSWORD not in text
    citus = load_member_config(path).citus
    assert citus.poolers == ("pgb-1:6432",)
    assert citus.pooler_admin_password_file == pooler_env["CITUS_POOLER_ADMIN_PASSWORD_FILE"]
    os.unlink(pooler_env["CITUS_POOLER_ADMIN_PASSWORD_FILE"])
    assert load_member_config(path).citus.poolers, "callbacks still load; only the pause needs the file"
    with pytest.raises(ConfigurationError):
        pgbouncer.settings_logins(load_member_config(path).citus)


def test_poolers_need_the_admin_password_file(base_env: dict[str, str], pooler_env: dict[str, str]) -> None:
    environ = coordinator_env(base_env, pooler_env)
    del environ["CITUS_POOLER_ADMIN_PASSWORD_FILE"]
    with pytest.raises(ConfigurationError, match=r"^CITUS_POOLER_ADMIN_PASSWORD_FILE"):
        load_settings(environ)
    with pytest.raises(ConfigurationError, match=r"^CITUS_POOLERS"):
        load_settings({**environ, "CITUS_POOLERS": "pgb-1"})
    with pytest.raises(ConfigurationError, match=r"^CITUS_POOLER_ADMIN_PASSWORD_FILE"):
        load_settings({**environ, "CITUS_POOLER_ADMIN_PASSWORD_FILE": "/nonexistent"})


def test_pooler_render_refuses_with_one_line_and_writes_nothing(
    clean_process_env: pytest.MonkeyPatch, pooler_env: dict[str, str]
) -> None:
    for name, value in {**pooler_env, "CITUS_POOLER_POOL_SIZE": "0"}.items():
        clean_process_env.setenv(name, value)
    result = CliRunner().invoke(cli, ["pooler", "render"], prog_name="patroni-citus")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "patroni-citus: error: CITUS_POOLER_POOL_SIZE='0' is invalid: use an integer from 1 to 10000"
    ]
    assert not Path(pooler_env["CITUS_POOLER_CONFIG_DIR"]).exists()


def test_pooler_render_writes_the_config(
    clean_process_env: pytest.MonkeyPatch, pooler_env: dict[str, str]
) -> None:
    for name, value in pooler_env.items():
        clean_process_env.setenv(name, value)
    result = CliRunner().invoke(cli, ["pooler", "render"], prog_name="patroni-citus")
    assert result.exit_code == 0, result.stderr
    assert (Path(pooler_env["CITUS_POOLER_CONFIG_DIR"]) / "pgbouncer.ini").exists()
    assert ADMIN_PASSWORD not in result.output + result.stderr


def primary(name: str, minutes: int = 0) -> Primary:
    started = datetime(2026, 12, 2, tzinfo=UTC) + timedelta(minutes=minutes)
    return Primary(name, Endpoint("127.0.0.1", 5432 + len(name)), started)


def test_a_pause_ends_once_the_pooler_points_at_the_next_primary() -> None:
    judge = PauseJudge(bound=15)
    old, new = primary("a"), primary("bb")
    assert judge.observe(True, 100.0, old, old, True) is None  # the stop has not happened yet
    assert judge.observe(True, 101.0, old, None, False) is None  # no primary during the handover
    assert judge.observe(True, 102.0, None, new, False) is None  # not repointed yet
    reason = judge.observe(True, 102.1, new, new, True)
    assert reason is not None and "bb" in reason


def test_a_restarted_primary_succeeds_itself_and_a_pause_is_bounded() -> None:
    assert primary("a", 1).succeeds(primary("a", 0)) and not primary("a", 0).succeeds(primary("a", 0))
    judge = PauseJudge(bound=15)
    assert judge.observe(True, 0.0, primary("a"), primary("a"), True) is None
    reason = judge.observe(True, 15.0, primary("a"), primary("a"), True)
    assert reason is not None and "CITUS_HOLD_TIMEOUT" in reason
    assert judge.observe(False, 16.0, None, None, False) is None
    assert judge.since is None, "an ended pause is forgotten"


def test_the_local_pooler_port_and_what_it_refuses() -> None:
    layout = FormationLayout("/f", port_base=47800, pooler=True)
    assert layout.pooler_port == 47880
    assert "port=47880" in layout.pooler_dsn("citus", "postgres")
    with pytest.raises(ConfigurationError, match=r"^--pooler"):
        FormationLayout("/f", pooler=True, tls=True)
