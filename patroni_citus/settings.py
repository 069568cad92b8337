"""Environment -> typed, validated Settings: the one place the environment is read.

Every rule lives here, so a bad value is refused once, with one line naming the variable,
the value and what is allowed, before anything is written.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from patroni_citus.errors import ConfigurationError, SecretSettingError

CitusRole = Literal["coordinator", "worker"]

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
_WILDCARD_HOSTS = frozenset({"*", "0.0.0.0", "::"})  # noqa: S104 - listen wildcards are legitimate input


@dataclass(frozen=True)
class Credentials:
    """A PostgreSQL or REST API login; the password never appears in repr or logs."""

    username: str
    password: str = field(repr=False)


CITUS_DEFAULT_SSLMODE = "require"  # Citus's own citus.node_conninfo default in builds with OpenSSL
DEFAULT_TCP_USER_TIMEOUT_MS = 30000  # as long as Citus's own citus.node_connection_timeout
MAX_TCP_USER_TIMEOUT_MS = 3_600_000


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
    node_sslmode: str = CITUS_DEFAULT_SSLMODE
    node_tcp_user_timeout: int = DEFAULT_TCP_USER_TIMEOUT_MS  # 0: the kernel's (~15 min of retransmits)

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
        """
        timeout = f" tcp_user_timeout={self.node_tcp_user_timeout}" if self.node_tcp_user_timeout else ""
        return f"sslmode={self.node_sslmode}{timeout}"

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
class PatroniSettings:
    """The Patroni and PostgreSQL settings the rendered patroni.yml is made from."""

    scope: str
    name: str
    superuser: Credentials
    replication: Credentials
    namespace: str = "/service/"
    etcd_hosts: tuple[str, ...] = ("127.0.0.1:2379",)
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


@dataclass(frozen=True)
class Settings:
    """Everything the project reads from the environment, validated."""

    citus: CitusSettings
    patroni: PatroniSettings


def parse_bool(setting: str, value: str) -> bool:
    """Read a boolean the way operators write them (true/false/1/0/yes/no/on/off)."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(setting, value, "use true/false, 1/0, yes/no or on/off")


def parse_int(setting: str, value: str, minimum: int, maximum: int) -> int:
    """Read an integer within [minimum, maximum]."""
    if not re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        raise ConfigurationError(setting, value, f"use an integer from {minimum} to {maximum}")
    number = int(value.strip(), 10)
    if not minimum <= number <= maximum:
        raise ConfigurationError(setting, value, f"use an integer from {minimum} to {maximum}")
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
            raise ConfigurationError(setting, value, allowed)
    return hosts


def parse_address(setting: str, value: str, *, allow_wildcard: bool) -> str:
    """A ``host:port`` address; listen addresses may also use a wildcard host."""
    allowed = "use host:port with a host name or IP address and a port from 1 to 65535"
    host, sep, port = value.strip().rpartition(":")
    wildcard_ok = allow_wildcard and host in _WILDCARD_HOSTS
    if not sep or not (wildcard_ok or is_valid_host(host)):
        raise ConfigurationError(setting, value, allowed)
    if not allow_wildcard and host.strip("[]") in _WILDCARD_HOSTS:
        raise ConfigurationError(
            setting, value, "use a host name or IP address other members can reach, not a wildcard"
        )
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ConfigurationError(setting, value, allowed)
    return f"{host}:{int(port)}"


def parse_address_list(setting: str, value: str) -> tuple[str, ...]:
    """A comma-separated list of ``host:port`` addresses (e.g. etcd endpoints)."""
    allowed = "use a comma-separated list of host:port (e.g. etcd-1:2379)"
    if not value.strip():
        raise ConfigurationError(setting, value, allowed)
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
            raise ConfigurationError(setting, value, f"{entry}; {allowed}") from None
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
            raise ConfigurationError(setting, value, allowed) from None
    return tuple(networks)


def parse_libraries(setting: str, value: str) -> tuple[str, ...]:
    """shared_preload_libraries as a list, in order, without blanks or duplicates."""
    libraries: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if not _LIBRARY_NAME.match(part):
            raise ConfigurationError(
                setting, value, "use a comma-separated list of library names (letters, digits, _ . $ -)"
            )
        if part not in libraries:
            libraries.append(part)
    return tuple(libraries)


def _matching(setting: str, value: str, pattern: re.Pattern[str], allowed: str) -> str:
    if not pattern.fullmatch(value):
        raise ConfigurationError(setting, value, allowed)
    return value


def _absolute_path(setting: str, value: str) -> str:
    if not value.startswith("/") or "\n" in value:
        raise ConfigurationError(setting, value, "use an absolute path")
    return value


class _Environment:
    """Typed access to one environment mapping; remembers nothing, raises ConfigurationError."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        return None if value is None or value.strip() == "" else value

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
                raise ConfigurationError(file_setting, path, f"the file cannot be read ({reason})") from None
            if not direct:
                raise ConfigurationError(file_setting, path, "the file is empty; put the password in it")
        if direct is None:
            if required:
                raise ConfigurationError(name, None, f"required; set {name} or {file_setting}")
            return None
        if "\n" in direct or "\x00" in direct:
            raise SecretSettingError(name, "a password must be a single line")
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


