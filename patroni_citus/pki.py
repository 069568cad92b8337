"""A small certificate authority: a CA and the leaf certificates it signs, as PEM (and as files).

Keys are EC P-256. The CA may sign leaf certificates only (path length 0) and its key is needed only
while issuing. A leaf certificate serves TLS servers (its names as subject alternative names, what
``verify-full`` and Python's ssl match), TLS clients, or both, and carries its CA's organisation:

>>> ca = make_ca("patroni-citus example")
>>> ca.certificate.subject.rfc4514_string()
'CN=patroni-citus example CA,O=patroni-citus example'
>>> etcd = issue(ca, "etcd-1", server_names=["etcd-1", "127.0.0.1"], client=True)
>>> etcd.certificate.subject.rfc4514_string()  # a client may present it: no CN, see `subject`
'OU=etcd-1,O=patroni-citus example'
>>> etcd.key_pem.splitlines()[0]
'-----BEGIN PRIVATE KEY-----'
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from patroni_citus.template import write_private_file

VALIDITY = datetime.timedelta(days=365)
#: Valid from a little before now, so a host whose clock lags by a few minutes accepts it at once.
CLOCK_SKEW = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class CertifiedKey:
    """A private key and the certificate for its public key (a CA's or a leaf's)."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    @property
    def organization(self) -> str:
        """The subject's O, which the certificates a CA issues carry too."""
        attributes = self.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        if not attributes:
            raise ValueError(f"{self.certificate.subject.rfc4514_string()} has no O: not a CA from `make_ca`")
        return str(attributes[0].value)


def load(certificate_pem: bytes, key_pem: bytes) -> CertifiedKey:
    """A CA (or leaf) written earlier, e.g. by `write_pair`, to issue more certificates with."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"not an EC private key but {type(key).__name__}: this module writes EC P-256 keys")
    return CertifiedKey(x509.load_pem_x509_certificate(certificate_pem), key)


def subject(organization: str, name: str, *, client: bool) -> x509.Name:
    """O=organization, and the name as CN, or as OU if the certificate may be a client's.

    A client certificate has no CN: while auth is enabled, etcd's JSON gateway (what Patroni's etcd3
    client speaks) answers 400 "CommonName of client sending a request against gateway will be
    ignored" to any client certificate with a CN (etcd 3.4.23), and on etcd's gRPC API a CN would log
    the client in as the etcd user of that name without a password. A client logs in with its
    password; its certificate proves it is one of the CA's clients. A server is known by its SANs.

    >>> subject("example", "patroni", client=True).rfc4514_string()
    'OU=patroni,O=example'
    """
    name_oid = NameOID.ORGANIZATIONAL_UNIT_NAME if client else NameOID.COMMON_NAME
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization), x509.NameAttribute(name_oid, name)]
    )


def alternative_names(names: Sequence[str]) -> x509.SubjectAlternativeName:
    """IP addresses as IP entries (what libpq and Python match an address against), the rest as DNS.

    >>> [type(n).__name__ for n in alternative_names(["127.0.0.1", "localhost"])]
    ['IPAddress', 'DNSName']
    """
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """A CA's key signs certificates (and CRLs); a leaf's EC key signs handshakes and agrees keys."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not signs_certificates,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    name: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, validity: datetime.timedelta
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def make_ca(organization: str, *, validity: datetime.timedelta = VALIDITY) -> CertifiedKey:
    """A self-signed CA named "<organization> CA" that may sign leaf certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} CA"),
        ]
    )
    certificate = (
        _builder(name, name, key, validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return CertifiedKey(certificate, key)


def issue(
    ca: CertifiedKey,
    name: str,
    *,
    server_names: Sequence[str] = (),
    client: bool = False,
    validity: datetime.timedelta = VALIDITY,
) -> CertifiedKey:
    """A leaf certificate for *name* signed by *ca*: a server's if server_names (its SANs) are given,
    a client's if asked, or both. Its subject follows `subject` (no CN if a client may present it)."""
    if not (server_names or client):
        raise ValueError(f"a certificate for {name!r} needs server_names, client=True, or both")
    key = ec.generate_private_key(ec.SECP256R1())
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    builder = (
        _builder(subject(ca.organization, name, client=client), ca.certificate.subject, key, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if server_names:
        builder = builder.add_extension(alternative_names(server_names), critical=False)
    return CertifiedKey(builder.sign(ca.key, hashes.SHA256()), key)


def write_certificate(path: Path, certificate_pem: str) -> None:
    """A certificate file anyone may read (0644 whatever the umask: other users verify with it)."""
    path.write_text(certificate_pem)
    os.chmod(path, 0o644)


def write_pair(
    pair: CertifiedKey, certificate: Path, key: Path, *, key_owner: tuple[int, int] | None = None
) -> None:
    """The key 0600 from the start and handed to key_owner (PostgreSQL refuses a key others can read,
    and must own it), then the certificate 0644."""
    write_private_file(key, pair.key_pem, owner=key_owner)
    write_certificate(certificate, pair.certificate_pem)
