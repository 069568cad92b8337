#!/usr/bin/env python3
"""Make the TLS files of the compose demo: a private CA, etcd's certificate and one per member host.

    python3 docker/make-demo-certs.py docker/demo-tls          # as root: keys go to uid/gid 999
    python3 docker/make-demo-certs.py --member db-1 --member db-2 --etcd etcd-1 --key-owner none DIR

Every name gets a directory NAME/ holding ca.crt, tls.crt and tls.key (the Kubernetes TLS secret
names), so a container mounts its own directory and sees no other host's key; DIR/ca.crt is the CA
for clients. Each certificate is valid for TLS servers and clients, with NAME, localhost and
127.0.0.1 as subject alternative names: a member's serves PostgreSQL (CITUS_NODE_SSLMODE=verify-full
checks the host name) and logs it in to etcd; etcd's serves etcd and its peers. No host certificate
has a common name (etcd refuses gateway requests from client certificates with one). The CA's
private key is never written: to add a host, make the whole set again.

Keys are written with mode 0600 and handed to --key-owner (default 999:999, the image's postgres
user, which PostgreSQL requires to own its key: run this as root). Needs the `cryptography` package
(Debian: python3-cryptography).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: compose.yaml's services: the host names the members reach each other (and etcd) by.
COMPOSE_MEMBERS = ("coordinator-a", "coordinator-b", "worker-1a", "worker-1b", "worker-2a", "worker-2b")
COMPOSE_ETCD = ("etcd",)
IMAGE_POSTGRES_OWNER = "999:999"
#: Names every certificate also carries, so a client on the same machine can verify it too.
LOOPBACK_DNS = "localhost"
LOOPBACK_IP = ipaddress.ip_address("127.0.0.1")
FILES = ("ca.crt", "tls.crt", "tls.key")
ORGANIZATION = "patroni-citus demo"


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


@dataclass(frozen=True)
class Issued:
    """A host's certificate and private key, PEM-encoded."""

    name: str
    certificate_pem: bytes
    key_pem: bytes


def parse_owner(value: str) -> Owner | None:
    """``UID:GID`` for the keys, or ``none`` to leave them with the caller.

    >>> parse_owner("999:999"), parse_owner("none")
    (Owner(uid=999, gid=999), None)
    """
    if value == "none":
        return None
    uid, sep, gid = value.partition(":")
    if not (sep and uid.isdigit() and gid.isdigit()):
        raise argparse.ArgumentTypeError(f"{value!r}: use UID:GID (numbers, e.g. 999:999) or none")
    return Owner(int(uid), int(gid))


