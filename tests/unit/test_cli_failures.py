"""Every command fails as one line and an exit code, never a traceback: walked over the whole click group.

Nothing here reaches a server: the DCS is a closed port, the base directory is absent, the
environment is empty, so each command fails before it could change anything.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import click
import pytest
import yaml
from cli_walk import command_at, command_paths, leaf_paths
from click.testing import CliRunner, Result

from patroni_citus.cli import cli
from patroni_citus.cli_command import PREFIX, ReportingCommand, ReportingGroup
from patroni_citus.errors import INTERRUPTED_EXIT, ConfigurationError, UnreachableError, describe_failure
from patroni_citus.template import default_scripts_dir

#: Nothing listens on port 1: the DCS read fails at once (exit 2).
UNREACHABLE_DCS = ["--dcs", "etcd3://127.0.0.1:1", "--formation", "x", "--dcs-timeout", "1"]
#: What a command's required parameters get, by parameter name.
REQUIRED_VALUES = {"group": "1", "name": "demo-0-0"}
#: Commands that would not fail fast from the defaults alone, and what makes them fail at once.
FAIL_FAST = {
    # An absent base directory is where `local up` would start a formation: refuse its layout first.
    ("local", "up"): ["--port-base", "1"],
    # The exporter serves until stopped and reads the DCS only when scraped: an address not ours.
    ("metrics",): ["--listen", "192.0.2.1:9645"],
}
#: Commands this test cannot fail fast without a real server (keep it short, say why).
EXCLUDED: dict[tuple[str, ...], str] = {}


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    """A valid new password, so rotate-password gets as far as the DCS."""
    path = tmp_path / "new-password"
    path.write_text("new-Secret-pw-3\n")
    path.chmod(0o600)
    return path


def formatted_paths() -> list[tuple[str, ...]]:
    """The commands with -f/--format."""
    return [path for path in leaf_paths() if "output_format" in {q.name for q in command_at(path).params}]


def failing_arguments(path: tuple[str, ...], tmp_path: Path, password_file: Path) -> list[str]:
    """Arguments that make the command fail fast, derived from its parameters."""
    command = command_at(path)
    names = {param.name for param in command.params}
    arguments = list(FAIL_FAST.get(path, []))
    if "dcs_url" in names:
        arguments += UNREACHABLE_DCS
    if "base_dir" in names:
        arguments += ["--base-dir", str(tmp_path / "absent")]
    for param in command.params:
        if not param.required:
            continue
        value = str(password_file) if param.name == "password_file" else REQUIRED_VALUES.get(str(param.name))
        assert value is not None, f"tell this test what {' '.join(path)}'s required {param.name} gets"
        arguments += [value] if isinstance(param, click.Argument) else [param.opts[-1], value]
    return arguments


def invoke(*arguments: str) -> Result:
    return CliRunner().invoke(cli, list(arguments), prog_name="patroni-citus")


def assert_one_line_failure(result: Result, exit_code: int = 2) -> str:
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(PREFIX), lines[0]
    return lines[0]


@pytest.mark.usefixtures("clean_process_env")
@pytest.mark.parametrize("path", leaf_paths(), ids=" ".join)
def test_every_command_fails_as_one_line_and_exit_2(
    path: tuple[str, ...], tmp_path: Path, password_file: Path
) -> None:
    if path in EXCLUDED:
        pytest.skip(EXCLUDED[path])
    result = invoke(*path, *failing_arguments(path, tmp_path, password_file))
    assert_one_line_failure(result)
    assert result.stdout == ""
    assert not (tmp_path / "absent").exists(), "a failing command must not have created anything"


@pytest.mark.usefixtures("clean_process_env")
@pytest.mark.parametrize("path", formatted_paths(), ids=" ".join)
@pytest.mark.parametrize("chosen", [["-f", "json"], ["--json"], ["-f", "yaml"]], ids=" ".join)
def test_every_formatted_failure_is_a_document_on_stdout(
    path: tuple[str, ...], chosen: list[str], tmp_path: Path, password_file: Path
) -> None:
    result = invoke(*path, *failing_arguments(path, tmp_path, password_file), *chosen)
    line = assert_one_line_failure(result)
    document = json.loads(result.stdout) if "yaml" not in chosen else yaml.safe_load(result.stdout)
    assert document == {"error": line.removeprefix(PREFIX), "exit_code": 2}


def test_the_formats_are_on_every_command_that_had_json() -> None:
    with_json = {p for p in leaf_paths() if "as_json" in {q.name for q in command_at(p).params}}
    with_format = set(formatted_paths())
    assert with_json == with_format
    assert {("status",), ("reconcile",), ("switchover",), ("local", "status")} <= with_format


def test_json_and_another_format_at_once_is_refused() -> None:
    result = invoke("status", *UNREACHABLE_DCS, "--json", "-f", "yaml")
    assert "--format" in assert_one_line_failure(result)


def test_every_command_reports_through_the_one_edge() -> None:
    """Built from ReportingCommand/ReportingGroup, so none prints a traceback (the walk finds new ones)."""
    for path in command_paths():
        command = command_at(path)
        wanted = ReportingGroup if isinstance(command, click.Group) else ReportingCommand
        assert isinstance(command, wanted), f"{' '.join(path) or 'cli'} is a {type(command).__name__}"


def test_the_excluded_commands_still_exist() -> None:
    assert set(EXCLUDED) | set(FAIL_FAST) <= set(leaf_paths())


# --------------------------------------------------------------------------------------------------
# What the edge makes of failures the project did not foresee
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "lines", "exit_code"),
    [
        (UnreachableError("cannot connect to the DCS"), ["cannot connect to the DCS"], 2),
        (
            ConfigurationError("A", "1", "no"),
            ["A='1' is invalid: no"],
            2,
        ),
        (PermissionError(13, "Permission denied", "/out/x.json"), ["/out/x.json: Permission denied"], 2),
        (OSError("no filename"), ["no filename"], 2),
        (KeyboardInterrupt(), ["interrupted"], INTERRUPTED_EXIT),
        (
            RuntimeError("driver said\n  on two lines"),
            ["unexpected RuntimeError: driver said on two lines"],
            1,
        ),
        (ValueError(), ["unexpected ValueError"], 1),
    ],
)
def test_failure_is_one_line_and_a_code(exc: BaseException, lines: list[str], exit_code: int) -> None:
    assert describe_failure(exc) == (lines, exit_code)


def test_several_settings_keep_a_line_each() -> None:
    assert describe_failure(ConfigurationError("A", None, "x\nB=(unset) is invalid: y"))[0] == [
        "A=(unset) is invalid: x",
        "B=(unset) is invalid: y",
    ]


@click.group(cls=ReportingGroup)
def demo() -> None:
    """A group of the edge's own classes, with commands that fail the ways nothing else here can."""


