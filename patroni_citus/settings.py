"""Environment -> typed, validated Settings: the one place the environment is read.

Every rule lives here, so a bad value is refused once, with one line naming the variable,
the value and what is allowed, before anything is written.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from patroni_citus.errors import ConfigurationError, PatroniCitusError, SecretSettingError

CitusRole = Literal["coordinator", "worker"]
DcsKind = Literal["etcd3", "zookeeper"]

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?$")
_ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
_SCOPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_LIBRARY_NAME = re.compile(r"^[A-Za-z0-9_.$-]{1,63}$")
_NETWORK_KEYWORDS = frozenset({"samehost", "samenet", "all"})
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_VERIFYING_SSLMODES = frozenset({"verify-ca", "verify-full"})
# A conninfo value that needs no quoting: citus.node_conninfo is read back by splitting on spaces.
_CONNINFO_PATH = re.compile(r"/[^\s'\"\\]*")
_ETCD_USER = re.compile(r"[^\s\x00-\x1f\x7f]{1,255}")
_WILDCARD_HOSTS = frozenset({"*", "0.0.0.0", "::"})  # noqa: S104 - listen wildcards are legitimate input


@dataclass(frozen=True)
class Credentials:
    """A PostgreSQL or REST API login; the password never appears in repr or logs."""

    username: str
    password: str = field(repr=False)


CITUS_DEFAULT_SSLMODE = "require"  # Citus's own citus.node_conninfo default in builds with OpenSSL
DEFAULT_TCP_USER_TIMEOUT_MS = 30000  # as long as Citus's own citus.node_connection_timeout
MAX_TCP_USER_TIMEOUT_MS = 3_600_000
DEFAULT_HOLD_TIMEOUT_S = 15  # under Patroni's smallest ttl (20 s), so a hold ends before a lease would
DEFAULT_POOLER_ADMIN_USER = "pooler_admin"
POOL_MODES = ("transaction", "session")
POOLER_SSLMODES = _SSLMODES


@dataclass(frozen=True)
class CitusSettings:
    """What the callbacks and the template need to know about this member's Citus role."""

    enabled: bool = False
    role: CitusRole = "coordinator"
    group: int = 0
    coordinator_hosts: tuple[str, ...] = ("localhost",)
    coordinator_port: int = 5432
    database: str = "citus"
    max_prepared_transactions: int = 200
    standalone: bool = True
    registration_timeout: int = 60
    hold_timeout: int = DEFAULT_HOLD_TIMEOUT_S  # longest a planned stop of a worker primary holds clients
    secondaries: bool = True  # this member, as a replica, is a Citus secondary of its group
    node_sslmode: str = CITUS_DEFAULT_SSLMODE
    node_tcp_user_timeout: int = DEFAULT_TCP_USER_TIMEOUT_MS  # 0: the kernel's (~15 min of retransmits)
    node_sslrootcert: str | None = None  # the CA the other nodes' certificates are checked against
    poolers: tuple[str, ...] = ()  # host:port of the PgBouncers in front of the coordinator (admin consoles)
    pooler_admin_user: str = DEFAULT_POOLER_ADMIN_USER
    pooler_admin_password_file: str | None = None  # read when used: the password never lands in a tag

    @property
    def node_conninfo(self) -> str:
        """citus.node_conninfo: TLS mode, and how long a vanished peer may leave data unacknowledged.

        Without tcp_user_timeout a connection to a partitioned node hangs in TCP retransmits for
        ~15 minutes; Citus's maintenance daemon waiting on one kept a demoted worker's fast
        shutdown (and so Patroni's demotion) from finishing (seen on Citus 13.2.2).

        >>> CitusSettings().node_conninfo
        'sslmode=require tcp_user_timeout=30000'
        >>> CitusSettings(node_sslmode="verify-full", node_tcp_user_timeout=0).node_conninfo
        'sslmode=verify-full'
        >>> CitusSettings(node_sslmode="verify-full", node_sslrootcert="/etc/ssl/ca.crt").node_conninfo
        'sslmode=verify-full sslrootcert=/etc/ssl/ca.crt tcp_user_timeout=30000'
        """
        keywords = [f"sslmode={self.node_sslmode}"]
        if self.node_sslrootcert is not None:
            keywords.append(f"sslrootcert={self.node_sslrootcert}")
        if self.node_tcp_user_timeout:
            keywords.append(f"tcp_user_timeout={self.node_tcp_user_timeout}")
        return " ".join(keywords)

    @property
    def is_coordinator(self) -> bool:
        return self.role == "coordinator"

    def coordinator_endpoints(self) -> list[tuple[str, int]]:
        """Every coordinator candidate as (host, port), for libpq multi-host connection strings."""
        endpoints = []
        for entry in self.coordinator_hosts:
            host, port = split_host_port(entry)
            endpoints.append((host.strip("[]"), self.coordinator_port if port is None else port))
        return endpoints


@dataclass(frozen=True)
class DcsSettings:
    """Where Patroni's DCS is and how to log in to it."""

    kind: DcsKind = "etcd3"
    hosts: tuple[str, ...] = ("127.0.0.1:2379",)
    protocol: Literal["http", "https"] = "http"  # etcd3 only
    cacert: str | None = None  # etcd3 only: absolute paths
    cert: str | None = None
    key: str | None = None
    auth: Credentials | None = None  # etcd3 RBAC user

    def patroni_section(self) -> dict[str, Any]:
        """Patroni's own config section for this DCS; only keys that are set (protocol only when https).

        >>> DcsSettings(kind="zookeeper", hosts=("zk-1:2181",)).patroni_section()
        {'zookeeper': {'hosts': ['zk-1:2181']}}
        >>> DcsSettings(protocol="https", cacert="/tls/ca.crt").patroni_section()
        {'etcd3': {'hosts': ['127.0.0.1:2379'], 'protocol': 'https', 'cacert': '/tls/ca.crt'}}
        """
        options: dict[str, Any] = {"hosts": list(self.hosts)}
        if self.kind == "zookeeper":
            return {"zookeeper": options}
        if self.protocol == "https":
            options["protocol"] = self.protocol
        files = {"cacert": self.cacert, "cert": self.cert, "key": self.key}
        options |= {name: path for name, path in files.items() if path is not None}
        if self.auth is not None:
            options |= {"username": self.auth.username, "password": self.auth.password}
        return {"etcd3": options}


