"""Check a stored SCRAM-SHA-256 verifier against a password: the one SCRAM step libpq does not offer.

libpq makes verifiers (``metadata.scram_verifier``, PQencryptPasswordConn, as psql's ``\\password``
does) but cannot say whether a stored one belongs to a password; a password rotation needs that to
leave a group that already has the new password alone. So this recomputes the verifier's keys with
its own salt and iteration count (RFC 5802/7677), the password prepared as PostgreSQL prepares it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import stringprep
import unicodedata

PREFIX = "SCRAM-SHA-256$"
MAX_ITERATIONS = 10_000_000
"""A stored count above this is not one PostgreSQL made: refused rather than computed for minutes."""


def saslprep(password: str) -> str:
    """The password as PostgreSQL's SCRAM uses it (RFC 4013 SASLprep; the original if prohibited).

    Like PostgreSQL (src/common/saslprep.c): pure ASCII is used as is; otherwise map, NFKC-normalise
    and check, and fall back to the unprepared password when the result is prohibited.

    >>> saslprep("pencil"), saslprep("I\\u00adX"), saslprep("\\u2168"), saslprep("a\\u0007b\\u00e9")
    ('pencil', 'IX', 'IX', 'a\\x07bé')
    """
    if password.isascii():
        return password
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char
        for char in password
        if not stringprep.in_table_b1(char)
    )
    prepared = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_c12,
        stringprep.in_table_c21_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
        stringprep.in_table_a1,
    )
    if not prepared or any(check(char) for char in prepared for check in prohibited):
        return password
    if any(stringprep.in_table_d1(char) for char in prepared) and (
        any(stringprep.in_table_d2(char) for char in prepared)
        or not stringprep.in_table_d1(prepared[0])
        or not stringprep.in_table_d1(prepared[-1])
    ):
        return password
    return prepared


def _scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey) of RFC 5802 with SHA-256."""
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest(), server_key


def verifier_matches(verifier: str | None, password: str) -> bool:
    """Whether a stored verifier (pg_authid.rolpassword) is one for password, recomputed with its salt.

    >>> rfc = ("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    ...        ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=")
    >>> verifier_matches(rfc, "pencil"), verifier_matches(rfc, "pencil!"), verifier_matches("md5a", "")
    (True, False, False)
    """
    if verifier is None or not verifier.startswith(PREFIX):
        return False
    try:
        head, keys = verifier.removeprefix(PREFIX).split("$")
        iterations_text, salt_text = head.split(":")
        stored_text, server_text = keys.split(":")
        salt, iterations = base64.b64decode(salt_text, validate=True), int(iterations_text)
        expected = base64.b64decode(stored_text, validate=True), base64.b64decode(server_text, validate=True)
    except ValueError:
        return False
    if not 1 <= iterations <= MAX_ITERATIONS:
        return False
    stored_key, server_key = _scram_keys(password, salt, iterations)
    return hmac.compare_digest(stored_key, expected[0]) and hmac.compare_digest(server_key, expected[1])
