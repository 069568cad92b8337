"""patroni_citus.pki's certificates, read back: extensions, names and files (handshakes: test_demo_certs)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from patroni_citus import pki
from patroni_citus.local import certs
from patroni_citus.local.layout import FormationLayout

SERVER_AUTH, CLIENT_AUTH = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


@pytest.fixture(scope="module")
def ca() -> pki.CertifiedKey:
    return pki.make_ca("patroni-citus test")


def extension(
    certificate: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return certificate.extensions.get_extension_for_class(kind)


def names(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(attribute.value) for attribute in certificate.subject.get_attributes_for_oid(oid)]


def test_the_ca_signs_leaf_certificates_only_and_itself(ca: pki.CertifiedKey) -> None:
    constraints = extension(ca.certificate, x509.BasicConstraints)
    assert constraints.critical and constraints.value == x509.BasicConstraints(ca=True, path_length=0)
    usage = extension(ca.certificate, x509.KeyUsage)
    assert usage.critical
    assert isinstance(usage.value, x509.KeyUsage)
    assert usage.value.key_cert_sign and usage.value.crl_sign and usage.value.digital_signature
    assert not usage.value.key_agreement
    ca.certificate.verify_directly_issued_by(ca.certificate)
    assert ca.certificate.subject.rfc4514_string() == "CN=patroni-citus test CA,O=patroni-citus test"
    assert isinstance(ca.key.curve, ec.SECP256R1)


def test_a_server_certificate_has_its_names_as_sans_and_a_cn(ca: pki.CertifiedKey) -> None:
    server = pki.issue(ca, "db-1", server_names=["db-1", "127.0.0.1", "localhost", "db-1"])
    server.certificate.verify_directly_issued_by(ca.certificate)
    sans = extension(server.certificate, x509.SubjectAlternativeName).value
    assert isinstance(sans, x509.SubjectAlternativeName)
    assert sans.get_values_for_type(x509.DNSName) == ["db-1", "localhost"]  # once each
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert extension(server.certificate, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage([SERVER_AUTH])
    assert names(server.certificate, NameOID.COMMON_NAME) == ["db-1"]
    assert names(server.certificate, NameOID.ORGANIZATION_NAME) == ["patroni-citus test"]


@pytest.mark.parametrize(
    ("server_names", "usages"), [((), [CLIENT_AUTH]), (("etcd",), [SERVER_AUTH, CLIENT_AUTH])]
)
def test_a_certificate_a_client_presents_has_no_cn_and_its_name_in_ou(
    ca: pki.CertifiedKey, server_names: tuple[str, ...], usages: list[x509.ObjectIdentifier]
) -> None:
    issued = pki.issue(ca, "patroni", server_names=server_names, client=True)
    assert names(issued.certificate, NameOID.COMMON_NAME) == []  # etcd's gateway answers 400 to one
    assert names(issued.certificate, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["patroni"]
    assert extension(issued.certificate, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(usages)
    has_sans = any(isinstance(e.value, x509.SubjectAlternativeName) for e in issued.certificate.extensions)
    assert has_sans == bool(server_names)


def test_a_leaf_certificate_cannot_sign_and_names_its_ca(ca: pki.CertifiedKey) -> None:
    leaf = pki.issue(ca, "patroni", client=True)
    constraints = extension(leaf.certificate, x509.BasicConstraints)
    assert constraints.critical and constraints.value == x509.BasicConstraints(ca=False, path_length=None)
    usage = extension(leaf.certificate, x509.KeyUsage).value
    assert isinstance(usage, x509.KeyUsage)
    assert usage.digital_signature and usage.key_agreement and not usage.key_cert_sign
    authority = extension(leaf.certificate, x509.AuthorityKeyIdentifier).value
    subject_key = extension(ca.certificate, x509.SubjectKeyIdentifier).value
    assert isinstance(authority, x509.AuthorityKeyIdentifier)
    assert isinstance(subject_key, x509.SubjectKeyIdentifier)
    assert authority.key_identifier == subject_key.digest
    assert leaf.certificate.issuer == ca.certificate.subject


def test_validity_starts_a_little_before_now_and_lasts_as_asked(ca: pki.CertifiedKey) -> None:
    now = datetime.datetime.now(datetime.UTC)
    leaf = pki.issue(ca, "patroni", client=True, validity=datetime.timedelta(days=3))
    assert leaf.certificate.not_valid_before_utc < now - datetime.timedelta(minutes=5)
    assert abs(
        leaf.certificate.not_valid_after_utc - (now + datetime.timedelta(days=3))
    ) < datetime.timedelta(minutes=1)


def test_a_certificate_for_nothing_is_refused(ca: pki.CertifiedKey) -> None:
    with pytest.raises(ValueError, match=r"'nobody' needs server_names, client=True, or both"):
        pki.issue(ca, "nobody")


def test_pem_round_trips_and_a_key_that_is_not_ec_is_refused(ca: pki.CertifiedKey) -> None:
    loaded = pki.load(ca.certificate_pem.encode(), ca.key_pem.encode())
    assert loaded.certificate == ca.certificate and loaded.key.private_numbers() == ca.key.private_numbers()
    assert "PRIVATE" not in repr(loaded)
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="not an EC private key"):
        pki.load(ca.certificate_pem.encode(), rsa_pem)


def test_write_pair_keeps_the_key_private_and_gives_it_away(ca: pki.CertifiedKey, tmp_path: Path) -> None:
    own = (os.getuid(), os.getgid())  # the one owner a test may give a file to without root
    pki.write_pair(
        pki.issue(ca, "patroni", client=True), tmp_path / "a.crt", tmp_path / "a.key", key_owner=own
    )
    key, certificate = (tmp_path / "a.key").stat(), (tmp_path / "a.crt").stat()
    assert (key.st_mode & 0o777, certificate.st_mode & 0o777) == (0o600, 0o644)
    assert (key.st_uid, key.st_gid) == own
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.crt", "a.key"]  # no temporary left


def test_a_local_formation_gets_its_certificates_once(tmp_path: Path) -> None:
    layout = FormationLayout(str(tmp_path), workers=1, members=1, port_base=47800)
    service_user = pwd.getpwuid(os.getuid())
    made = certs.ensure_formation_certificates(layout, service_user)
    assert str(layout.ca.cert) in made and str(layout.etcd_tls.cert) in made
    assert len(made) == 1 + 4 + len(layout.all_members())  # CA, etcd, three etcd users, members
    assert certs.ensure_formation_certificates(layout, service_user) == []
    authority = pki.load(layout.ca.cert.read_bytes(), layout.ca.key.read_bytes())
    member = x509.load_pem_x509_certificate(layout.all_members()[0].server_tls.cert.read_bytes())
    member.verify_directly_issued_by(authority.certificate)
    assert names(member, NameOID.COMMON_NAME) == [layout.all_members()[0].name]
    etcd = x509.load_pem_x509_certificate(layout.etcd_tls.cert.read_bytes())
    assert names(etcd, NameOID.COMMON_NAME) == []  # its gateway presents it as a client
