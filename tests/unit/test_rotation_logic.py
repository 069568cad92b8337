"""Password rotation's pure parts: the SCRAM verifier check, SASLprep, the password file, the group check.

libpq makes the verifiers (metadata.scram_verifier); tests/integration/test_scram.py checks
scram.verifier_matches against libpq's own output on a real connection.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest
from click.testing import CliRunner

from patroni_citus import dcs
from patroni_citus.cli import cli
from patroni_citus.errors import ConfigurationError
from patroni_citus.patroni_dcs import DcsConfig
from patroni_citus.planner import Endpoint
from patroni_citus.rotation import RotationError, read_password_file, rotation_targets
from patroni_citus.scram import saslprep, verifier_matches
from patroni_citus.settings import Credentials
from patroni_citus.topology import FormationAddress

# RFC 7677 section 3: user "user", password "pencil".
RFC_SALT = "W22ZaJ0SNY7soEsUEjb6gQ=="
RFC_CLIENT_FIRST_BARE = "n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
RFC_CLIENT_FINAL_WITHOUT_PROOF = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_CLIENT_PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
RFC_SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
RFC_VERIFIER = (
    f"SCRAM-SHA-256$4096:{RFC_SALT}$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
)
SECRET = "Tr0ub4dor&3-not-shown"
# SECRET with salt b"patroni-citus-16" and a single iteration (RFC 5802's formulas).
ONE_ITERATION_VERIFIER = (
    "SCRAM-SHA-256$1:cGF0cm9uaS1jaXR1cy0xNg==$+p1jjb4XXTVoDkCkY+cpfM1MweKIXmMp2tREhsbl7tA="
    ":+TftQNTZYXVdahgvEb9scyacybgLG6APmVXlUCqRefs="
)


def test_rfc_7677_verifier_authenticates_the_rfc_exchange() -> None:
    """The constant below is the RFC's: it accepts the RFC's client proof and answers its signature."""
    stored_key, server_key = (base64.b64decode(key) for key in RFC_VERIFIER.rsplit("$", 1)[1].split(":"))
    auth_message = f"{RFC_CLIENT_FIRST_BARE},{RFC_SERVER_FIRST},{RFC_CLIENT_FINAL_WITHOUT_PROOF}".encode()
    client_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = base64.b64decode(RFC_CLIENT_PROOF)
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    assert base64.b64encode(server_signature).decode() == RFC_SERVER_SIGNATURE
    assert RFC_VERIFIER.startswith(f"SCRAM-SHA-256$4096:{RFC_SALT}$")


def test_verifier_matches_only_its_password() -> None:
    assert verifier_matches(RFC_VERIFIER, "pencil")
    assert not verifier_matches(RFC_VERIFIER, "pencil" + "x")
    damaged_verifiers = (
        None,
        "",
        "md5" + "0" * 32,
        "SCRAM-SHA-256$x:y$z",
        RFC_VERIFIER.replace(":", ";", 1),
        RFC_VERIFIER.replace("$4096:", "$4097:"),
        RFC_VERIFIER.replace("$4096:", "$0:"),
        RFC_VERIFIER.replace("$4096:", "$99999999:"),
    )
    for damaged in damaged_verifiers:
        assert not verifier_matches(damaged, "pencil"), damaged
    assert verifier_matches(ONE_ITERATION_VERIFIER, SECRET), "a stored verifier's own iteration count is used"
    assert not verifier_matches(ONE_ITERATION_VERIFIER, "pencil")


@pytest.mark.parametrize(
    ("password", "prepared"),
    [
        ("pencil", "pencil"),
        ("a\x07b", "a\x07b"),  # ASCII is used as is, as PostgreSQL does
        ("I\u00adX", "IX"),  # soft hyphen: mapped to nothing
        ("a\u00a0b\u00e9", "a b\u00e9"),  # non-ASCII space: mapped to a space
        ("\u2168", "IX"),  # NFKC
        ("\u00e9\u0007", "\u00e9\u0007"),  # prohibited control character: the password unprepared
        ("\u0627\u0031", "\u0627\u0031"),  # RandAL not at the end: unprepared
    ],
)
def test_saslprep_follows_postgresql(password: str, prepared: str) -> None:
    assert saslprep(password) == prepared


def test_password_file_accepts_one_line(tmp_path: Path) -> None:
    path = tmp_path / "p"
    for content in (f"{SECRET}\n", f"{SECRET}\r\n", SECRET):
        path.write_text(content, newline="")
        assert read_password_file(path) == SECRET


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"\n", "empty"),
        (f"{SECRET}\nsecond\n".encode(), "more than one line"),
        (f"{SECRET}\n\n".encode(), "more than one line"),
        (f"{SECRET}\x00x".encode(), "NUL"),
        (f" {SECRET}".encode(), "white space"),
        (f"{SECRET}\t\n".encode(), "white space"),
        (b"\xff" + SECRET.encode(), "not UTF-8"),
        (b"x" * 1025, "longer than 1024"),
    ],
)
def test_password_file_refusals_name_the_option_not_the_content(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "p"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError) as refused:
        read_password_file(path)
    message = str(refused.value)
    assert message.startswith(f"--new-password-file='{path}' is invalid: ") and reason in message, message
    assert SECRET not in message and "second" not in message


def test_password_file_unreadable(tmp_path: Path) -> None:
    for path in (tmp_path / "missing", tmp_path):
        with pytest.raises(ConfigurationError, match=r"--new-password-file=.*cannot be read"):
            read_password_file(path)


def _cluster(group: int, leader_role: str | None = "primary", state: str = "running") -> dcs.Cluster:
    members = [
        dcs.Member(
            f"demo-{group}-1", "replica", "streaming", Endpoint("10.0.0.2", 5432), "", {"citus_group": group}
        )
    ]
    if leader_role is not None:
        members.append(
            dcs.Member(
                f"demo-{group}-0", leader_role, state, Endpoint("10.0.0.1", 5432), "", {"citus_group": group}
            )
        )
    return dcs.Cluster(f"demo-{group}", f"demo-{group}-0", tuple(members), {})


ADDRESS = FormationAddress(
    DcsConfig({"etcd3": {"hosts": ["127.0.0.1:2379"]}}), Credentials("postgres", ""), name="demo"
)


def test_targets_are_every_groups_running_leader() -> None:
    targets = rotation_targets({c.scope: c for c in (_cluster(0), _cluster(1), _cluster(2))}, ADDRESS)
    assert [(t.group, t.leader) for t in targets] == [(0, "demo-0-0"), (1, "demo-1-0"), (2, "demo-2-0")]


@pytest.mark.parametrize(
    ("clusters", "problem"),
    [
        ([_cluster(0), _cluster(1, leader_role=None)], "group 1 (demo-1) has no running leader"),
        ([_cluster(0), _cluster(1, state="starting")], "group 1 (demo-1) has no running leader"),
        ([_cluster(0), _cluster(1, leader_role="standby_leader")], "group 1 (demo-1) has no running leader"),
        ([_cluster(1)], "the coordinator group (0) is missing"),
        ([], "no group of this formation"),
    ],
)
def test_targets_refuse_a_group_without_leader(clusters: list[dcs.Cluster], problem: str) -> None:
    with pytest.raises(RotationError, match="nothing was changed") as refused:
        rotation_targets({c.scope: c for c in clusters}, ADDRESS)
    assert problem in str(refused.value)
    assert RotationError.exit_code == 2


@pytest.mark.parametrize(
    "command", [["rotate-password", "--dcs", "127.0.0.1:1", "--formation", "x"], ["local", "rotate-password"]]
)
def test_cli_refuses_a_bad_password_file_in_one_line(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "p"
    path.write_text(f"{SECRET}\nsecond\n")
    args = [*command, "--new-password-file", str(path)]
    if command[0] == "local":
        args += ["--base-dir", str(tmp_path)]
    result = CliRunner().invoke(cli, args, prog_name="patroni-citus")
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "--new-password-file" in lines[0] and "more than one line" in lines[0], lines
    assert SECRET not in result.output and result.stdout == ""


def test_cli_requires_the_password_file() -> None:
    result = CliRunner().invoke(cli, ["rotate-password", "--dcs", "127.0.0.1:1", "--formation", "x"])
    assert result.exit_code == 2 and "--new-password-file" in result.stderr
