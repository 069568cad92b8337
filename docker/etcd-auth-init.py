#!/usr/bin/env python3
"""Switch on etcd's RBAC for the compose demo: a root user, a `patroni` user that may read and write
Patroni's namespace only, then `auth enable`. Run once (compose's etcd-init service); safe to rerun.

It talks to etcd's JSON gateway (`/v3/...`) over TLS with a client certificate, with the standard
library only, so it runs in the patroni-citus image beside any etcd image (the upstream one has no
shell to script etcdctl in). Rerunning it makes the password files authoritative: an existing user
gets the file's password. It waits for etcd (up to --timeout seconds) instead of relying on
depends_on, which podman 4.3 does not honour.

    etcd-auth-init.py --endpoint https://etcd:2379 --tls-dir /run/tls \\
        --root-password-file /run/secrets/etcd-root-password \\
        --patroni-password-file /run/secrets/etcd-patroni-password --prefix /service/
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: gRPC status codes etcd answers with while it starts or elects a leader: worth retrying.
_TRANSIENT_CODES = frozenset({4, 14})  # DEADLINE_EXCEEDED, UNAVAILABLE


class EtcdError(Exception):
    """etcd refused a request; `message` is etcd's own text (e.g. 'etcdserver: user name already exists')."""

    def __init__(self, path: str, code: int, message: str) -> None:
        super().__init__(f"{path}: {message} (gRPC code {code})")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Login:
    name: str
    password: str = field(repr=False)


@dataclass
class EtcdGateway:
    """etcd's JSON gateway at one endpoint, with a client certificate and, once logged in, a token."""

    endpoint: str
    context: ssl.SSLContext
    token: str | None = field(default=None, repr=False)

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token is not None:
            headers["Authorization"] = self.token
        request = urllib.request.Request(  # noqa: S310 - the endpoint is https, from the command line
            self.endpoint + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as response:  # noqa: S310
                answer: dict[str, Any] = json.loads(response.read() or b"{}")
                return answer
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())
            except ValueError:
                raise EtcdError(path, -1, f"HTTP {exc.code}") from None
            raise EtcdError(path, int(error.get("code", -1)), str(error.get("message", error))) from None

    def version(self) -> str:
        with urllib.request.urlopen(self.endpoint + "/version", context=self.context, timeout=5) as answer:  # noqa: S310
            return str(json.loads(answer.read()).get("etcdserver", "?"))


def prefix_range_end(prefix: str) -> str:
    """The range_end that makes a key a prefix, as etcdctl's --prefix computes it.

    >>> prefix_range_end("/service/")
    '/service0'
    """
    last = prefix.rstrip("\xff")
    return last[:-1] + chr(ord(last[-1]) + 1)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _tolerating(gateway: EtcdGateway, path: str, body: dict[str, Any], already: str) -> bool:
    """Call; True if done now, False if etcd says it was done before (its message contains *already*)."""
    try:
        gateway.call(path, body)
        return True
    except EtcdError as exc:
        if already in exc.message:
            return False
        raise


def password_works(gateway: EtcdGateway, login: Login) -> bool:
    """Whether etcd (with auth on) accepts this login; False while auth is off."""
    try:
        gateway.call("/v3/auth/authenticate", {"name": login.name, "password": login.password})
        return True
    except EtcdError as exc:
        if "authentication failed" in exc.message or "authentication is not enabled" in exc.message:
            return False
        raise


def ensure_user(gateway: EtcdGateway, login: Login, role: str) -> None:
    """The user exists with the file's password and holds the role.

    The password is changed only when it differs: a change ends the user's sessions (etcd drops
    their tokens), which for root would be this very session.
    """
    body = {"name": login.name, "password": login.password}
    added = _tolerating(gateway, "/v3/auth/user/add", body, "already exists")
    if not added and not password_works(gateway, login):
        gateway.call("/v3/auth/user/changepw", body)
    _tolerating(gateway, "/v3/auth/user/grant", {"user": login.name, "role": role}, "already")


def ensure_readwrite_role(gateway: EtcdGateway, role: str, prefix: str) -> None:
    _tolerating(gateway, "/v3/auth/role/add", {"name": role}, "already exists")
    permission = {"permType": "READWRITE", "key": _b64(prefix), "range_end": _b64(prefix_range_end(prefix))}
    gateway.call("/v3/auth/role/grant", {"name": role, "perm": permission})


def log_in(gateway: EtcdGateway, root: Login) -> bool:
    """Log in as root; False if auth is still off (a first run: nothing to log in to)."""
    try:
        answer = gateway.call("/v3/auth/authenticate", {"name": root.name, "password": root.password})
    except EtcdError as exc:
        if "authentication is not enabled" in exc.message:
            return False
        raise
    gateway.token = str(answer["token"])
    return True


def configure(gateway: EtcdGateway, root: Login, patroni: Login, prefix: str) -> str:
    """Every step, each one idempotent; returns what was found, for the log."""
    was_enabled = log_in(gateway, root)
    ensure_user(gateway, root, "root")  # the built-in role; auth enable refuses without a root user
    ensure_readwrite_role(gateway, patroni.name, prefix)
    ensure_user(gateway, patroni, patroni.name)
    gateway.call("/v3/auth/enable", {})
    return "auth was already on; users brought up to date" if was_enabled else "auth switched on"


def read_password(path: Path) -> str:
    password = path.read_text(encoding="utf-8").rstrip("\r\n")
    if not password or "\n" in password:
        raise ValueError(f"{path}: put the password on one line")
    return password


def tls_context(tls_dir: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    context.load_cert_chain(str(tls_dir / "tls.crt"), str(tls_dir / "tls.key"))
    return context


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Switch on etcd RBAC with a user for Patroni (idempotent).")
    parser.add_argument("--endpoint", required=True, help="e.g. https://etcd:2379")
    parser.add_argument("--tls-dir", type=Path, required=True, help="holds ca.crt, tls.crt and tls.key")
    parser.add_argument("--root-password-file", type=Path, required=True)
    parser.add_argument("--patroni-user", default="patroni", help="user and role name (default patroni)")
    parser.add_argument("--patroni-password-file", type=Path, required=True)
    parser.add_argument("--prefix", default="/service/", help="Patroni's namespace (default /service/)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for etcd (default 180)")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    arguments = parse_arguments(argv)
    try:
        root = Login("root", read_password(arguments.root_password_file))
        patroni = Login(arguments.patroni_user, read_password(arguments.patroni_password_file))
        gateway = EtcdGateway(arguments.endpoint.rstrip("/"), tls_context(arguments.tls_dir))
    except (OSError, ValueError, ssl.SSLError) as exc:
        print(f"etcd-auth-init: error: {exc}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + arguments.timeout
    while True:
        try:
            version = gateway.version()
            outcome = configure(gateway, root, patroni, arguments.prefix)
        except (OSError, EtcdError) as exc:
            transient = not isinstance(exc, EtcdError) or exc.code in _TRANSIENT_CODES
            if not transient or time.monotonic() > deadline:
                print(f"etcd-auth-init: error: {exc}", file=sys.stderr)
                return 1
            print(f"etcd-auth-init: waiting for {gateway.endpoint}: {exc}", file=sys.stderr, flush=True)
            time.sleep(2)
            continue
        print(
            f"etcd-auth-init: etcd {version} at {gateway.endpoint}: {outcome}; "
            f"user {patroni.name} may read and write {arguments.prefix} only",
            flush=True,
        )
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
