"""The exporter's HTTP side: /metrics (Prometheus text format), /health, optional TLS and basic auth.

TLS and users come from flags or from a --web-config file in the style of Prometheus's
exporter-toolkit, so one file serves this exporter and the others beside it:

    tls_server_config:
      cert_file: /run/tls/tls.crt
      key_file: /run/tls/tls.key
    basic_auth_users:
      prometheus: $2b$12$...   # bcrypt hash (htpasswd -nBC 12 "" | tr -d ':\\n', or python -m bcrypt)

/health answers 200 without reading the DCS or asking for credentials: a liveness probe must not
fail because the formation is unhealthy, nor carry a password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from patroni_citus.errors import ConfigurationError, SecretSettingError

log = logging.getLogger("patroni_citus")
DEFAULT_LISTEN = "127.0.0.1:9645"
REALM = "patroni-citus"
_LISTEN_HELP = "use ADDR:PORT, e.g. 127.0.0.1:9645, 0.0.0.0:9645 or [::1]:9645 (PORT 0: any free port)"
_WEB_CONFIG_KEYS = {"tls_server_config", "basic_auth_users", "http_server_config"}


def parse_listen(value: str) -> tuple[str, int]:
    """ADDR:PORT (IPv6 in brackets) as a bindable pair.

    >>> parse_listen("127.0.0.1:9645"), parse_listen("[::1]:0")
    (('127.0.0.1', 9645), ('::1', 0))
    >>> parse_listen("9645")
    Traceback (most recent call last):
    ...
    patroni_citus.errors.ConfigurationError: --listen='9645' is invalid: use ADDR:PORT, ...
    """
    host, separator, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not separator or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigurationError("--listen", value, _LISTEN_HELP)
    return host, int(port)


@dataclass(frozen=True)
class WebConfig:
    """TLS and basic auth of the endpoint; empty means plain HTTP without a login."""

    cert_file: Path | None = None
    key_file: Path | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # name -> bcrypt hash

    def __repr__(self) -> str:  # hashes are secrets too
        return f"WebConfig(cert_file={self.cert_file}, key_file={self.key_file}, users={sorted(self.users)})"

    @property
    def scheme(self) -> str:
        return "https" if self.cert_file else "http"

    def tls_context(self, setting: str) -> ssl.SSLContext | None:
        if self.cert_file is None or self.key_file is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                setting, str(self.cert_file), f"cannot load it with its key: {exc}"
            ) from None
        return context


def _mapping(raw: Any, where: str, path: Path) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigurationError("--web-config", str(path), f"{where} must be a mapping")
    return raw


def load_web_config(path: Path) -> WebConfig:
    """Read an exporter-toolkit style web config (tls_server_config, basic_auth_users)."""
    try:
        raw = _mapping(yaml.safe_load(path.read_text()), "the file", path)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError("--web-config", str(path), f"cannot read it as YAML: {exc}") from None
    unknown = set(raw) - _WEB_CONFIG_KEYS
    if unknown:
        raise ConfigurationError("--web-config", str(path), f"unknown keys {sorted(unknown)}")
    tls = _mapping(raw.get("tls_server_config"), "tls_server_config", path)
    cert, key = tls.get("cert_file"), tls.get("key_file")
    if bool(cert) != bool(key):
        raise ConfigurationError(
            "--web-config", str(path), "tls_server_config needs both cert_file and key_file"
        )
    users: dict[str, bytes] = {}
    for name, hashed in _mapping(raw.get("basic_auth_users"), "basic_auth_users", path).items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise SecretSettingError(
                f"--web-config {path}: basic_auth_users.{name}", "must be a bcrypt hash ($2b$...)"
            )
        users[str(name)] = hashed.encode()
    base = path.parent
    return WebConfig(
        cert_file=None if not cert else base / str(cert),
        key_file=None if not key else base / str(key),
        users=users,
    )


def flag_web_config(
    cert_file: Path | None, key_file: Path | None, user: str | None, password_file: Path | None
) -> WebConfig:
    """The same from flags: the password comes from a file (never the command line) and is hashed here."""
    if bool(cert_file) != bool(key_file):
        raise ConfigurationError(
            "--tls-cert-file", str(cert_file), "give --tls-cert-file with --tls-key-file"
        )
    if bool(user) != bool(password_file):
        raise ConfigurationError(
            "--basic-auth-user", user, "give --basic-auth-user with --basic-auth-password-file"
        )
    users: dict[str, bytes] = {}
    if user and password_file:
        try:
            password = password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigurationError("--basic-auth-password-file", str(password_file), str(exc)) from None
        if not password:
            raise ConfigurationError("--basic-auth-password-file", str(password_file), "the file is empty")
        users[user] = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10))
    return WebConfig(cert_file, key_file, users)


class BasicAuth:
    """Checks Authorization headers against bcrypt hashes; remembers good ones (bcrypt is slow on purpose)."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = users
        self._verified: set[bytes] = set()  # sha256 of user, hash and password: no password is kept
        self._lock = threading.Lock()

    @property
    def required(self) -> bool:
        return bool(self._users)

    def allows(self, header: str | None) -> bool:
        if not self._users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, separator, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self._users.get(user)
        if not separator or hashed is None:
            return False
        key = hashlib.sha256(b"\0".join((user.encode(), hashed, password.encode()))).digest()
        with self._lock:
            if any(hmac.compare_digest(key, known) for known in self._verified):
                return True
        if not bcrypt.checkpw(password.encode(), hashed):
            return False
        with self._lock:
            self._verified.add(key)
        return True


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    server_version = "patroni-citus-metrics"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif not self.server.auth.allows(self.headers.get("Authorization")):
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Basic realm="{REALM}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/metrics":
            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path == "/":
            body = b"patroni-citus metrics exporter: /metrics (the formation, read per scrape), /health\n"
            self._send(200, body, "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found: try /metrics or /health\n", "text/plain; charset=utf-8")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class ExporterServer(ThreadingHTTPServer):
    """A threading HTTP server whose TLS handshakes happen in the request threads, not in accept()."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        web: WebConfig,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.registry = registry
        self.web = web
        self.auth = BasicAuth(web.users)
        self.tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            request.settimeout(10)
            request = self.tls.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("request from %s failed", client_address, exc_info=True)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"{self.web.scheme}://{shown}:{port}"


def make_server(listen: str, registry: CollectorRegistry, web: WebConfig, tls_setting: str) -> ExporterServer:
    """Bind the endpoint (a busy or unbindable --listen is a one-line ConfigurationError)."""
    address = parse_listen(listen)
    tls = web.tls_context(tls_setting)
    try:
        return ExporterServer(address, registry, web, tls)
    except OSError as exc:
        raise ConfigurationError("--listen", listen, f"cannot listen there: {exc.strerror or exc}") from None
