"""Superuser password rotation on a real formation: every group, pg_dist_authinfo, configs, failover.

One formation (coordinator group + one worker group, two members each). The scenarios run in
order: refusals and a dry run change nothing, the rotation works and is idempotent, the formation
keeps working with the new password only, a failover afterwards converges, and the new password
leaks nowhere.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
from harness import LocalFormation, local_formation, run_cli, wait_until

from patroni_citus import metadata, patroni_api
from patroni_citus.local.layout import MemberLayout
from patroni_citus.settings import Credentials

pytestmark = pytest.mark.integration
CLI_OUTPUTS: list[str] = []
OLD_PASSWORD: dict[str, str] = {}
# ':' and '\\' need escaping in pgpass files and conninfo strings; 'é' takes SASLprep's non-ASCII path.
NEW_PASSWORD = f"Rot:{secrets.token_urlsafe(18)}\\é"


@pytest.fixture(scope="module")
def formation() -> Iterator[LocalFormation]:
    with local_formation(workers=1, members=2) as running:
        OLD_PASSWORD["superuser"] = running.password
        yield running


@pytest.fixture(scope="module")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rotation") / "new.password"
    path.write_text(NEW_PASSWORD + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, check=check)
    CLI_OUTPUTS.append(f"$ patroni-citus {' '.join(args)}\n{result.stdout}\n{result.stderr}")
    return result


def login(member: MemberLayout, password: str, dbname: str = "citus") -> psycopg2.extensions.connection:
    connection = psycopg2.connect(
        host="127.0.0.1",
        port=member.postgres_port,
        user="postgres",
        password=password,
        dbname=dbname,
        connect_timeout=3,
    )
    connection.autocommit = True
    return connection


def accepts(member: MemberLayout, password: str) -> bool:
    try:
        login(member, password, "postgres").close()
    except psycopg2.OperationalError as exc:
        assert "password authentication failed" in str(exc), f"{member.name}: {exc}"
        return False
    return True


def leaders(formation: LocalFormation) -> dict[int, MemberLayout]:
    found = {}
    for member in formation.layout.all_members():
        try:
            if patroni_api.member_status(member.rest_url)["role"] in ("primary", "master"):
                found[member.group] = member
        except Exception:  # a stopped member has no REST API  # noqa: S112
            continue
    return found


def authinfo_of(member: MemberLayout, password: str) -> str | None:
    with closing(login(member, password)) as connection:
        return metadata.stored_authinfo(connection, "postgres")


def config(formation: LocalFormation) -> str:
    return str(formation.layout.member(0, 0).config_path)


def test_refusals_and_dry_run_change_nothing(formation: LocalFormation, password_file: Path) -> None:
    old = OLD_PASSWORD["superuser"]
    bad = password_file.parent / "bad.password"
    for content, reason in (("", "empty"), (f"{NEW_PASSWORD}\nsecond line\n", "more than one line")):
        bad.write_text(content)
        for command in (("rotate-password", "-c", config(formation)), ("local", "rotate-password")):
            args = [*command, "--new-password-file", str(bad)]
            if command[0] == "local":
                args += ["--base-dir", str(formation.base)]
            result = cli(*args, check=False)
            assert result.returncode == 2, (args, result.stdout, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "--new-password-file" in lines[0] and reason in lines[0], lines
            assert result.stdout == ""
    dry = cli(
        "rotate-password", "-c", config(formation), "--new-password-file", str(password_file), "--dry-run"
    )
    assert dry.stdout.count("would: set the superuser password") == 2, dry.stdout
    dry_local = json.loads(
        cli(
            "local", "rotate-password", "--base-dir", str(formation.base),
            "--new-password-file", str(password_file), "--dry-run", "--json",
        ).stdout
    )  # fmt: skip
    assert [g["group"] for g in dry_local["groups"]] == [0, 1]
    assert all(g["set_password"] and g["update_authinfo"] and not g["done"] for g in dry_local["groups"])
    assert formation.password == old, "a dry run rewrote the secret"
    for member in formation.layout.all_members():
        assert accepts(member, old), f"{member.name}: a dry run changed the password"
    for group, member in leaders(formation).items():
        assert authinfo_of(member, old) == metadata.authinfo(Credentials("postgres", old)), group


def test_rotation_switches_every_group_and_config(formation: LocalFormation, password_file: Path) -> None:
    old = OLD_PASSWORD["superuser"]
    result = cli(
        "local", "rotate-password", "--base-dir", str(formation.base),
        "--new-password-file", str(password_file), "--json",
    )  # fmt: skip
    done = json.loads(result.stdout)
    assert [(g["group"], g["done"], g["set_password"]) for g in done["groups"]] == [
        (0, True, True),
        (1, True, True),
    ]
    assert done["unreloaded"] == []
    assert formation.password == NEW_PASSWORD
    # Idempotent: a second run finds every group rotated and changes nothing.
    again = cli("rotate-password", "-c", config(formation), "--new-password-file", str(password_file))
    assert again.stdout.count("already rotated: nothing to change") == 2, again.stdout
    expected_authinfo = metadata.authinfo(Credentials("postgres", NEW_PASSWORD))
    for group, member in leaders(formation).items():
        assert authinfo_of(member, NEW_PASSWORD) == expected_authinfo, f"group {group}: authinfo not rotated"
    for member in formation.layout.all_members():
        wait_until(f"{member.name} to accept the new password", lambda m=member: accepts(m, NEW_PASSWORD), 30)
        assert not accepts(member, old), f"{member.name} still accepts the old password"
        stored = formation.query(member, "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")
        assert str(stored[0][0]).startswith("SCRAM-SHA-256$4096:"), member.name


def test_formation_works_with_the_new_password(formation: LocalFormation) -> None:
    wait_until(
        "status -c to be healthy with the re-rendered config",
        lambda: cli("status", "-c", config(formation), check=False).returncode == 0,
        60,
    )
    coordinator = leaders(formation)[0]
    with closing(login(coordinator, NEW_PASSWORD)) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE rotated (id bigint PRIMARY KEY, note text)")
        cursor.execute("SELECT create_distributed_table('rotated', 'id')")
        cursor.executemany("INSERT INTO rotated VALUES (%s, %s)", [(i, f"row {i}") for i in range(50)])
        cursor.execute("SELECT count(*), sum(id) FROM rotated")
        assert cursor.fetchone() == (50, sum(range(50)))


def test_failover_after_rotation_converges(formation: LocalFormation) -> None:
    old_leader = leaders(formation)[1]
    cli("local", "stop-member", "--base-dir", str(formation.base), "--kill", old_leader.name)
    new_leader = wait_until(
        "the worker group's replica to take over",
        lambda: next((m for g, m in leaders(formation).items() if g == 1 and m != old_leader), None),
        60,
    )
    assert isinstance(new_leader, MemberLayout)
    coordinator = leaders(formation)[0]

    def registered() -> bool:
        rows = formation.query(
            coordinator,
            "SELECT nodeport FROM pg_dist_node WHERE groupid = 1 AND noderole = 'primary'",
            "citus",
        )
        return rows == [(new_leader.postgres_port,)]

    wait_until("the coordinator to point group 1 at the new leader", registered, 60)
    expected_authinfo = metadata.authinfo(Credentials("postgres", NEW_PASSWORD))
    assert authinfo_of(new_leader, NEW_PASSWORD) == expected_authinfo
    with closing(login(coordinator, NEW_PASSWORD)) as connection, connection.cursor() as cursor:
        cursor.execute("INSERT INTO rotated VALUES (1000, 'after failover')")
        cursor.execute("SELECT count(*) FROM rotated")
        assert cursor.fetchone() == (51,)
    # The killed member starts from its re-rendered config: Patroni logs in with the new password.
    cli("local", "start-member", "--base-dir", str(formation.base), old_leader.name)
    wait_until(
        f"{old_leader.name} to run again as a replica",
        lambda: patroni_api.member_status(old_leader.rest_url).get("state") == "running",
        90,
    )
    wait_until(
        "status -c to be healthy after the failover",
        lambda: cli("status", "-c", config(formation), check=False).returncode == 0,
        90,
    )


def test_new_password_leaks_nowhere(formation: LocalFormation) -> None:
    places: dict[str, str] = {
        "ps -eo args": subprocess.run(
            ["ps", "-eo", "args"], capture_output=True, text=True, check=True
        ).stdout,
        "CLI output": "\n".join(CLI_OUTPUTS),
        "etcd log": (formation.layout.etcd_dir / "etcd.log").read_text(errors="replace"),
    }
    for member in formation.layout.all_members():
        places[str(member.log_path)] = member.log_path.read_text(errors="replace")
        for log in (member.data_dir / "log").glob("*"):
            places[str(log)] = log.read_text(errors="replace")
    for place, text in places.items():
        assert NEW_PASSWORD not in text, f"the new password appears in {place}"
        assert NEW_PASSWORD.encode("unicode_escape").decode() not in text, f"escaped, in {place}"
