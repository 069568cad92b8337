"""The local formation's etcd: start it (http, or https with client certificates) and set up its users.

With ``--tls`` etcd serves only https and asks every client for a certificate signed by the
formation's CA (``--client-cert-auth``); on top of that RBAC is enabled: ``root``, a ``patroni``
user that may read and write the Patroni namespace, and a ``patroni-citus-cli`` user that may only
read it. Users, roles and ``auth enable`` go through etcd's own JSON gateway (``/v3/auth/*``), so
no password ever appears on a command line.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from patroni_citus.errors import PatroniCitusError
from patroni_citus.local import processes
from patroni_citus.local.layout import (
    ETCD_CLI_USER,
    ETCD_PATRONI_USER,
    ETCD_ROOT_USER,
    LOOPBACK,
    NAMESPACE,
    FormationLayout,
)

Reporter = Callable[[str], None]
START_TIMEOUT = 30.0
MARKER = "etcd"  # in etcd's command line: tells our etcd from a process that reused its pid
#: etcd users of a --tls formation and the namespace permission each role grants.
ROLE_PERMISSIONS = {ETCD_PATRONI_USER: "READWRITE", ETCD_CLI_USER: "READ"}


class EtcdError(PatroniCitusError):
    """etcd could not be started, reached or set up; the message names its log."""


def _password(layout: FormationLayout, user: str) -> str:
    return layout.secret(f"etcd-{user}").read_text(encoding="utf-8").rstrip("\r\n")


def client_url(layout: FormationLayout, host: str | None = None) -> str:
    scheme = "https" if layout.tls else "http"
    return f"{scheme}://{host or layout.host_address}:{layout.etcd_client_port}"


def command(layout: FormationLayout) -> list[str]:
    """etcd's command line: clients on loopback and (netns) the bridge; with --tls https and client certs."""
    etcd = shutil.which("etcd")
    if etcd is None:
        raise EtcdError("etcd is not installed; apt-get install etcd-server")
    peer = f"http://{layout.host_address}:{layout.etcd_peer_port}"
    listen = ",".join(dict.fromkeys((client_url(layout, LOOPBACK), client_url(layout))))
    argv = [
        etcd,
        "--name",
        f"{layout.name}-etcd",
        "--data-dir",
        str(layout.etcd_dir / "data"),
        "--listen-client-urls",
        listen,
        "--advertise-client-urls",
        client_url(layout),
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        f"{layout.name}-etcd={peer}",
        "--initial-cluster-state",
        "new",
    ]
    if layout.tls:
        argv += [
            "--cert-file",
            str(layout.etcd_tls.cert),
            "--key-file",
            str(layout.etcd_tls.key),
            "--client-cert-auth",
            "--trusted-ca-file",
            str(layout.ca.cert),
        ]
    return argv


def _tls_context(layout: FormationLayout, user: str) -> ssl.SSLContext | None:
    if not layout.tls:
        return None
    context = ssl.create_default_context(cafile=str(layout.ca.cert))
    pair = layout.client_tls(user)
    context.load_cert_chain(str(pair.cert), str(pair.key))
    return context


def _call(layout: FormationLayout, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
    """One request to etcd (GET without body, else POST of JSON), with root's client certificate."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(client_url(layout, LOOPBACK) + path, data=data)  # noqa: S310
    with urllib.request.urlopen(  # noqa: S310 - our own etcd's URL
        request, timeout=3, context=_tls_context(layout, ETCD_ROOT_USER)
    ) as response:
        answer: dict[str, Any] = json.loads(response.read() or b"{}")
    return answer


def is_healthy(layout: FormationLayout) -> bool:
    """etcd's /health (over https with a client certificate when --tls) says true."""
    try:
        return _call(layout, "/health", None).get("health") == "true"
    except (OSError, ValueError):
        return False


def start(layout: FormationLayout, report: Reporter, record: Callable[[int], None]) -> int:
    """Start etcd as the caller and wait until it is healthy; with --tls also set up its users once."""
    layout.etcd_dir.mkdir(parents=True, exist_ok=True)
    daemon = processes.Daemon(
        what="etcd",
        argv=command(layout),
        log_path=layout.dcs_log_path,
        cwd=layout.etcd_dir,
        env={"PATH": "/usr/bin:/bin", "ETCD_UNSUPPORTED_ARCH": "", "HOME": str(layout.etcd_dir)},
        marker=MARKER,
        ready=lambda: is_healthy(layout),
        timeout=START_TIMEOUT,
        pause=0.2,
    )
    url = client_url(layout)

    def started(pid: int) -> None:
        record(pid)  # before the wait: an etcd that never answers is still found and stopped by `down`
        report(f"etcd: started (pid {pid}) on {url}, waiting for it to answer")

    pid = processes.start_unless_running(daemon, started)
    report("etcd: healthy" + (" (https, client certificates required)" if layout.tls else ""))
    if layout.tls:
        enable_auth(layout, report)
    return pid


def _prefix_range(prefix: str) -> tuple[str, str]:
    """The [key, range_end) pair of a prefix, base64 as etcd's JSON API wants it.

    >>> [base64.b64decode(part).decode() for part in _prefix_range("/service/")]
    ['/service/', '/service0']
    """
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return base64.b64encode(prefix.encode()).decode(), base64.b64encode(end.encode()).decode()


def _authenticate(layout: FormationLayout, user: str) -> str | None:
    """A token for user, or None while auth is not enabled yet."""
    try:
        answer = _call(layout, "/v3/auth/authenticate", {"name": user, "password": _password(layout, user)})
    except urllib.error.HTTPError as exc:
        if "not enabled" in exc.read().decode(errors="replace"):
            return None
        raise EtcdError(f"etcd refused {user}'s login ({exc}); see {layout.dcs_log_path}") from None
    return str(answer["token"])


def _admin(layout: FormationLayout, path: str, body: dict[str, Any]) -> None:
    """One user or role change; one an interrupted earlier set-up already made counts as done."""
    try:
        _call(layout, path, body)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        if "already exists" not in detail:
            raise EtcdError(f"etcd refused {path} ({exc}): {detail[:200]}") from None


def enable_auth(layout: FormationLayout, report: Reporter) -> None:
    """root, then a role and a user per client with its namespace permission, then `auth enable` (once)."""
    if _authenticate(layout, ETCD_ROOT_USER) is not None:
        report("etcd: RBAC already enabled")
        return
    key, range_end = _prefix_range(NAMESPACE)
    for user in (ETCD_ROOT_USER, *ROLE_PERMISSIONS):
        _admin(layout, "/v3/auth/user/add", {"name": user, "password": _password(layout, user)})
    _admin(layout, "/v3/auth/user/grant", {"user": ETCD_ROOT_USER, "role": "root"})
    for user, permission in ROLE_PERMISSIONS.items():
        _admin(layout, "/v3/auth/role/add", {"name": user})
        permission_range = {"permType": permission, "key": key, "range_end": range_end}
        _admin(layout, "/v3/auth/role/grant", {"name": user, "perm": permission_range})
        _admin(layout, "/v3/auth/user/grant", {"user": user, "role": user})
    _admin(layout, "/v3/auth/enable", {})
    grants = ", ".join(f"{user} {perm.lower()} on {NAMESPACE}" for user, perm in ROLE_PERMISSIONS.items())
    report(f"etcd: RBAC enabled (root; {grants})")


def is_ours(pid: int | None) -> bool:
    """The pid still runs etcd (not a process that reused the pid)."""
    return processes.is_ours(pid, MARKER)
