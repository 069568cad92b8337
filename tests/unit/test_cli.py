"""The command line through click's runner, and the callback entry points, without any server."""

from __future__ import annotations

import json
import logging
import os
import pwd
import queue
import shlex
import signal
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import yaml
from cli_walk import command_paths
from click.testing import CliRunner, Result

from patroni_citus import __version__, callbacks
from patroni_citus.cli import DEFAULT_CONFIG_PATH, cli
from patroni_citus.settings import Settings
from patroni_citus.template import default_scripts_dir

RenderToFile = Callable[[Mapping[str, str]], tuple[Settings, Path]]
ERROR_PREFIX = "patroni-citus: error: "


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="patroni-citus")


def one_error_line(result: Result) -> str:
    """The single line a failing command prints on stderr."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    return lines[0]


@pytest.fixture
def environ(
    clean_process_env: pytest.MonkeyPatch, base_env: dict[str, str]
) -> Callable[[Mapping[str, str]], None]:
    """Set the process environment the CLI reads (it, not the tests, reads os.environ)."""

    def set_environ(variables: Mapping[str, str]) -> None:
        for name, value in variables.items():
            clean_process_env.setenv(name, value)

    set_environ(base_env)
    return set_environ


# --------------------------------------------------------------------------------------------------
# render-config
# --------------------------------------------------------------------------------------------------


def test_render_config_prints_to_stdout(environ: Callable[[Mapping[str, str]], None]) -> None:
    result = run("render-config")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    document = yaml.safe_load(result.stdout)
    assert document["scope"] == "demo-1"
    assert "citus" not in result.stdout.lower()


def test_render_config_defaults_the_callbacks_config_path(
    environ: Callable[[Mapping[str, str]], None], worker_env: dict[str, str]
) -> None:
    environ(worker_env)
    result = run("render-config")
    assert result.exit_code == 0, result.stderr
    command = yaml.safe_load(result.stdout)["postgresql"]["callbacks"]["on_start"]
    assert shlex.split(command)[1:] == ["--config", str(DEFAULT_CONFIG_PATH)]


def test_render_config_writes_a_private_file(
    environ: Callable[[Mapping[str, str]], None], worker_env: dict[str, str], tmp_path: Path
) -> None:
    environ(worker_env)
    output = tmp_path / "conf" / "patroni.yml"
    output.parent.mkdir()
    result = run("render-config", "-o", str(output))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.strip() == f"wrote {output} (mode 0600)"
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert sorted(p.name for p in output.parent.iterdir()) == ["patroni.yml"]
    document = yaml.safe_load(output.read_text(encoding="utf-8"))
    for command in (*document["postgresql"]["callbacks"].values(), document["bootstrap"]["post_bootstrap"]):
        assert shlex.split(command)[1:] == ["--config", str(output)]


def test_render_config_overwrites_a_world_readable_file_privately(
    environ: Callable[[Mapping[str, str]], None], tmp_path: Path
) -> None:
    output = tmp_path / "patroni.yml"
    output.write_text("old\n", encoding="utf-8")
    output.chmod(0o644)
    assert run("render-config", "--output", str(output)).exit_code == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert output.read_text(encoding="utf-8") != "old\n"


def test_a_relative_output_gives_the_callbacks_an_absolute_path(
    environ: Callable[[Mapping[str, str]], None],
    worker_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environ(worker_env)
    monkeypatch.chdir(tmp_path)
    assert run("render-config", "-o", "patroni.yml").exit_code == 0
    document = yaml.safe_load((tmp_path / "patroni.yml").read_text(encoding="utf-8"))
    command = document["postgresql"]["callbacks"]["on_role_change"]
    assert shlex.split(command)[1:] == ["--config", str(tmp_path / "patroni.yml")]


def test_config_path_overrides_where_the_callbacks_look(
    environ: Callable[[Mapping[str, str]], None], worker_env: dict[str, str], tmp_path: Path
) -> None:
    environ(worker_env)
    output = tmp_path / "staging.yml"
    result = run("render-config", "-o", str(output), "--config-path", "/etc/patroni dir/patroni.yml")
    assert result.exit_code == 0, result.stderr
    document = yaml.safe_load(output.read_text(encoding="utf-8"))
    command = document["bootstrap"]["post_bootstrap"]
    assert shlex.split(command)[1:] == ["--config", "/etc/patroni dir/patroni.yml"]


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"CITUS_ENABLE": "maybe"}, "CITUS_ENABLE"),
        ({"CITUS_ROLE": "worker"}, "CITUS_GROUP"),
        ({"CITUS_COORDINATOR_HOST": "c1;DROP TABLE x"}, "CITUS_COORDINATOR_HOST"),
        ({"CITUS_COORDINATOR_PORT": "65536"}, "CITUS_COORDINATOR_PORT"),
        ({"PATRONI_SCOPE": "bad scope"}, "PATRONI_SCOPE"),
        ({"PATRONI_ETCD3_HOSTS": "etcd-1"}, "PATRONI_ETCD3_HOSTS"),
        ({"PG_ALLOWED_NETWORKS": "10.0.0.1/8"}, "PG_ALLOWED_NETWORKS"),
        ({"PATRONI_TTL": "20"}, "PATRONI_TTL"),
        ({"CITUS_ENABLE": "true", "PATRONI_CITUS_GROUP": "1"}, "PATRONI_CITUS_GROUP"),
    ],
)
@pytest.mark.parametrize("to_file", [False, True])
def test_bad_environment_exits_2_with_one_line_and_writes_nothing(
    environ: Callable[[Mapping[str, str]], None],
    tmp_path: Path,
    overrides: dict[str, str],
    setting: str,
    to_file: bool,
) -> None:
    environ(overrides)
    output = tmp_path / "patroni.yml"
    result = run("render-config", *(["-o", str(output)] if to_file else []))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert one_error_line(result).startswith(f"{ERROR_PREFIX}{setting}=")
    assert list(tmp_path.iterdir()) == []


def test_missing_scope_exits_2(clean_process_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = run("render-config", "-o", str(tmp_path / "patroni.yml"))
    assert result.exit_code == 2
    assert "PATRONI_SCOPE=(unset)" in one_error_line(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", ["first-Secret\nsecond-Secret\n", ""])
def test_password_errors_never_show_the_password(
    environ: Callable[[Mapping[str, str]], None], tmp_path: Path, secrets: tuple[str, str], content: str
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(content, encoding="utf-8")
    environ({"PATRONI_SUPERUSER_PASSWORD_FILE": str(secret_file)})
    result = run("render-config", "-o", str(tmp_path / "patroni.yml"))
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "PATRONI_SUPERUSER_PASSWORD" in line
    for secret in (*secrets, "first-Secret", "second-Secret"):
        assert secret not in result.stderr + result.stdout
    assert not (tmp_path / "patroni.yml").exists()


def test_unknown_owner_exits_2_and_writes_nothing(
    environ: Callable[[Mapping[str, str]], None], tmp_path: Path
) -> None:
    owner = "no-such-user-patroni-citus"
    with pytest.raises(KeyError):
        pwd.getpwnam(owner)
    output = tmp_path / "patroni.yml"
    result = run("render-config", "-o", str(output), "--owner", owner)
    assert result.exit_code == 2
    assert one_error_line(result) == f"{ERROR_PREFIX}--owner={owner!r} is invalid: no such OS user"
    assert not output.exists()
    assert list(tmp_path.iterdir()) == []


def test_known_owner_owns_the_file(environ: Callable[[Mapping[str, str]], None], tmp_path: Path) -> None:
    me = pwd.getpwuid(os.getuid())
    output = tmp_path / "patroni.yml"
    result = run("render-config", "-o", str(output), "--owner", me.pw_name)
    assert result.exit_code == 0, result.stderr
    info = output.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (me.pw_uid, me.pw_gid, 0o600)


def test_output_that_is_a_directory_is_a_usage_error(
    environ: Callable[[Mapping[str, str]], None], tmp_path: Path
) -> None:
    result = run("render-config", "-o", str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory" in result.stderr


# --------------------------------------------------------------------------------------------------
# Help and version for every command
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", list(command_paths()), ids=lambda path: " ".join(path) or "patroni-citus")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(path: tuple[str, ...], flag: str) -> None:
    result = run(*path, flag)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: patroni-citus {' '.join(path)}".rstrip())
    assert result.stderr == ""


def test_the_expected_commands_exist() -> None:
    paths = set(command_paths())
    assert {("render-config",), ("local",), ("local", "up"), ("local", "down"), ("local", "status")} <= paths


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


# --------------------------------------------------------------------------------------------------
# local status without a formation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["empty", "absent"])
def test_local_status_without_a_formation(tmp_path: Path, where: str) -> None:
    base_dir = tmp_path if where == "empty" else tmp_path / "absent"
    for extra in ([], ["--json"]):
        result = run("local", "status", "--base-dir", str(base_dir), *extra)
        assert result.exit_code == 2
        if extra:  # the failure as a JSON object on stdout too, so a script reads JSON either way
            failure = json.loads(result.stdout)
            assert failure["exit_code"] == 2 and "no local formation" in failure["error"]
        else:
            assert result.stdout == ""
        line = one_error_line(result)
        assert "no local formation" in line and str(base_dir) in line


def test_local_status_with_a_corrupt_state_file(tmp_path: Path) -> None:
    (tmp_path / "formation.json").write_text("{not json", encoding="utf-8")
    result = run("local", "status", "--base-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "--base-dir" in one_error_line(result)


def test_local_status_with_an_incomplete_state_file(tmp_path: Path) -> None:
    (tmp_path / "formation.json").write_text('{"citus": "standin"}', encoding="utf-8")
    result = run("local", "status", "--base-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "--base-dir" in one_error_line(result)


# --------------------------------------------------------------------------------------------------
# reconcile refuses what it cannot use, before connecting anywhere
# --------------------------------------------------------------------------------------------------


def test_reconcile_refuses_a_config_without_citus(
    base_env: dict[str, str], render_to_file: RenderToFile
) -> None:
    _, config_path = render_to_file(base_env)
    result = run("reconcile", "-c", str(config_path))
    assert result.exit_code == 2
    assert "Citus is not enabled" in one_error_line(result)


def test_reconcile_refuses_a_missing_config(tmp_path: Path) -> None:
    result = run("reconcile", "-c", str(tmp_path / "absent.yml"))
    assert result.exit_code == 2
    assert "cannot read it" in one_error_line(result)


# --------------------------------------------------------------------------------------------------
# Callback entry points
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The callbacks configure the root logger for a real process; undo that after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


ENTRY_POINTS = {
    "on_start": (callbacks.on_start_main, ["on_start", "replica", "demo-1"]),
    "on_role_change": (callbacks.on_role_change_main, ["on_role_change", "primary", "demo-1"]),
    "post_bootstrap": (
        callbacks.post_bootstrap_main,
        ["dbname=postgres user=postgres host=localhost port=5501"],
    ),
}


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_callbacks_do_nothing_when_citus_is_disabled(
    base_env: dict[str, str], render_to_file: RenderToFile, capsys: pytest.CaptureFixture[str], entry: str
) -> None:
    main, patroni_args = ENTRY_POINTS[entry]
    _, config_path = render_to_file(base_env)
    assert main(["--config", str(config_path), *patroni_args]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "ERROR" not in captured.err


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read it"),
        ("scope: [unclosed\n", "not valid YAML"),
        ("- a\n- b\n", "not a YAML mapping"),
        ("scope: demo-1\n", "no 'restapi' section"),
        ("scope: demo-1\nrestapi: {}\npostgresql: {}\n", "superuser is missing"),
    ],
)
def test_callbacks_with_a_bad_config_fail_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str, content: str | None, reason: str
) -> None:
    main, patroni_args = ENTRY_POINTS[entry]
    config_path = tmp_path / "patroni.yml"
    if content is not None:
        config_path.write_text(content, encoding="utf-8")
    assert main(["--config", str(config_path), *patroni_args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "ERROR" in lines[0] and reason in lines[0] and str(config_path) in lines[0]


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_callbacks_without_config_are_a_usage_error(capsys: pytest.CaptureFixture[str], entry: str) -> None:
    main, patroni_args = ENTRY_POINTS[entry]
    with pytest.raises(SystemExit) as caught:
        main(patroni_args)
    assert caught.value.code == 2
    assert "--config" in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_callbacks_help(capsys: pytest.CaptureFixture[str], entry: str) -> None:
    main, _ = ENTRY_POINTS[entry]
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    assert "--config" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# metrics: bad web settings are one line and exit 2, before anything is read or bound
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "setting"),
    [
        (["--listen", "nowhere"], "--listen"),
        (["--web-config", "/nonexistent/web.yml"], "--web-config"),
        (["--web-config", "/x.yml", "--basic-auth-user", "u"], "--web-config"),
        (["--basic-auth-user", "prom"], "--basic-auth-user"),
        (["--tls-cert-file", "/x.crt"], "--tls-cert-file"),
    ],
)
def test_metrics_bad_web_settings_exit_2(
    clean_process_env: pytest.MonkeyPatch, extra: list[str], setting: str
) -> None:
    result = run("metrics", "--dcs", "http://127.0.0.1:1", "--formation", "x", *extra)
    assert result.exit_code == 2, result.output
    assert setting in one_error_line(result)


def test_metrics_never_shows_a_basic_auth_password(
    clean_process_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password = tmp_path / "password"
    password.write_text("hunter2-Secret\n")
    result = run(
        "metrics",
        "--dcs",
        "http://127.0.0.1:1",
        "--formation",
        "x",
        "--listen",
        "192.0.2.1:9645",  # TEST-NET-1: never this host's, so binding fails
        "--basic-auth-user",
        "prom",
        "--basic-auth-password-file",
        str(password),
    )
    assert result.exit_code == 2 and "--listen" in one_error_line(result)
    assert "hunter2" not in result.output


@pytest.mark.parametrize("command", [["local", "status"], ["local", "status", "--json"], ["local", "down"]])
def test_local_commands_without_a_formation_exit_2(tmp_path: Path, command: list[str]) -> None:
    result = run(*command, "--base-dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert f"no local formation in {tmp_path}" in result.output
    assert "Traceback" not in result.output


def test_render_config_into_a_missing_directory_exits_2_and_writes_nothing(
    environ: Callable[[Mapping[str, str]], None], tmp_path: Path
) -> None:
    environ({})
    target = tmp_path / "missing" / "patroni.yml"
    result = run("render-config", "-o", str(target))
    assert result.exit_code == 2, result.output
    assert "--output" in result.output and "does not exist" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "missing").exists()


def test_render_config_to_an_unwritable_directory_exits_2_without_a_traceback(
    environ: Callable[[Mapping[str, str]], None],
) -> None:
    environ({})
    # sysfs takes no new files, not even from root: unwritable for whoever runs the tests.
    result = run("render-config", "-o", "/sys/patroni-citus-test.yml")
    assert result.exit_code == 2, result.output
    assert "cannot write it" in result.output and "Traceback" not in result.output


def test_status_watch_outlives_an_unreachable_dcs_and_says_so_each_round() -> None:
    """Not a formation test: nothing listens on the DCS port, so every round fails the same way."""
    command = [str(default_scripts_dir() / "patroni-citus"), "status", "--dcs", "http://127.0.0.1:1"]
    command += ["--formation", "nowhere", "--dcs-timeout", "1", "--watch", "0.5", "--json"]
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert watcher.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in watcher.stdout], daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        # Two failed rounds, however slow this machine is (each round waits out --dcs-timeout).
        while len(seen) < 2:
            seen.append(lines.get(timeout=60))
        assert watcher.poll() is None, "status --watch ended after a failed round"
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=10)
        reader.join(timeout=10)
        watcher.stdout.close()
    while not lines.empty():
        seen.append(lines.get())
    rounds = [json.loads(line) for line in seen if line.strip()]
    assert len(rounds) >= 2, seen
    assert all(r["exit_code"] == 2 and "DCS" in r["error"] for r in rounds), rounds
    assert watcher.returncode == 2


@pytest.mark.parametrize(
    "command",
    [
        ["status", "--json"],
        ["reconcile", "--json"],
        ["switchover", "--group", "1", "--json"],
        ["rotate-password", "--new-password-file", "/nonexistent", "--json"],
    ],
)
def test_json_failures_print_an_error_object_on_stdout(command: list[str]) -> None:
    nowhere = ["--dcs", "http://127.0.0.1:1", "--formation", "nowhere", "--dcs-timeout", "1"]
    result = CliRunner().invoke(cli, [*command, *nowhere], prog_name="patroni-citus")
    assert result.exit_code == 2, result.output
    failure = json.loads(result.stdout)
    assert failure["exit_code"] == 2 and failure["error"], failure
    assert result.stderr.startswith(ERROR_PREFIX) and result.stderr.count("\n") == 1


def test_render_config_names_every_bad_variable_a_line_each(
    environ: Callable[[Mapping[str, str]], None], tmp_path: Path
) -> None:
    environ({"CITUS_ENABLE": "maybe", "CITUS_ROLLE": "worker", "PATRONI_TTL": "5"})
    result = run("render-config", "-o", str(tmp_path / "patroni.yml"))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert [line.removeprefix(ERROR_PREFIX).split("=")[0].split(" ")[0] for line in lines] == [
        "CITUS_ENABLE",
        "PATRONI_TTL",
        "CITUS_ROLLE",
    ], lines
    assert all(line.startswith(ERROR_PREFIX) for line in lines)
    assert not (tmp_path / "patroni.yml").exists()


def test_dcs_and_formation_win_over_a_config_only_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The image sets PATRONI_CITUS_CONFIG for its members; a sidecar naming --dcs must not need it."""
    monkeypatch.setenv("PATRONI_CITUS_CONFIG", str(tmp_path / "absent.yml"))
    nowhere = ["--dcs", "http://127.0.0.1:1", "--formation", "nowhere", "--dcs-timeout", "1"]
    result = run("status", *nowhere)
    assert result.exit_code == 2
    assert "cannot connect to the DCS" in result.stderr and "absent.yml" not in result.stderr
    explicit = run("status", "-c", str(tmp_path / "absent.yml"), *nowhere)
    assert explicit.exit_code == 2 and "absent.yml" in explicit.stderr, "an explicit -c still wins"


def test_dcs_timeout_is_a_setting_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """PATRONI_CITUS_DCS_TIMEOUT stands for --dcs-timeout, with the same range."""
    monkeypatch.setenv("PATRONI_CITUS_DCS_TIMEOUT", "0.5")
    nowhere = ["--dcs", "http://127.0.0.1:1", "--formation", "nowhere"]
    result = CliRunner().invoke(cli, ["status", *nowhere], prog_name="patroni-citus")
    assert result.exit_code == 2
    assert "--dcs-timeout" in result.stderr and "1<=x<=300" in result.stderr, result.stderr
    monkeypatch.setenv("PATRONI_CITUS_DCS_TIMEOUT", "1")
    result = CliRunner().invoke(cli, ["status", *nowhere], prog_name="patroni-citus")
    assert result.exit_code == 2 and "DCS" in result.stderr, result.stderr
