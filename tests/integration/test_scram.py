"""scram.verifier_matches against libpq's own verifiers, and PostgreSQL's own logins, on one plain server.

Rotation makes verifiers with libpq (metadata.scram_verifier) and checks stored ones itself (a
re-run leaves a rotated group alone). Both must agree with PostgreSQL, also where SASLprep changes
the password: libpq prepares it when it makes a verifier and when it logs in, the check must too.
No formation: one throwaway PostgreSQL (no Citus), TCP logins of one role checked by scram-sha-256.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from contextlib import closing

import pytest
from harness import source_bindir
from pg_server import Server, running_server, server_base

from patroni_citus import metadata
from patroni_citus.errors import UnreachableError
from patroni_citus.scram import saslprep, verifier_matches
from patroni_citus.settings import Credentials

pytestmark = pytest.mark.integration
ROLE = "scram_check"
HBA = f"""local all all trust
host all postgres 127.0.0.1/32 trust
host all {ROLE} 127.0.0.1/32 scram-sha-256
"""
NON_ASCII = "pässwörd-ß-日本"
# (password as set, a different spelling SASLprep makes the same password)
SPELLINGS = [
    (unicodedata.normalize("NFD", NON_ASCII), NON_ASCII),  # decomposed umlauts: NFKC composes them
    ("I\u00adX", "IX"),  # soft hyphen: mapped to nothing
    ("\u2168", "IX"),  # ROMAN NUMERAL NINE: NFKC
    (
        "\uff50\uff41\uff53\uff53\u00a0word",
        "pass word",
    ),  # fullwidth letters (NFKC), non-ASCII space (mapped to a space)
]
PASSWORDS = ["pencil", NON_ASCII, "\u00e9\u0007", *(spelled for spelled, _ in SPELLINGS)]
"""\u00e9\u0007: SASLprep prohibits the control character, so PostgreSQL uses the password as it is."""


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with (
        server_base("patroni-citus-scram-") as base,
        running_server(source_bindir(), base, hba=HBA) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def admin(server: Server) -> Iterator[metadata.Connection]:
    connection = metadata.connect([("127.0.0.1", server.port)], "postgres", Credentials("postgres", ""))
    with closing(connection):
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {ROLE} LOGIN")
        yield connection


def logs_in(server: Server, password: str) -> bool:
    """PostgreSQL's own verdict: a scram-sha-256 login of ROLE with password."""
    try:
        metadata.connect([("127.0.0.1", server.port)], "postgres", Credentials(ROLE, password)).close()
    except UnreachableError as exc:
        assert "password authentication failed" in str(exc), exc
        return False
    return True


@pytest.mark.parametrize("password", PASSWORDS)
def test_libpq_verifiers_pass_the_check(admin: metadata.Connection, password: str) -> None:
    verifier = metadata.scram_verifier(admin, ROLE, password)
    assert verifier.startswith("SCRAM-SHA-256$4096:"), verifier
    assert verifier_matches(verifier, password)
    assert not verifier_matches(verifier, password + "x")
    assert metadata.scram_verifier(admin, ROLE, password) != verifier, "libpq draws a new salt every time"


@pytest.mark.parametrize("password", PASSWORDS)
def test_the_check_agrees_with_postgresqls_login(
    server: Server, admin: metadata.Connection, password: str
) -> None:
    metadata.set_role_password(admin, ROLE, password)
    stored = metadata.role_secret(admin, ROLE)
    assert stored is not None and stored.startswith("SCRAM-SHA-256$"), "the server stored no SCRAM verifier"
    assert verifier_matches(stored, password) and logs_in(server, password)
    wrong = password[:-1] + ("y" if password[-1] != "y" else "z")
    assert not verifier_matches(stored, wrong) and not logs_in(server, wrong)


@pytest.mark.parametrize(("password", "same_password"), SPELLINGS)
def test_saslprep_spellings_are_one_password_to_libpq_and_the_check(
    server: Server, admin: metadata.Connection, password: str, same_password: str
) -> None:
    assert password != same_password and saslprep(password) == saslprep(same_password) == same_password
    metadata.set_role_password(admin, ROLE, password)
    stored = metadata.role_secret(admin, ROLE)
    assert logs_in(server, same_password), "libpq and PostgreSQL prepared the two spellings differently"
    assert verifier_matches(stored, same_password)
    assert verifier_matches(metadata.scram_verifier(admin, ROLE, same_password), password)