@demo.command("write")
@click.option("-f", "--format", "output_format")
def demo_write(output_format: str | None) -> None:
    Path("/sys/patroni-citus-test.json").write_text("{}")  # sysfs takes no new files, not even from root


@demo.command("crash")
def demo_crash() -> None:
    raise RuntimeError("a driver's surprise")


@demo.group("sub")
def demo_sub() -> None:
    """Subgroups are ReportingGroups, their commands ReportingCommands."""


@demo_sub.command("interrupted")
def demo_interrupted() -> None:
    raise KeyboardInterrupt


@demo_sub.command("usage")
@click.option("--count", type=int)
def demo_usage(count: int | None) -> None:
    raise click.BadParameter("not that one", param_hint="--count")


@pytest.mark.parametrize(
    ("arguments", "exit_code", "text"),
    [
        (["write"], 2, "/sys/patroni-citus-test.json: "),
        (["crash"], 1, "unexpected RuntimeError: a driver's surprise"),
        (["sub", "interrupted"], INTERRUPTED_EXIT, "interrupted"),
    ],
)
def test_unforeseen_failures_are_one_line(arguments: list[str], exit_code: int, text: str) -> None:
    result = CliRunner().invoke(demo, arguments)
    assert text in assert_one_line_failure(result, exit_code)
    assert result.stdout == ""