@dataclass(frozen=True)
class PatroniSettings:
    """The Patroni and PostgreSQL settings the rendered patroni.yml is made from."""

    scope: str
    name: str
    superuser: Credentials
    replication: Credentials
    namespace: str = "/service/"
    dcs: DcsSettings = field(default_factory=DcsSettings)
    restapi_listen: str = "0.0.0.0:8008"
    restapi_connect_address: str = "localhost:8008"
    restapi_auth: Credentials | None = None
    postgres_listen: str = "0.0.0.0:5432"
    postgres_connect_address: str = "localhost:5432"
    data_dir: str = "/var/lib/postgresql/data"
    bin_dir: str | None = None
    pgpass: str = "/tmp/pgpass"  # noqa: S108 - Patroni's own default location
    socket_dir: str = "/var/run/postgresql"
    allowed_networks: tuple[str, ...] = ("samenet",)
    shared_preload_libraries: tuple[str, ...] = ()
    ttl: int = 30
    loop_wait: int = 10
    retry_timeout: int = 10
    synchronous_mode: bool = False
    ssl_cert_file: str | None = None  # with ssl_key_file: PostgreSQL's ssl = on
    ssl_key_file: str | None = None
    ssl_ca_file: str | None = None
    hba_hostssl: bool = False  # PG_ALLOWED_NETWORKS' pg_hba lines are hostssl, not host


@dataclass(frozen=True)
class Settings:
    """Everything the project reads from the environment, validated."""

    citus: CitusSettings
    patroni: PatroniSettings


@dataclass(frozen=True)
class PoolerSettings:
    """A PgBouncer in front of the coordinator group: what `pooler render` writes and `pooler watch` uses."""

    admin: Credentials
    client: Credentials  # the login clients use; PgBouncer forwards it to the coordinator
    config_dir: str = "/etc/pgbouncer-citus"
    listen: str = "0.0.0.0:6432"
    pool_mode: str = "transaction"
    max_client_conn: int = 1000
    pool_size: int = 20
    query_wait_timeout: int = 120
    server_sslmode: str = "prefer"
    server_sslrootcert: str | None = None
    database: str = "citus"
    hold_timeout: int = DEFAULT_HOLD_TIMEOUT_S  # the longest a pause may last before the watcher ends it

    @property
    def admin_address(self) -> tuple[str, int]:
        """Where the watcher reaches its PgBouncer's admin console: the Unix socket in config_dir.

        The watcher shares that directory with PgBouncer anyway (it writes the include file there), so
        the socket is there whatever the listen address, also from a sidecar container.

        >>> PoolerSettings(Credentials("a", "x"), Credentials("b", "y")).admin_address
        ('/etc/pgbouncer-citus', 6432)
        """
        return self.config_dir, int(self.listen.rpartition(":")[2])


_PLACEHOLDER = Credentials("", "")
# Each default is written once, as its dataclass field's default; the loaders read it from these.
_CITUS = CitusSettings()
_DCS = DcsSettings()
_PATRONI = PatroniSettings(scope="", name="", superuser=_PLACEHOLDER, replication=_PLACEHOLDER)
_POOLER = PoolerSettings(admin=_PLACEHOLDER, client=_PLACEHOLDER)


def read_password_file(setting: str, path: str) -> str:
    """The one-line password in the file a *_PASSWORD_FILE setting names; empty or blank is refused."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigurationError(setting, path, f"the file cannot be read ({reason})") from None
    password = text.rstrip("\r\n")
    if not password.strip():
        raise ConfigurationError(setting, path, "the file is empty or blank; put the password in it")
    if "\n" in password or "\x00" in password:
        raise ConfigurationError(setting, path, "the file must hold the password on a single line")
    return password


class ValueRefusal(ConfigurationError):
    """A variable's own value is malformed (whatever else is set): always worth reporting beside others."""


class SecretValueRefusal(SecretSettingError, ValueRefusal):
    """A malformed secret: reported beside other errors, its value never shown."""


def parse_bool(setting: str, value: str) -> bool:
    """Read a boolean the way operators write them (true/false/1/0/yes/no/on/off)."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueRefusal(setting, value, "use true/false, 1/0, yes/no or on/off")


def parse_int(setting: str, value: str, minimum: int, maximum: int) -> int:
    """Read an integer within [minimum, maximum]."""
    if not re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        raise ValueRefusal(setting, value, f"use an integer from {minimum} to {maximum}")
    number = int(value.strip(), 10)
    if not minimum <= number <= maximum:
        raise ValueRefusal(setting, value, f"use an integer from {minimum} to {maximum}")
    return number


def is_valid_host(host: str) -> bool:
    """A DNS name, an IPv4 address or an IPv6 address (bare or in brackets); nothing else.

    >>> [is_valid_host(h) for h in ("db-1.example", "10.0.0.1", "[::1]", "a'b", "x;drop")]
    [True, True, True, False, False]
    """
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(candidate)
        return True
    except ValueError:
        numeric_tld = host.rstrip(".").rpartition(".")[2].isdigit()  # e.g. 10.0.0.256: a typo, not a name
        return bool(_HOSTNAME.fullmatch(host)) and not numeric_tld


def split_host_port(entry: str) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address; the port may be absent.

    >>> split_host_port("coord-1:6432"), split_host_port("[::1]:5432"), split_host_port("::1")
    (('coord-1', 6432), ('[::1]', 5432), ('::1', None))
    """
    if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):
        host, _, port = entry.rpartition(":")
        return host, int(port) if port.isascii() and port.isdigit() else -1
    return entry, None