def load_citus_settings(environ: Mapping[str, str]) -> CitusSettings:
    """Read and check every CITUS_* variable (also when Citus is disabled: a typo is still a typo)."""
    env = _Environment(environ)
    enabled = env.boolean("CITUS_ENABLE", False)
    role_value = env.text("CITUS_ROLE", "coordinator").lower()
    if role_value not in ("coordinator", "worker"):
        raise ConfigurationError("CITUS_ROLE", env.raw("CITUS_ROLE"), "use coordinator or worker")
    role: CitusRole = "coordinator" if role_value == "coordinator" else "worker"
    raw_group = env.raw("CITUS_GROUP")
    if role == "coordinator":
        if raw_group is not None and raw_group.strip() != "0":
            raise ConfigurationError("CITUS_GROUP", raw_group, "must be 0 for CITUS_ROLE=coordinator")
        group = 0
    else:
        if raw_group is None:
            raise ConfigurationError(
                "CITUS_GROUP", None, "required for CITUS_ROLE=worker; use an integer >= 1"
            )
        group = env.integer("CITUS_GROUP", 0, 1, 2**31 - 1)
    hosts_value = env.raw("CITUS_COORDINATOR_HOST")
    coordinator_hosts = (
        ("localhost",) if hosts_value is None else parse_host_list("CITUS_COORDINATOR_HOST", hosts_value)
    )
    database = _matching(
        "CITUS_DATABASE",
        env.text("CITUS_DATABASE", "citus"),
        _DATABASE_NAME,
        "use a database name of letters, digits, _ and - starting with a letter or _ (at most 63)",
    )
    sslmode = env.raw("CITUS_NODE_SSLMODE")
    if sslmode is not None and sslmode.strip().lower() not in _SSLMODES:
        raise ConfigurationError("CITUS_NODE_SSLMODE", sslmode, f"use one of {', '.join(_SSLMODES)}")
    builtin_mode = [name for name in ("PATRONI_CITUS_GROUP", "PATRONI_CITUS_DATABASE") if env.raw(name)]
    if enabled and builtin_mode:
        raise ConfigurationError(
            builtin_mode[0],
            env.raw(builtin_mode[0]),
            "enables Patroni's built-in Citus mode, which must not be combined with CITUS_ENABLE; unset one",
        )
    return CitusSettings(
        enabled=enabled,
        role=role,
        group=group,
        coordinator_hosts=coordinator_hosts,
        coordinator_port=env.integer("CITUS_COORDINATOR_PORT", 5432, 1, 65535),
        database=database,
        max_prepared_transactions=env.integer("CITUS_MAX_PREPARED_TRANSACTIONS", 200, 1, 262143),
        standalone=env.boolean("CITUS_STANDALONE", all(_is_loopback(host) for host in coordinator_hosts)),
        registration_timeout=env.integer("CITUS_REGISTRATION_TIMEOUT", 60, 1, 3600),
        node_sslmode=CITUS_DEFAULT_SSLMODE if sslmode is None else sslmode.strip().lower(),
        node_tcp_user_timeout=env.integer(
            "CITUS_NODE_TCP_USER_TIMEOUT", DEFAULT_TCP_USER_TIMEOUT_MS, 0, MAX_TCP_USER_TIMEOUT_MS
        ),
    )


def _default_connect_address(listen: str, hostname: str) -> str:
    """Advertise the listen host when it is specific, else this machine's host name."""
    host, _, port = listen.rpartition(":")
    return f"{hostname if host.strip('[]') in _WILDCARD_HOSTS else host.split(',')[0]}:{port}"


def load_patroni_settings(environ: Mapping[str, str]) -> PatroniSettings:
    """Read and check the PATRONI_* and PG_* variables the template needs."""
    env = _Environment(environ)
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
    namespace = env.text("PATRONI_NAMESPACE", "/service/")
    if not re.fullmatch(r"/[A-Za-z0-9_./-]*", namespace):
        raise ConfigurationError("PATRONI_NAMESPACE", namespace, "use a path like /service/")
    restapi_listen = parse_address(
        "PATRONI_RESTAPI_LISTEN", env.text("PATRONI_RESTAPI_LISTEN", "0.0.0.0:8008"), allow_wildcard=True
    )
    postgres_listen = parse_address(
        "PATRONI_POSTGRESQL_LISTEN",
        env.text("PATRONI_POSTGRESQL_LISTEN", "0.0.0.0:5432"),
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
    ttl = env.integer("PATRONI_TTL", 30, 20, 3600)
    loop_wait = env.integer("PATRONI_LOOP_WAIT", 10, 1, 3600)
    retry_timeout = env.integer("PATRONI_RETRY_TIMEOUT", 10, 3, 3600)
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
        etcd_hosts=parse_address_list(
            "PATRONI_ETCD3_HOSTS", env.text("PATRONI_ETCD3_HOSTS", "127.0.0.1:2379")
        ),
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
            "PATRONI_POSTGRESQL_DATA_DIR", env.text("PATRONI_POSTGRESQL_DATA_DIR", "/var/lib/postgresql/data")
        ),
        bin_dir=None if bin_dir is None else _absolute_path("PATRONI_POSTGRESQL_BIN_DIR", bin_dir.strip()),
        pgpass=_absolute_path(
            "PATRONI_POSTGRESQL_PGPASS",
            env.text("PATRONI_POSTGRESQL_PGPASS", "/tmp/pgpass"),  # noqa: S108
        ),
        socket_dir=_absolute_path("PG_SOCKET_DIR", env.text("PG_SOCKET_DIR", "/var/run/postgresql")),
        allowed_networks=parse_networks("PG_ALLOWED_NETWORKS", env.text("PG_ALLOWED_NETWORKS", "samenet")),
        shared_preload_libraries=parse_libraries(
            "PG_SHARED_PRELOAD_LIBRARIES", env.text("PG_SHARED_PRELOAD_LIBRARIES", "")
        ),
        ttl=ttl,
        loop_wait=loop_wait,
        retry_timeout=retry_timeout,
        synchronous_mode=env.boolean("PATRONI_SYNCHRONOUS_MODE", False),
    )


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Validate the whole environment; raises ConfigurationError on the first bad value."""
    return Settings(citus=load_citus_settings(environ), patroni=load_patroni_settings(environ))
