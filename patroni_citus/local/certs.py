"""A `--tls` formation's own certificate authority and the certificates etcd, PostgreSQL and clients use.

One CA per formation (`patroni_citus.pki`) signs: etcd's server certificate (its JSON gateway's client
one too), one server certificate per PostgreSQL member (so ``sslmode=verify-full`` can check the
member's address), and a client certificate per etcd user (the user's name in OU; no certificate a
client presents has a CN, see `patroni_citus.pki.subject`). Keys are written 0600 and owned by
whoever reads them: PostgreSQL refuses a server key others can read, and Patroni runs as the
service user. Files are made once and kept, so a formation started again keeps its CA.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Sequence

from patroni_citus import pki
from patroni_citus.local.layout import (
    ETCD_CLI_USER,
    ETCD_PATRONI_USER,
    ETCD_ROOT_USER,
    LOOPBACK,
    FormationLayout,
    TlsPair,
)

Owner = tuple[int, int] | None


def make_ca(pair: TlsPair, formation: str) -> None:
    """The formation's CA (see `patroni_citus.pki.make_ca`), its key kept beside it to issue more later."""
    pair.cert.parent.mkdir(parents=True, exist_ok=True)
    pki.write_pair(pki.make_ca(f"patroni-citus local formation {formation}"), pair.cert, pair.key)


def issue(
    ca: TlsPair,
    pair: TlsPair,
    name: str,
    *,
    server_names: Sequence[str] = (),
    client: bool = False,
    owner: Owner = None,
) -> None:
    """A certificate for *name* signed by the formation's CA (see `patroni_citus.pki.issue`: a client's
    carries the name in OU and no CN), its key handed to *owner*."""
    authority = pki.load(ca.cert.read_bytes(), ca.key.read_bytes())
    issued = pki.issue(authority, name, server_names=server_names, client=client)
    pki.write_pair(issued, pair.cert, pair.key, key_owner=owner)


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
    for pair, name, server_names, client, key_owner in wanted:
        if not (pair.cert.exists() and pair.key.exists()):
            issue(layout.ca, pair, name, server_names=server_names, client=client, owner=key_owner)
            made.append(str(pair.cert))
        elif key_owner is not None:
            os.chown(pair.key, *key_owner)
    return made
