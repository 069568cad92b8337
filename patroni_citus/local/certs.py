"""A `--tls` formation's own certificate authority and the certificates etcd, PostgreSQL and clients use.

One CA per formation signs: etcd's server certificate, one server certificate per PostgreSQL member
(so ``sslmode=verify-full`` can check the member's address), and a client certificate per etcd user
(the user's name in OU, see `issue`). Keys are EC P-256, written 0600 and owned by whoever reads them:
PostgreSQL refuses a server key others can read, and Patroni runs as the service user.
Files are made once and kept, so a formation started again keeps its CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from patroni_citus.local.layout import (
    ETCD_CLI_USER,
    ETCD_PATRONI_USER,
    ETCD_ROOT_USER,
    LOOPBACK,
    FormationLayout,
    TlsPair,
)
from patroni_citus.template import write_private_file

VALIDITY = datetime.timedelta(days=365)
CLOCK_SKEW = datetime.timedelta(minutes=5)  # valid a little before now, for clocks slightly behind
Owner = tuple[int, int] | None


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(formation: str, common_name: str | None, unit: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"patroni-citus local formation {formation}")]
    if unit is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    if common_name is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _alternative_names(names: Sequence[str]) -> x509.SubjectAlternativeName:
    """IP addresses as IP entries (what libpq and Python match an address against), the rest as DNS.

    >>> [type(n).__name__ for n in _alternative_names(["127.0.0.1", "localhost"])]
    ['IPAddress', 'DNSName']
    """
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _write(
    pair: TlsPair, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey, owner: Owner
) -> None:
    write_private_file(pair.key, _key_pem(key), owner=owner)
    pair.cert.write_text(certificate.public_bytes(serialization.Encoding.PEM).decode())
    os.chmod(pair.cert, 0o644)


def _load_ca(pair: TlsPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    certificate = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)  # only this module writes it
    return certificate, key


def make_ca(pair: TlsPair, formation: str) -> None:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = _new_key()
    name = _name(formation, f"patroni-citus {formation} CA")
    certificate = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    pair.cert.parent.mkdir(parents=True, exist_ok=True)
    _write(pair, certificate, key, None)


def issue(
    ca: TlsPair,
    pair: TlsPair,
    common_name: str,
    formation: str,
    *,
    server_names: Sequence[str] = (),
    client: bool = False,
    owner: Owner = None,
) -> None:
    """A leaf certificate signed by the CA: a server one if server_names are given, a client one if asked.

    A client-only certificate names its user in OU and has no CN: while auth is enabled, etcd's
    JSON gateway (what Patroni's etcd3 client speaks) answers 400 "CommonName of client sending a
    request against gateway will be ignored" to any client certificate with a CN (etcd 3.4.23).
    The user logs in with its password; the certificate proves it is one of the formation's clients.
    """
    ca_certificate, ca_key = _load_ca(ca)
    subject = _name(formation, common_name) if server_names else _name(formation, None, unit=common_name)
    key = _new_key()
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    builder = (
        _builder(subject, ca_certificate.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server_names:
        builder = builder.add_extension(_alternative_names(server_names), critical=False)
    _write(pair, builder.sign(ca_key, hashes.SHA256()), key, owner)


def ensure_formation_certificates(layout: FormationLayout, service_user: pwd.struct_passwd) -> list[str]:
    """Make whatever the formation still lacks and return its files; keys the service user reads are its own.

    etcd runs as the caller; Patroni (as the service user) presents the `patroni` client certificate;
    the CLI (the caller) presents the `patroni-citus-cli` one; each PostgreSQL member its server one.
    """
    owner = (service_user.pw_uid, service_user.pw_gid) if os.geteuid() == 0 else None
    layout.tls_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.tls_dir, 0o755)  # noqa: S103 - the service user reads the CA and its own keys here
    made: list[str] = []
    if not layout.ca.cert.exists():
        make_ca(layout.ca, layout.name)
        made.append(str(layout.ca.cert))
    wanted: list[tuple[TlsPair, str, list[str], bool, Owner]] = [
        # etcd's JSON gateway connects to its own gRPC side with this certificate: client use too.
        (layout.etcd_tls, "etcd", [LOOPBACK, "localhost", layout.host_address], True, None),
        (layout.client_tls(ETCD_ROOT_USER), ETCD_ROOT_USER, [], True, None),
        (layout.client_tls(ETCD_PATRONI_USER), ETCD_PATRONI_USER, [], True, owner),
        (layout.client_tls(ETCD_CLI_USER), ETCD_CLI_USER, [], True, None),
    ]
    wanted += [
        (member.server_tls, member.name, [member.host, LOOPBACK, "localhost"], False, owner)
        for member in layout.all_members()
    ]
    for pair, common_name, names, client, key_owner in wanted:
        if not (pair.cert.exists() and pair.key.exists()):
            issue(
                layout.ca, pair, common_name, layout.name, server_names=names, client=client, owner=key_owner
            )
            made.append(str(pair.cert))
        elif key_owner is not None:
            os.chown(pair.key, *key_owner)
    return made