def parse_host_list(setting: str, value: str) -> tuple[str, ...]:
    """A comma-separated list of ``host`` or ``host:port``, e.g. the coordinator group's members."""
    allowed = "use comma-separated host names or IP addresses, each optionally :port (e.g. c1,c2:6432)"
    hosts = tuple(part.strip() for part in value.split(","))
    for entry in hosts:
        host, port = split_host_port(entry)
        if not is_valid_host(host) or (port is not None and not 1 <= port <= 65535):
            raise ValueRefusal(setting, value, allowed)
    return hosts


def parse_address(setting: str, value: str, *, allow_wildcard: bool) -> str:
    """A ``host:port`` address; listen addresses may also use a wildcard host."""
    allowed = "use host:port with a host name or IP address and a port from 1 to 65535"
    host, sep, port = value.strip().rpartition(":")
    wildcard_ok = allow_wildcard and host in _WILDCARD_HOSTS
    if not sep or not (wildcard_ok or is_valid_host(host)):
        raise ValueRefusal(setting, value, allowed)
    if not allow_wildcard and host.strip("[]") in _WILDCARD_HOSTS:
        raise ValueRefusal(
            setting, value, "use a host name or IP address other members can reach, not a wildcard"
        )
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ValueRefusal(setting, value, allowed)
    return f"{host}:{int(port)}"


def parse_address_list(setting: str, value: str, example: str = "etcd-1:2379") -> tuple[str, ...]:
    """A comma-separated list of ``host:port`` addresses (e.g. etcd or ZooKeeper endpoints)."""
    allowed = f"use a comma-separated list of host:port (e.g. {example})"
    if not value.strip():
        raise ValueRefusal(setting, value, allowed)
    addresses = []
    for part in value.split(","):
        try:
            addresses.append(parse_address(setting, part, allow_wildcard=False))
        except ConfigurationError:
            # Show the whole value, as every other setting does, and point at the bad entry in it.
            entry = (
                f"entry {part.strip()!r} is not a host name or IP address (not a wildcard) "
                "with a port from 1 to 65535"
            )
            raise ValueRefusal(setting, value, f"{entry}; {allowed}") from None
    return tuple(addresses)


def parse_networks(setting: str, value: str) -> tuple[str, ...]:
    """pg_hba address entries: CIDR networks or the keywords samehost/samenet/all."""
    allowed = "use a comma-separated list of CIDR networks (e.g. 10.0.0.0/8) or samehost/samenet/all"
    networks: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if part in _NETWORK_KEYWORDS:
            networks.append(part)
            continue
        try:
            networks.append(str(ipaddress.ip_network(part, strict=True)))
        except ValueError:
            raise ValueRefusal(setting, value, allowed) from None
    return tuple(networks)


def parse_libraries(setting: str, value: str) -> tuple[str, ...]:
    """shared_preload_libraries as a list, in order, without blanks or duplicates."""
    libraries: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if not _LIBRARY_NAME.match(part):
            raise ValueRefusal(
                setting, value, "use a comma-separated list of library names (letters, digits, _ . $ -)"
            )
        if part not in libraries:
            libraries.append(part)
    return tuple(libraries)