def test_an_unforeseen_failure_with_a_format_is_a_document_too() -> None:
    result = CliRunner().invoke(demo, ["write", "-f", "yaml"])
    line = assert_one_line_failure(result)
    assert yaml.safe_load(result.stdout) == {"error": line.removeprefix(PREFIX), "exit_code": 2}


def test_click_usage_errors_stay_clicks() -> None:
    """click's own usage report (usage line, hint, error), exit 2, as for every click program."""
    result = CliRunner().invoke(demo, ["sub", "usage", "--count", "1"])
    assert result.exit_code == 2
    assert "Invalid value for --count: not that one" in result.stderr and PREFIX not in result.stderr


# --------------------------------------------------------------------------------------------------
# The installed console script, as an operator runs it
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def silent_dcs() -> Iterator[socket.socket]:
    """A port that takes connections and never answers: a DCS read blocks until its timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(60)
        yield listener


def test_ctrl_c_is_one_line_and_exit_130(silent_dcs: socket.socket) -> None:
    command = [str(default_scripts_dir() / "patroni-citus"), "status", "--formation", "x", "--json"]
    command += ["--dcs", f"etcd3://127.0.0.1:{silent_dcs.getsockname()[1]}", "--dcs-timeout", "60"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        connection, _ = silent_dcs.accept()  # the command is inside its DCS read now, past start-up
        with connection:
            time.sleep(0.5)
            assert process.poll() is None, "the DCS read should still be waiting"
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == INTERRUPTED_EXIT
    assert stderr == f"{PREFIX}interrupted\n"
    assert json.loads(stdout) == {"error": "interrupted", "exit_code": INTERRUPTED_EXIT}


#: Patroni's arguments after --config, by callback console script.
CALLBACK_ARGUMENTS = {
    "patroni-citus-on-start": ["on_start", "replica", "demo-1"],
    "patroni-citus-on-role-change": ["on_role_change", "primary", "demo-1"],
    "patroni-citus-on-stop": ["on_stop", "demoted", "demo-1"],
    "patroni-citus-before-stop": [],
    "patroni-citus-post-bootstrap": ["dbname=postgres user=postgres host=localhost port=5501"],
}


def callback_scripts() -> list[str]:
    """Every console script of the package but the CLI itself: the callbacks Patroni runs."""
    scripts = metadata.distribution("patroni-citus").entry_points.select(group="console_scripts")
    return sorted(script.name for script in scripts if script.name != "patroni-citus")


@pytest.mark.parametrize("script", callback_scripts())
@pytest.mark.parametrize("broken", ["config", "log-file"])
def test_callback_scripts_fail_as_one_line(script: str, broken: str, tmp_path: Path) -> None:
    assert script in CALLBACK_ARGUMENTS, f"tell this test what Patroni passes {script}"
    command = [str(default_scripts_dir() / script), "--config", str(tmp_path / "absent.yml")]
    if broken == "log-file":
        command += ["--log-file", "/sys/patroni-citus-test.log"]  # sysfs takes no new files
    finished = subprocess.run(
        [*command, *CALLBACK_ARGUMENTS[script]], capture_output=True, text=True, timeout=60, check=False
    )
    assert finished.returncode == 2
    assert "Traceback" not in finished.stderr and finished.stdout == ""
    lines = finished.stderr.splitlines()
    assert len(lines) == 1, finished.stderr
    reason = "/sys/patroni-citus-test.log" if broken == "log-file" else "absent.yml"
    assert reason in lines[0] and "error" in lines[0].lower(), lines[0]
