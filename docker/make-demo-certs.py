#!/usr/bin/env python3
"""Make the TLS files of the compose demo: a private CA, etcd's certificate and one per member host.

    sudo /opt/patroni-citus/venv/bin/python docker/make-demo-certs.py docker/demo-tls  # keys: uid 999
    /opt/patroni-citus/venv/bin/python docker/make-demo-certs.py \
        --member db-1 --member db-2 --etcd etcd-1 --key-owner none DIR

Every name gets a directory NAME/ holding ca.crt, tls.crt and tls.key (the Kubernetes TLS secret
names), so a container mounts its own directory and sees no other host's key; DIR/ca.crt is the CA
for clients. Each certificate is valid for TLS servers and clients, with NAME, localhost and
127.0.0.1 as subject alternative names: a member's serves PostgreSQL (CITUS_NODE_SSLMODE=verify-full
checks the host name) and logs it in to etcd; etcd's serves etcd and its peers. No host certificate
has a common name (etcd refuses gateway requests from client certificates with one: see
patroni_citus.pki.subject). The CA's private key is never written: to add a host, make the whole set
again.

Keys are written with mode 0600 and handed to --key-owner (default 999:999, the image's postgres
user, which PostgreSQL requires to own its key: run this as root). It imports patroni_citus.pki, so
run it with the project's venv Python (/opt/patroni-citus/venv/bin/python: `sudo ./scripts/install.sh`
installs this checkout there).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    from patroni_citus import pki
except ImportError as missing:  # Debian's python3, or a venv from before patroni_citus.pki
    sys.exit(
        f"make-demo-certs: error: {missing} (with {sys.executable}): run this with the project's venv "
        "Python, /opt/patroni-citus/venv/bin/python, holding this checkout (sudo ./scripts/install.sh)"
    )

#: compose.yaml's services: the host names the members reach each other (and etcd) by.
COMPOSE_MEMBERS = ("coordinator-a", "coordinator-b", "worker-1a", "worker-1b", "worker-2a", "worker-2b")
COMPOSE_ETCD = ("etcd",)
#: compose.yaml's clients of etcd and PostgreSQL that serve nothing of the formation: the exporter,
#: and the pooler's watcher and PgBouncer (which share one directory).
COMPOSE_CLIENTS = ("metrics", "pooler")
IMAGE_POSTGRES_OWNER = "999:999"
#: Names every certificate also carries, so a client on the same machine can verify it too.
LOOPBACK_NAMES = ("localhost", "127.0.0.1")
FILES = ("ca.crt", "tls.crt", "tls.key")
ORGANIZATION = "patroni-citus demo"
Owner = tuple[int, int]


def parse_owner(value: str) -> Owner | None:
    """``UID:GID`` for the keys, or ``none`` to leave them with the caller.

    >>> parse_owner("999:999"), parse_owner("none")
    ((999, 999), None)
    """
    if value == "none":
        return None
    uid, sep, gid = value.partition(":")
    if not (sep and uid.isdigit() and gid.isdigit()):
        raise argparse.ArgumentTypeError(f"{value!r}: use UID:GID (numbers, e.g. 999:999) or none")
    return int(uid), int(gid)


def issue_set(hosts: Sequence[str], days: int) -> tuple[pki.CertifiedKey, dict[str, pki.CertifiedKey]]:
    """A new CA, and for each host a certificate for TLS server and client use (so no CN)."""
    validity = datetime.timedelta(days=days)
    ca = pki.make_ca(ORGANIZATION, validity=validity)
    issued = {
        host: pki.issue(ca, host, server_names=[host, *LOOPBACK_NAMES], client=True, validity=validity)
        for host in hosts
    }
    return ca, issued


def write_set(
    out_dir: Path, ca: pki.CertifiedKey, issued: dict[str, pki.CertifiedKey], owner: Owner | None
) -> None:
    """DIR/ca.crt, and DIR/NAME/{ca.crt,tls.crt,tls.key} for each host; the CA's key is not written."""
    out_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    pki.write_certificate(out_dir / "ca.crt", ca.certificate_pem)
    for host, host_pair in issued.items():
        host_dir = out_dir / host
        host_dir.mkdir(mode=0o755, exist_ok=True)
        host_dir.chmod(0o755)  # the containers' uid 999 must be able to enter it
        pki.write_certificate(host_dir / "ca.crt", ca.certificate_pem)
        pki.write_pair(host_pair, host_dir / "tls.crt", host_dir / "tls.key", key_owner=owner)


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
        "--client",
        action="append",
        metavar="HOST",
        help="another host that logs in to etcd (repeat; default without --member: compose.yaml's "
        f"{', '.join(COMPOSE_CLIENTS)})",
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
    clients = arguments.client or ([] if arguments.member else list(COMPOSE_CLIENTS))
    hosts = [*(arguments.member or COMPOSE_MEMBERS), *(arguments.etcd or COMPOSE_ETCD), *clients]
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
    if owner is not None and os.geteuid() != 0 and owner != (os.getuid(), os.getgid()):
        print(
            f"make-demo-certs: error: --key-owner {owner[0]}:{owner[1]} needs root (only root gives "
            "files away): run it as root, or pass --key-owner none and install the keys yourself",
            file=sys.stderr,
        )
        return 2
    ca, issued = issue_set(hosts, arguments.days)
    write_set(arguments.out_dir, ca, issued, owner)
    whose = "yours" if owner is None else f"owned by {owner[0]}:{owner[1]}"
    print(f"{arguments.out_dir}: CA ca.crt; {', '.join(hosts)}: tls.crt, tls.key (0600, {whose}), ca.crt")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