def _matching(setting: str, value: str, pattern: re.Pattern[str], allowed: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueRefusal(setting, value, allowed)
    return value


def _absolute_path(setting: str, value: str) -> str:
    if not value.startswith("/") or "\n" in value:
        raise ValueRefusal(setting, value, "use an absolute path")
    return value


class _Environment:
    """Typed access to one environment mapping; raises ConfigurationError.

    It records every name it reads (``consumed``): the entrypoint keeps exactly those out of
    Patroni's environment, where Patroni would otherwise apply them again on top of the file.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.consumed: set[str] = set()

    def raw(self, name: str) -> str | None:
        self.consumed.add(name)
        return self.peek(name)

    def peek(self, name: str) -> str | None:
        """Look at a variable without consuming it: it is Patroni's, and stays in Patroni's environment."""
        value = self._environ.get(name)
        return None if value is None or value.strip() == "" else value

    def names_with_prefix(self, prefix: str) -> list[str]:
        return sorted(name for name in self._environ if name.startswith(prefix))

    def path(self, name: str) -> str | None:
        value = self.raw(name)
        return None if value is None else _absolute_path(name, value.strip())

    def text(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value.strip()

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        return default if value is None else parse_bool(name, value)

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        value = self.raw(name)
        return default if value is None else parse_int(name, value, minimum, maximum)

    def secret(self, name: str, *, required: bool) -> str | None:
        """A password given as NAME or as a file path in NAME_FILE (Docker secrets style)."""
        direct, file_setting = self.raw(name), f"{name}_FILE"
        path = self.raw(file_setting)
        if direct is not None and path is not None:
            raise SecretSettingError(name, f"set either {name} or {file_setting}, not both")
        if path is not None:
            try:
                direct = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
                raise ValueRefusal(file_setting, path, f"the file cannot be read ({reason})") from None
            if not direct.strip():  # a password of only white space is a mistake, not a password
                blank = "the file is empty or blank; put the password in it"
                raise ValueRefusal(file_setting, path, blank)
        if direct is None:
            if required:
                raise ConfigurationError(name, None, f"required; set {name} or {file_setting}")
            return None
        if "\n" in direct or "\x00" in direct:
            raise SecretValueRefusal(name, "a password must be a single line")
        return direct

    def credentials(self, prefix: str, default_user: str, *, required: bool) -> Credentials | None:
        username = _matching(
            f"{prefix}_USERNAME",
            self.text(f"{prefix}_USERNAME", default_user),
            _ROLE_NAME,
            "use a role name of letters, digits and _ (at most 63)",
        )
        password = self.secret(f"{prefix}_PASSWORD", required=required)
        return None if password is None else Credentials(username, password)


def _is_loopback(entry: str) -> bool:
    """A coordinator address that can only mean this very machine (the single-node default)."""
    host = split_host_port(entry)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_citus_settings(environ: Mapping[str, str], *, pg_ssl_ca_file: str | None = None) -> CitusSettings:
    """Read and check every CITUS_* variable (also when Citus is disabled: a typo is still a typo).

    *pg_ssl_ca_file* is the server's own CA file (PG_SSL_CA_FILE, which load_settings passes): the
    root certificate of verify-ca/verify-full when CITUS_NODE_SSLROOTCERT is unset. Without it only
    CITUS_* values are needed, as for the settings member_config reads back from a patroni.yml.
    """
    return _load_citus(_Environment(environ), pg_ssl_ca_file)


def _citus_role_and_group(env: _Environment) -> tuple[CitusRole, int]:
    role_value = env.text("CITUS_ROLE", _CITUS.role).lower()
    if role_value not in ("coordinator", "worker"):
        raise ConfigurationError("CITUS_ROLE", env.raw("CITUS_ROLE"), "use coordinator or worker")
    raw_group = env.raw("CITUS_GROUP")
    if role_value == "coordinator":
        if raw_group is not None and raw_group.strip() != "0":
            raise ConfigurationError("CITUS_GROUP", raw_group, "must be 0 for CITUS_ROLE=coordinator")
        return "coordinator", 0
    if raw_group is None:
        raise ConfigurationError("CITUS_GROUP", None, "required for CITUS_ROLE=worker; use an integer >= 1")
    return "worker", env.integer("CITUS_GROUP", 0, 1, 2**31 - 1)


def _coordinator_hosts(env: _Environment, *, required: bool) -> tuple[str, ...]:
    hosts_value = env.raw("CITUS_COORDINATOR_HOST")
    if hosts_value is not None:
        return parse_host_list("CITUS_COORDINATOR_HOST", hosts_value)
    if required:
        # localhost would only ever find a coordinator on the worker's own machine: never the right one.
        raise ConfigurationError(
            "CITUS_COORDINATOR_HOST",
            None,
            "required for CITUS_ROLE=worker: list the coordinator group's members (e.g. coord-1,coord-2)",
        )
    return _CITUS.coordinator_hosts


def _node_sslrootcert(env: _Environment, sslmode: str, pg_ssl_ca_file: str | None) -> str | None:
    """CITUS_NODE_SSLROOTCERT; else, for the modes that check certificates, the server's own CA file."""
    allowed = "use an absolute path without spaces, quotes or backslashes (it goes into citus.node_conninfo)"
    own = env.path("CITUS_NODE_SSLROOTCERT")
    if own is not None:
        return _matching("CITUS_NODE_SSLROOTCERT", own, _CONNINFO_PATH, allowed)
    if sslmode not in _VERIFYING_SSLMODES:
        return None
    if pg_ssl_ca_file is None:
        raise ConfigurationError(
            "CITUS_NODE_SSLMODE",
            env.raw("CITUS_NODE_SSLMODE"),
            f"{sslmode} checks the other nodes' certificates against a CA; "
            "set CITUS_NODE_SSLROOTCERT (or PG_SSL_CA_FILE) to the CA's certificate",
        )
    return _matching(
        "PG_SSL_CA_FILE",
        pg_ssl_ca_file,
        _CONNINFO_PATH,
        f"it is the root certificate of CITUS_NODE_SSLMODE={sslmode}: {allowed}, "
        "or set CITUS_NODE_SSLROOTCERT",
    )


def _load_citus(env: _Environment, pg_ssl_ca_file: str | None) -> CitusSettings:
    enabled = env.boolean("CITUS_ENABLE", _CITUS.enabled)
    role, group = _citus_role_and_group(env)
    coordinator_hosts = _coordinator_hosts(env, required=enabled and role == "worker")
    database = _matching(
        "CITUS_DATABASE",
        env.text("CITUS_DATABASE", _CITUS.database),
        _DATABASE_NAME,
        "use a database name of letters, digits, _ and - starting with a letter or _ (at most 63)",
    )
    sslmode_value = env.raw("CITUS_NODE_SSLMODE")
    sslmode = _CITUS.node_sslmode if sslmode_value is None else sslmode_value.strip().lower()
    if sslmode not in _SSLMODES:
        raise ConfigurationError("CITUS_NODE_SSLMODE", sslmode_value, f"use one of {', '.join(_SSLMODES)}")
    # Only looked at, never consumed: without CITUS_ENABLE they are Patroni's, for its built-in mode.
    builtin_mode = [name for name in ("PATRONI_CITUS_GROUP", "PATRONI_CITUS_DATABASE") if env.peek(name)]
    if enabled and builtin_mode:
        refusal = ConfigurationError(
            builtin_mode[0],
            env.peek(builtin_mode[0]),
            "enables Patroni's built-in Citus mode, which must not be combined with CITUS_ENABLE; unset one",
        )
        refusal.related = tuple(builtin_mode)  # one conflict, however many of them are set
        raise refusal
    return CitusSettings(
        enabled=enabled,
        role=role,
        group=group,
        coordinator_hosts=coordinator_hosts,
        coordinator_port=env.integer("CITUS_COORDINATOR_PORT", _CITUS.coordinator_port, 1, 65535),
        database=database,
        max_prepared_transactions=env.integer(
            "CITUS_MAX_PREPARED_TRANSACTIONS", _CITUS.max_prepared_transactions, 1, 262143
        ),
        standalone=env.boolean("CITUS_STANDALONE", all(_is_loopback(host) for host in coordinator_hosts)),
        registration_timeout=env.integer("CITUS_REGISTRATION_TIMEOUT", _CITUS.registration_timeout, 1, 3600),
        hold_timeout=env.integer("CITUS_HOLD_TIMEOUT", _CITUS.hold_timeout, 1, 3600),
        secondaries=env.boolean("CITUS_SECONDARIES", _CITUS.secondaries),
        node_sslmode=sslmode,
        node_tcp_user_timeout=env.integer(
            "CITUS_NODE_TCP_USER_TIMEOUT", _CITUS.node_tcp_user_timeout, 0, MAX_TCP_USER_TIMEOUT_MS
        ),
        node_sslrootcert=_node_sslrootcert(env, sslmode, pg_ssl_ca_file),
        **_pooler_tags(env),
    )


def _admin_user(env: _Environment) -> str:
    return _matching(
        "CITUS_POOLER_ADMIN_USER",
        env.text("CITUS_POOLER_ADMIN_USER", _CITUS.pooler_admin_user),
        _ROLE_NAME,
        "use a user name of letters, digits and _ (at most 63)",
    )


def _pooler_tags(env: _Environment) -> dict[str, Any]:
    """CITUS_POOLERS and the admin login that goes with it: what a coordinator's before_stop pauses."""
    listed = env.raw("CITUS_POOLERS")
    poolers = (
        _CITUS.poolers if listed is None else parse_address_list("CITUS_POOLERS", listed, "pgbouncer-1:6432")
    )
    user = _admin_user(env)
    password_file = env.path("CITUS_POOLER_ADMIN_PASSWORD_FILE")
    if poolers and password_file is None:
        raise ConfigurationError(
            "CITUS_POOLER_ADMIN_PASSWORD_FILE",
            None,
            "required with CITUS_POOLERS: the poolers' admin password",
        )
    # Its content is checked when rendering (load_settings), not when a callback reads the tags back:
    # a pooler's password file gone missing must not stop a member's Citus registration.
    return {"poolers": poolers, "pooler_admin_user": user, "pooler_admin_password_file": password_file}


def load_pooler_settings(environ: Mapping[str, str]) -> PoolerSettings:
    """Read and check a pooler host's CITUS_POOLER_* variables (and CITUS_DATABASE, CITUS_HOLD_TIMEOUT)."""
    env = _Environment(environ)
    passwords = {}
    for name in ("CITUS_POOLER_ADMIN_PASSWORD_FILE", "CITUS_POOLER_CLIENT_PASSWORD_FILE"):
        path = env.path(name)
        if path is None:
            raise ConfigurationError(name, None, "required; name a file holding the password on one line")
        passwords[name] = read_password_file(name, path)
    admin_user = _admin_user(env)
    client_user = _matching(
        "CITUS_POOLER_CLIENT_USER",
        env.text("CITUS_POOLER_CLIENT_USER", "postgres"),
        _ROLE_NAME,
        "use a role name of letters, digits and _ (at most 63)",
    )
    if client_user == admin_user:
        raise ConfigurationError(
            "CITUS_POOLER_CLIENT_USER", client_user, "must differ from CITUS_POOLER_ADMIN_USER"
        )
    pool_mode = env.text("CITUS_POOLER_POOL_MODE", _POOLER.pool_mode).lower()
    if pool_mode not in POOL_MODES:
        raise ConfigurationError(
            "CITUS_POOLER_POOL_MODE", env.raw("CITUS_POOLER_POOL_MODE"), f"use one of {', '.join(POOL_MODES)}"
        )
    sslmode = env.text("CITUS_POOLER_SERVER_SSLMODE", _POOLER.server_sslmode).lower()
    if sslmode not in POOLER_SSLMODES:
        raise ConfigurationError(
            "CITUS_POOLER_SERVER_SSLMODE",
            env.raw("CITUS_POOLER_SERVER_SSLMODE"),
            f"use one of {', '.join(POOLER_SSLMODES)}",
        )
    rootcert = env.path("CITUS_POOLER_SERVER_SSLROOTCERT")
    if sslmode in _VERIFYING_SSLMODES and rootcert is None:
        raise ConfigurationError(
            "CITUS_POOLER_SERVER_SSLROOTCERT",
            None,
            f"required with CITUS_POOLER_SERVER_SSLMODE={sslmode}: the CA of the coordinators' certificates",
        )
    hold_timeout = env.integer("CITUS_HOLD_TIMEOUT", _POOLER.hold_timeout, 1, 3600)
    query_wait = env.integer("CITUS_POOLER_QUERY_WAIT_TIMEOUT", _POOLER.query_wait_timeout, 1, 86400)
    if query_wait <= hold_timeout:
        raise ConfigurationError(
            "CITUS_POOLER_QUERY_WAIT_TIMEOUT",
            str(query_wait),
            f"must be more than CITUS_HOLD_TIMEOUT ({hold_timeout}): PgBouncer would drop clients mid-pause",
        )
    config_dir = env.path("CITUS_POOLER_CONFIG_DIR") or _POOLER.config_dir
    if not re.fullmatch(r"/[A-Za-z0-9_./-]*", config_dir):
        raise ConfigurationError(
            "CITUS_POOLER_CONFIG_DIR", config_dir, "use an absolute path of letters, digits, _ . / -"
        )
    database = _matching(
        "CITUS_DATABASE",
        env.text("CITUS_DATABASE", _POOLER.database),
        _DATABASE_NAME,
        "use a database name of letters, digits, _ and - starting with a letter or _ (at most 63)",
    )
    return PoolerSettings(
        admin=Credentials(admin_user, passwords["CITUS_POOLER_ADMIN_PASSWORD_FILE"]),
        client=Credentials(client_user, passwords["CITUS_POOLER_CLIENT_PASSWORD_FILE"]),
        config_dir=config_dir.rstrip("/") or "/",
        listen=parse_address(
            "CITUS_POOLER_LISTEN", env.text("CITUS_POOLER_LISTEN", _POOLER.listen), allow_wildcard=True
        ),
        pool_mode=pool_mode,
        max_client_conn=env.integer("CITUS_POOLER_MAX_CLIENT_CONN", _POOLER.max_client_conn, 1, 100000),
        pool_size=env.integer("CITUS_POOLER_POOL_SIZE", _POOLER.pool_size, 1, 10000),
        query_wait_timeout=query_wait,
        server_sslmode=sslmode,
        server_sslrootcert=rootcert,
        database=database,
        hold_timeout=hold_timeout,
    )


def _both_or_neither(first: tuple[str, str | None], second: tuple[str, str | None], why: str) -> None:
    """Refuse one of a pair set without the other, naming the missing one."""
    (first_name, first_value), (second_name, second_value) = first, second
    if (first_value is None) != (second_value is None):
        present, missing = (first_name, second_name) if second_value is None else (second_name, first_name)
        raise ConfigurationError(missing, None, f"required with {present}: {why}")


def load_dcs_settings(environ: Mapping[str, str]) -> DcsSettings:
    """Read and check the DCS variables (Patroni's own names): etcd3 unless PATRONI_ZOOKEEPER_HOSTS is set."""
    return _load_dcs(_Environment(environ))


def _load_dcs(env: _Environment) -> DcsSettings:
    zookeeper_hosts = env.raw("PATRONI_ZOOKEEPER_HOSTS")
    if zookeeper_hosts is not None:
        return _load_zookeeper(env, zookeeper_hosts)
    # Read (so consumed) even when blank: Patroni would make a second DCS section of any of them.
    for name in env.names_with_prefix("PATRONI_ZOOKEEPER_"):
        if env.raw(name) is not None:
            raise ConfigurationError(
                "PATRONI_ZOOKEEPER_HOSTS",
                None,
                f"required when {name} is set; set it to use ZooKeeper, or unset {name} to use etcd3",
            )
    return _load_etcd3(env)


def _load_zookeeper(env: _Environment, hosts: str) -> DcsSettings:
    for name in env.names_with_prefix("PATRONI_ETCD3_"):
        if env.raw(name) is not None:
            raise ConfigurationError(
                "PATRONI_ZOOKEEPER_HOSTS",
                hosts,
                f"set one DCS: {name} is set too; "
                "unset PATRONI_ZOOKEEPER_HOSTS or every PATRONI_ETCD3_* variable",
            )
    return DcsSettings(
        kind="zookeeper", hosts=parse_address_list("PATRONI_ZOOKEEPER_HOSTS", hosts, "zk-1:2181")
    )


def _load_etcd3(env: _Environment) -> DcsSettings:
    hosts = parse_address_list("PATRONI_ETCD3_HOSTS", env.text("PATRONI_ETCD3_HOSTS", ",".join(_DCS.hosts)))
    protocol_value = env.text("PATRONI_ETCD3_PROTOCOL", _DCS.protocol).lower()
    if protocol_value not in ("http", "https"):
        raise ConfigurationError(
            "PATRONI_ETCD3_PROTOCOL", env.raw("PATRONI_ETCD3_PROTOCOL"), "use http or https"
        )
    files = {
        name: env.path(name) for name in ("PATRONI_ETCD3_CACERT", "PATRONI_ETCD3_CERT", "PATRONI_ETCD3_KEY")
    }
    cacert, cert, key = files.values()
    _both_or_neither(
        ("PATRONI_ETCD3_CERT", cert),
        ("PATRONI_ETCD3_KEY", key),
        "a client certificate and its key go together",
    )
    if protocol_value == "http":
        for name, path in files.items():
            if path is not None:
                raise ConfigurationError(
                    name, path, "set PATRONI_ETCD3_PROTOCOL=https to use TLS with etcd (the protocol is http)"
                )
    return DcsSettings(
        kind="etcd3",
        hosts=hosts,
        protocol="https" if protocol_value == "https" else "http",
        cacert=cacert,
        cert=cert,
        key=key,
        auth=_etcd3_auth(env),
    )


def _etcd3_auth(env: _Environment) -> Credentials | None:
    """An etcd RBAC user: PATRONI_ETCD3_USERNAME with PATRONI_ETCD3_PASSWORD (or _FILE), or neither."""
    username = env.raw("PATRONI_ETCD3_USERNAME")
    password = env.secret("PATRONI_ETCD3_PASSWORD", required=username is not None)
    if username is None:
        if password is not None:
            raise ConfigurationError(
                "PATRONI_ETCD3_USERNAME",
                None,
                "required with PATRONI_ETCD3_PASSWORD or PATRONI_ETCD3_PASSWORD_FILE: name the etcd user",
            )
        return None
    name = _matching(
        "PATRONI_ETCD3_USERNAME",
        username.strip(),
        _ETCD_USER,
        "use a user name without spaces or control characters (at most 255)",
    )
    assert password is not None  # required=True never returns None
    return Credentials(name, password)


@dataclass(frozen=True)
class _ServerTls:
    """PostgreSQL's own TLS: read before the Citus settings, whose root certificate may default to it."""

    cert_file: str | None
    key_file: str | None
    ca_file: str | None
    hba_hostssl: bool


def _server_tls(env: _Environment) -> _ServerTls:
    cert, key, ca = env.path("PG_SSL_CERT_FILE"), env.path("PG_SSL_KEY_FILE"), env.path("PG_SSL_CA_FILE")
    _both_or_neither(
        ("PG_SSL_CERT_FILE", cert),
        ("PG_SSL_KEY_FILE", key),
        "the server's certificate and its key go together",
    )
    needs_certificate = "needs PG_SSL_CERT_FILE and PG_SSL_KEY_FILE"
    if ca is not None and cert is None:
        raise ConfigurationError(
            "PG_SSL_CA_FILE", ca, f"{needs_certificate}: PostgreSQL uses it only with ssl on"
        )
    hostssl = env.boolean("PG_HBA_HOSTSSL", _PATRONI.hba_hostssl)
    if hostssl and cert is None:
        raise ConfigurationError(
            "PG_HBA_HOSTSSL",
            env.raw("PG_HBA_HOSTSSL"),
            f"{needs_certificate}: hostssl lines admit only TLS connections, "
            "and TLS needs the server's certificate",
        )
    return _ServerTls(cert_file=cert, key_file=key, ca_file=ca, hba_hostssl=hostssl)


def _default_connect_address(listen: str, hostname: str) -> str:
    """Advertise the listen host when it is specific, else this machine's host name."""
    host, _, port = listen.rpartition(":")
    return f"{hostname if host.strip('[]') in _WILDCARD_HOSTS else host.split(',')[0]}:{port}"


def load_patroni_settings(environ: Mapping[str, str]) -> PatroniSettings:
    """Read and check the PATRONI_* and PG_* variables the template needs."""
    env = _Environment(environ)
    return _load_patroni(env, _server_tls(env))


def _load_patroni(env: _Environment, tls: _ServerTls) -> PatroniSettings:
    hostname = socket.gethostname()
    scope_value = env.raw("PATRONI_SCOPE")
    if scope_value is None:
        raise ConfigurationError("PATRONI_SCOPE", None, "required; name the Patroni cluster (e.g. demo-0)")
    scope = _matching(
        "PATRONI_SCOPE", scope_value.strip(), _SCOPE_NAME, "use letters, digits, _ . - (at most 63)"
    )
    name = _matching(
        "PATRONI_NAME",
        env.text("PATRONI_NAME", hostname),
        _SCOPE_NAME,
        "use letters, digits, _ . - (at most 63)",
    )
    namespace = env.text("PATRONI_NAMESPACE", _PATRONI.namespace)
    if not re.fullmatch(r"/[A-Za-z0-9_./-]*", namespace):
        raise ConfigurationError("PATRONI_NAMESPACE", namespace, "use a path like /service/")
    restapi_listen = parse_address(
        "PATRONI_RESTAPI_LISTEN",
        env.text("PATRONI_RESTAPI_LISTEN", _PATRONI.restapi_listen),
        allow_wildcard=True,
    )
    postgres_listen = parse_address(
        "PATRONI_POSTGRESQL_LISTEN",
        env.text("PATRONI_POSTGRESQL_LISTEN", _PATRONI.postgres_listen),
        allow_wildcard=True,
    )
    superuser = env.credentials("PATRONI_SUPERUSER", "postgres", required=True)
    replication = env.credentials("PATRONI_REPLICATION", "replicator", required=True)
    assert superuser is not None and replication is not None  # required=True never returns None
    if superuser.username == replication.username:
        raise ConfigurationError(
            "PATRONI_REPLICATION_USERNAME",
            replication.username,
            "must differ from PATRONI_SUPERUSER_USERNAME",
        )
    bin_dir = env.raw("PATRONI_POSTGRESQL_BIN_DIR")
    ttl = env.integer("PATRONI_TTL", _PATRONI.ttl, 20, 3600)
    loop_wait = env.integer("PATRONI_LOOP_WAIT", _PATRONI.loop_wait, 1, 3600)
    retry_timeout = env.integer("PATRONI_RETRY_TIMEOUT", _PATRONI.retry_timeout, 3, 3600)
    if loop_wait + 2 * retry_timeout > ttl:
        raise ConfigurationError(
            "PATRONI_TTL",
            str(ttl),
            f"must be >= PATRONI_LOOP_WAIT + 2 * PATRONI_RETRY_TIMEOUT ({loop_wait + 2 * retry_timeout})",
        )
    return PatroniSettings(
        scope=scope,
        name=name,
        superuser=superuser,
        replication=replication,
        namespace=namespace,
        dcs=_load_dcs(env),
        restapi_listen=restapi_listen,
        restapi_connect_address=parse_address(
            "PATRONI_RESTAPI_CONNECT_ADDRESS",
            env.text("PATRONI_RESTAPI_CONNECT_ADDRESS", _default_connect_address(restapi_listen, hostname)),
            allow_wildcard=False,
        ),
        restapi_auth=env.credentials("PATRONI_RESTAPI", "patroni", required=False),
        postgres_listen=postgres_listen,
        postgres_connect_address=parse_address(
            "PATRONI_POSTGRESQL_CONNECT_ADDRESS",
            env.text(
                "PATRONI_POSTGRESQL_CONNECT_ADDRESS", _default_connect_address(postgres_listen, hostname)
            ),
            allow_wildcard=False,
        ),
        data_dir=_absolute_path(
            "PATRONI_POSTGRESQL_DATA_DIR", env.text("PATRONI_POSTGRESQL_DATA_DIR", _PATRONI.data_dir)
        ),
        bin_dir=None if bin_dir is None else _absolute_path("PATRONI_POSTGRESQL_BIN_DIR", bin_dir.strip()),
        pgpass=_absolute_path(
            "PATRONI_POSTGRESQL_PGPASS",
            env.text("PATRONI_POSTGRESQL_PGPASS", _PATRONI.pgpass),
        ),
        socket_dir=_absolute_path("PG_SOCKET_DIR", env.text("PG_SOCKET_DIR", _PATRONI.socket_dir)),
        allowed_networks=parse_networks(
            "PG_ALLOWED_NETWORKS", env.text("PG_ALLOWED_NETWORKS", ",".join(_PATRONI.allowed_networks))
        ),
        shared_preload_libraries=parse_libraries(
            "PG_SHARED_PRELOAD_LIBRARIES",
            env.text("PG_SHARED_PRELOAD_LIBRARIES", ",".join(_PATRONI.shared_preload_libraries)),
        ),
        ttl=ttl,
        loop_wait=loop_wait,
        retry_timeout=retry_timeout,
        synchronous_mode=env.boolean("PATRONI_SYNCHRONOUS_MODE", _PATRONI.synchronous_mode),
        ssl_cert_file=tls.cert_file,
        ssl_key_file=tls.key_file,
        ssl_ca_file=tls.ca_file,
        hba_hostssl=tls.hba_hostssl,
    )


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Validate the whole environment; raises ConfigurationError on the first bad value."""
    return load_settings_with_consumed(environ)[0]


MAX_REPORTED_ERRORS = 20


def load_settings_with_consumed(environ: Mapping[str, str]) -> tuple[Settings, frozenset[str]]:
    """The settings, and the name of every variable they were read from (NAME_FILE variants included).

    Variables only looked at (PATRONI_CITUS_GROUP, PATRONI_CITUS_DATABASE) are not among them.
    Every malformed variable is reported at once (SettingsErrors, one line each): after each
    refusal the offending variable is set aside and the rest checked again. Of conflicts between
    variables only the first is reported (a later one may only follow from setting one aside). A
    CITUS_ variable that looks like a misspelt known one is refused too (see typo_findings).
    """
    found: list[ConfigurationError] = []
    set_aside: set[str] = set()
    remaining = dict(environ)
    while True:
        try:
            settings, consumed = _load_all(remaining)
            break
        except ConfigurationError as exc:
            names = {_base_name(name) for name in (exc.setting, *exc.related)}
            if names <= set_aside or len(set_aside) >= MAX_REPORTED_ERRORS:
                break  # setting it aside did not help: a different refusal of the same variable
            # After the first refusal only malformed values count: a conflict found once another
            # variable was set aside may be nothing but a consequence of setting it aside.
            if not found or isinstance(exc, ValueRefusal):
                found.append(exc)
            set_aside |= names
            for name in names:
                remaining.pop(name, None)
                remaining.pop(f"{name}_FILE", None)
    typos = [error for error, _warning in typo_findings(environ) if error is not None]
    errors = found + [t for t in typos if all(seen.setting != t.setting for seen in found)]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SettingsErrors(errors)
    return settings, consumed


def _base_name(setting: str) -> str:
    """NAME for NAME_FILE: a password and its file are one setting."""
    return setting.removesuffix("_FILE")


class MisspeltSettingError(ConfigurationError):
    """A CITUS_ variable that patroni-citus does not read but that is one letter or so from one it does."""

    def __init__(self, setting: str, probable: str) -> None:
        PatroniCitusError.__init__(
            self, f"{setting} is not a patroni-citus setting; did you mean {probable}?"
        )
        self.setting = setting


class SettingsErrors(ConfigurationError):
    """More than one invalid variable: each on its own line, values hidden as each error hides them."""

    def __init__(self, errors: list[ConfigurationError]) -> None:
        PatroniCitusError.__init__(self, "\n".join(str(error) for error in errors))
        self.errors = errors
        self.setting = errors[0].setting


#: Prefixes whose variables patroni-citus reads; a close miss of a known name is a likely typo.
_TYPO_CUTOFF = 0.85


def typo_findings(environ: Mapping[str, str]) -> list[tuple[ConfigurationError | None, str | None]]:
    """Variables that look like misspellings of ones patroni-citus reads: (error, warning) pairs.

    A CITUS_ name close to a known one is an error (nothing else reads CITUS_ variables: its intent
    is clear); a PATRONI_ name close to a known one is only a warning, because Patroni itself reads
    PATRONI_ variables this project does not (PATRONI_ETCD3_HOST is Patroni's, and would bypass the
    rendered PATRONI_ETCD3_HOSTS).
    """
    known = _known_names()
    findings: list[tuple[ConfigurationError | None, str | None]] = []
    for name in sorted(environ):
        if name in known or not name.startswith(("CITUS_", "PATRONI_")) or name.startswith("PATRONI_CITUS_"):
            continue
        close = difflib.get_close_matches(name, [k for k in known if k[:6] == name[:6]], 1, _TYPO_CUTOFF)
        if not close:
            continue
        if name.startswith("CITUS_"):
            findings.append((MisspeltSettingError(name, close[0]), None))
        else:
            warning = f"{name} is not read by patroni-citus (Patroni may read it); did you mean {close[0]}?"
            findings.append((None, warning))
    return findings


@cache
def _known_names() -> frozenset[str]:
    """Every variable name this module reads, and its NAME_FILE variant for passwords."""
    source = Path(__file__).read_text(encoding="utf-8")
    names = set(re.findall(r'"((?:CITUS|PATRONI|PG)_[A-Z0-9_]*[A-Z0-9])"', source))
    return frozenset(names | {f"{name}_FILE" for name in names if name.endswith("_PASSWORD")})


def _load_all(environ: Mapping[str, str]) -> tuple[Settings, frozenset[str]]:
    env = _Environment(environ)
    tls = _server_tls(env)
    citus = _load_citus(env, tls.ca_file)
    settings = Settings(citus=citus, patroni=_load_patroni(env, tls))
    if citus.pooler_admin_password_file is not None:
        read_password_file("CITUS_POOLER_ADMIN_PASSWORD_FILE", citus.pooler_admin_password_file)
    if citus.hold_timeout >= settings.patroni.ttl:
        raise ConfigurationError(
            "CITUS_HOLD_TIMEOUT",
            str(citus.hold_timeout),
            f"must be less than PATRONI_TTL ({settings.patroni.ttl}): a hold ends before a leader's lease",
        )
    return settings, frozenset(env.consumed)