def _ca_name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _host_name(host: str) -> x509.Name:
    """A host's subject, without a common name: etcd answers 400 to a gateway (/v3/...) request whose
    client certificate has one once auth is on (Patroni's etcd3 client uses the gateway), and on its
    gRPC API it would log the client in as the etcd user of that name. The SAN names the host."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, host),
        ]
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    # A little in the past, so a host whose clock lags by a few minutes accepts it at once.
    return now - datetime.timedelta(minutes=10), now + datetime.timedelta(days=days)


def make_ca(common_name: str, days: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA that may sign host certificates only (path length 0)."""
    key = _new_key()
    not_before, not_after = _validity(days)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_ca_name(common_name))
        .issuer_name(_ca_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def issue(
    ca_key: ec.EllipticCurvePrivateKey, ca_certificate: x509.Certificate, host: str, days: int
) -> Issued:
    """A certificate for *host* as TLS server and client, signed by the CA."""
    key = _new_key()
    not_before, not_after = _validity(days)
    alternative_names = x509.SubjectAlternativeName(
        [x509.DNSName(host), x509.DNSName(LOOPBACK_DNS), x509.IPAddress(LOOPBACK_IP)]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_host_name(host))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
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
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(alternative_names, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Issued(host, certificate.public_bytes(serialization.Encoding.PEM), key_pem)


def _write(path: Path, data: bytes, mode: int, owner: Owner | None) -> None:
    """Write atomically with *mode* from the start (a key is never readable by others, not even briefly)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.chmod(partial, mode)  # whatever the umask
        if owner is not None:
            os.chown(partial, owner.uid, owner.gid)
        partial.replace(path)
    except OSError:
        partial.unlink(missing_ok=True)
        raise


def write_set(
    out_dir: Path, ca_certificate: x509.Certificate, issued: Sequence[Issued], owner: Owner | None
) -> None:
    """DIR/ca.crt, and DIR/NAME/{ca.crt,tls.crt,tls.key} for each host."""
    ca_pem = ca_certificate.public_bytes(serialization.Encoding.PEM)
    out_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    _write(out_dir / "ca.crt", ca_pem, 0o644, None)
    for host in issued:
        host_dir = out_dir / host.name
        host_dir.mkdir(mode=0o755, exist_ok=True)
        host_dir.chmod(0o755)  # the containers' uid 999 must be able to enter it
        _write(host_dir / "ca.crt", ca_pem, 0o644, None)
        _write(host_dir / "tls.crt", host.certificate_pem, 0o644, None)
        _write(host_dir / "tls.key", host.key_pem, 0o600, owner)


def existing_files(out_dir: Path, hosts: Sequence[str]) -> list[Path]:
    candidates = [out_dir / "ca.crt"] + [out_dir / host / name for host in hosts for name in FILES]
    return [path for path in candidates if path.exists()]


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Make a private CA and TLS certificates for the compose demo (or a trial on hosts)."
    )
    parser.add_argument("out_dir", type=Path, metavar="OUTDIR", help="where to write (created if missing)")
    parser.add_argument(
        "--member",
        action="append",
        metavar="HOST",
        help=f"a Patroni member's host name; repeat (default: compose.yaml's {', '.join(COMPOSE_MEMBERS)})",
    )
    parser.add_argument(
        "--etcd", action="append", metavar="HOST", help="an etcd host name; repeat (default: etcd)"
    )
    parser.add_argument(
        "--key-owner",
        type=parse_owner,
        default=IMAGE_POSTGRES_OWNER,
        metavar="UID:GID",
        help="owner of the tls.key files, or none (default 999:999: the image's postgres user)",
    )
    parser.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    parser.add_argument("--force", action="store_true", help="replace files that already exist")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    arguments = parse_arguments(argv)
    hosts = [*(arguments.member or COMPOSE_MEMBERS), *(arguments.etcd or COMPOSE_ETCD)]
    if len(set(hosts)) != len(hosts):
        print(f"make-demo-certs: error: a host name is given twice in {hosts}", file=sys.stderr)
        return 2
    present = existing_files(arguments.out_dir, hosts)
    if present and not arguments.force:
        print(
            f"make-demo-certs: error: {present[0]} exists ({len(present)} files in all); "
            "pass --force to replace the whole set (running formations then need restarting)",
            file=sys.stderr,
        )
        return 2
    owner: Owner | None = arguments.key_owner
    if owner is not None and os.geteuid() != 0 and owner != Owner(os.getuid(), os.getgid()):
        print(
            f"make-demo-certs: error: --key-owner {owner.uid}:{owner.gid} needs root (only root gives "
            "files away): run it as root, or pass --key-owner none and install the keys yourself",
            file=sys.stderr,
        )
        return 2
    ca_key, ca_certificate = make_ca(f"{ORGANIZATION} CA", arguments.days)
    issued = [issue(ca_key, ca_certificate, host, arguments.days) for host in hosts]
    write_set(arguments.out_dir, ca_certificate, issued, owner)
    whose = "yours" if owner is None else f"owned by {owner.uid}:{owner.gid}"
    print(f"{arguments.out_dir}: CA ca.crt; {', '.join(hosts)}: tls.crt, tls.key (0600, {whose}), ca.crt")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
