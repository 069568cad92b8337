"""Where a local formation keeps its files and which ports it uses, and its saved state.

Everything lives under one base directory so `down --purge` (and nothing else) can remove it.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from patroni_citus.errors import ConfigurationError, PatroniCitusError
from patroni_citus.settings import Credentials
from patroni_citus.template import write_private_file

STATE_FILE = "formation.json"
MAX_WORKERS = 8
MAX_MEMBERS = 9
LOOPBACK = "127.0.0.1"
# callbacks: this project (one Patroni scope per group); builtin: Patroni's own `citus:` mode, one
# scope for the whole formation, kept only to compare against in drills and benchmarks.
MODES = ("callbacks", "builtin")
# loopback: every process on 127.0.0.1 (no privileges needed); netns: each member a host of its own in a
# network namespace on a bridge, so one member's traffic can be cut (partition drills; needs root).
NETWORKS = ("loopback", "netns")
# etcd: etcd 3 (v3 API), optionally TLS with RBAC; zookeeper: a standalone ZooKeeper from Debian's package.
DCS_KINDS = ("etcd", "zookeeper")
#: etcd RBAC users of a --tls formation; each also names (in OU) its client certificate.
ETCD_ROOT_USER = "root"
ETCD_PATRONI_USER = "patroni"  # read-write on the namespace: every member's Patroni
ETCD_CLI_USER = "patroni-citus-cli"  # read-only on the namespace: status, reconcile --dry-run
NAMESPACE = "/service/"
SUPERUSER = "postgres"
DATABASE = "citus"
REST_USER = "patroni"  # every member's REST API login (its password is the restapi secret)


class FormationError(PatroniCitusError):
    """The local formation could not be brought up, down or read."""


class NoFormationError(FormationError):
    """There is no local formation in the directory: a usage error, not an unhealthy formation."""

    exit_code = 2


@dataclass(frozen=True)
class TlsPair:
    """A certificate and its private key, as files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class MemberLayout:
    """One Patroni member: its Citus group, names, ports and paths."""

    group: int
    index: int
    scope: str
    name: str
    postgres_port: int
    rest_port: int
    directory: str
    host: str = LOOPBACK

    @property
    def data_dir(self) -> Path:
        return Path(self.directory) / "data"

    @property
    def config_path(self) -> Path:
        return Path(self.directory) / "patroni.yml"

    @property
    def socket_dir(self) -> Path:
        return Path(self.directory) / "run"

    @property
    def log_path(self) -> Path:
        return Path(self.directory) / "patroni.log"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"

    @property
    def server_tls(self) -> TlsPair:
        """PostgreSQL's server certificate (--tls): beside the data directory, owned by the service user."""
        return TlsPair(Path(self.directory) / "server.crt", Path(self.directory) / "server.key")


@dataclass(frozen=True)
class FormationLayout:
    """The shape of a local formation: a coordinator group (0) and worker groups 1..workers.

    >>> FormationLayout("/f", dcs="zookeeper", tls=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    patroni_citus.errors.ConfigurationError: --tls='on' is invalid: TLS is built for etcd only, not --dcs ...
    """

    base_dir: str
    name: str = "demo"
    workers: int = 2
    members: int = 2
    port_base: int = 25000
    synchronous: bool = False
    mode: str = "callbacks"
    network: str = "loopback"
    dcs: str = "etcd"
    tls: bool = False
    pooler: bool = False  # a PgBouncer (and its watcher) in front of the coordinator group

    def __post_init__(self) -> None:
        if not 0 <= self.workers <= MAX_WORKERS:
            raise ConfigurationError("--workers", str(self.workers), f"use 0 to {MAX_WORKERS}")
        if not 1 <= self.members <= MAX_MEMBERS:
            raise ConfigurationError("--members", str(self.members), f"use 1 to {MAX_MEMBERS}")
        if self.mode not in MODES:
            raise ConfigurationError("--mode", self.mode, f"use one of {', '.join(MODES)}")
        if self.network not in NETWORKS:
            raise ConfigurationError("--network", self.network, f"use one of {', '.join(NETWORKS)}")
        if self.dcs not in DCS_KINDS:
            raise ConfigurationError("--dcs", self.dcs, f"use one of {', '.join(DCS_KINDS)}")
        if self.tls and self.dcs != "etcd":
            raise ConfigurationError(
                "--tls",
                "on",
                f"TLS is built for etcd only, not --dcs {self.dcs}; drop --tls or use --dcs etcd",
            )
        if self.pooler and (self.tls or self.network != "loopback"):
            raise ConfigurationError(
                "--pooler",
                "on",
                "the local pooler is built for loopback formations without --tls; "
                "drop --pooler, --tls or --network",
            )
        if not 1024 <= self.port_base <= 65535 - 300:
            raise ConfigurationError("--port-base", str(self.port_base), f"use 1024 to {65535 - 300}")

    @property
    def base(self) -> Path:
        return Path(self.base_dir)

    @property
    def subnet_prefix(self) -> str:
        """netns: the formation's own /24, told apart from other formations' by the port base."""
        return f"10.213.{self.port_base // 100 % 256}"

    @property
    def host_address(self) -> str:
        """Where etcd listens and where the members see this machine (the bridge, with netns)."""
        return LOOPBACK if self.network == "loopback" else f"{self.subnet_prefix}.1"

    @property
    def allowed_networks(self) -> str:
        """PG_ALLOWED_NETWORKS: only the formation's own addresses."""
        return f"{LOOPBACK}/32" if self.network == "loopback" else f"{self.subnet_prefix}.0/24"

    @property
    def etcd_client_port(self) -> int:
        return self.port_base

    @property
    def etcd_peer_port(self) -> int:
        return self.port_base + 1

    @property
    def zookeeper_client_port(self) -> int:
        return self.port_base

    @property
    def dcs_client_port(self) -> int:
        return self.zookeeper_client_port if self.dcs == "zookeeper" else self.etcd_client_port

    @property
    def dcs_hosts(self) -> str:
        """Where the members and the CLI reach the DCS, host:port (the bridge's address with netns)."""
        return f"{self.host_address}:{self.dcs_client_port}"

    @property
    def dcs_url(self) -> str:
        """The CLI's --dcs for this formation.

        >>> FormationLayout("/f", port_base=47800, tls=True).dcs_url
        'https://127.0.0.1:47800'
        >>> FormationLayout("/f", port_base=47800, dcs="zookeeper").dcs_url
        'zookeeper://127.0.0.1:47800'
        """
        scheme = "zookeeper" if self.dcs == "zookeeper" else "https" if self.tls else "http"
        return f"{scheme}://{self.dcs_hosts}"

    @property
    def metrics_port(self) -> int:
        """`local up --metrics`: where the formation's exporter listens (on 127.0.0.1)."""
        return self.port_base + 90

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}"

    @property
    def metrics_log_path(self) -> Path:
        return self.base / "metrics.log"

    @property
    def pooler_port(self) -> int:
        """PgBouncer's port (clients and its admin console): base+80 (base+90 is the metrics exporter's)."""
        return self.port_base + 80

    @property
    def pooler_dir(self) -> Path:
        """PgBouncer's config, userlist, include file, logs, and the watcher's log."""
        return self.base / "pooler"

    def pooler_dsn(self, database: str, user: str) -> str:
        """libpq string of the coordinator through PgBouncer: one host, whichever member is primary."""
        return (
            f"host={LOOPBACK} port={self.pooler_port} dbname={database} user={user} "
            f"passfile={self.pgpass_path}"
        )

    @property
    def etcd_dir(self) -> Path:
        return self.base / "etcd"

    @property
    def zookeeper_dir(self) -> Path:
        return self.base / "zookeeper"

    @property
    def dcs_log_path(self) -> Path:
        if self.dcs == "zookeeper":
            return self.zookeeper_dir / "zookeeper.log"
        return self.etcd_dir / "etcd.log"

    @property
    def secrets_dir(self) -> Path:
        return self.base / "secrets"

    def password_file(self, kind: str) -> Path:
        """Where the formation keeps one of its passwords (superuser, replication, restapi, etcd-USER)."""
        return self.secrets_dir / f"{kind}.password"

    def secret(self, kind: str) -> Path:
        """The password file of kind, made with a random password on first use (the caller's alone)."""
        path = self.password_file(kind)
        if not path.exists():
            write_private_file(path, secrets.token_urlsafe(24) + "\n")
        return path

    def password(self, kind: str) -> str:
        """The password of kind (made on first use, see secret), without its line end."""
        return self.secret(kind).read_text(encoding="utf-8").rstrip("\r\n")

    def rest_auth(self) -> Credentials:
        """The login of every member's Patroni REST API (read from its secret file)."""
        return Credentials(REST_USER, self.password("restapi"))

    @property
    def tls_dir(self) -> Path:
        """--tls: the formation's CA and its etcd and client certificates (keys 0600)."""
        return self.base / "tls"

    @property
    def ca(self) -> TlsPair:
        return TlsPair(self.tls_dir / "ca.crt", self.tls_dir / "ca.key")

    def client_tls(self, user: str) -> TlsPair:
        """The client certificate of an etcd user (its OU is the user's name; it has no CN)."""
        return TlsPair(self.tls_dir / f"{user}.crt", self.tls_dir / f"{user}.key")

    @property
    def etcd_tls(self) -> TlsPair:
        return TlsPair(self.tls_dir / "etcd-server.crt", self.tls_dir / "etcd-server.key")

    @property
    def pgpass_path(self) -> Path:
        """A libpq password file for the operator's psql and for `status` (readable by the caller only)."""
        return self.base / "pgpass"

    @property
    def private_tree(self) -> Path:
        return self.base / "pgtree"

    def scope(self, group: int) -> str:
        return self.name if self.mode == "builtin" else f"{self.name}-{group}"

    def member(self, group: int, index: int) -> MemberLayout:
        slot = group * 10 + index
        return MemberLayout(
            group=group,
            index=index,
            scope=self.scope(group),
            name=f"{self.name}-{group}-{index}",
            postgres_port=self.port_base + 100 + slot,
            rest_port=self.port_base + 200 + slot,
            directory=str(self.base / f"group{group}" / f"member{index}"),
            host=LOOPBACK if self.network == "loopback" else f"{self.subnet_prefix}.{10 + slot}",
        )

    def find_member(self, name: str) -> MemberLayout:
        """The member called name; a FormationError that lists the members if there is none."""
        for member in self.all_members():
            if member.name == name:
                return member
        names = ", ".join(m.name for m in self.all_members())
        raise FormationError(f"no member named {name!r}; members are: {names}")

    def all_members(self) -> list[MemberLayout]:
        return [
            self.member(group, index) for group in range(self.workers + 1) for index in range(self.members)
        ]

    def group_members(self, group: int) -> list[MemberLayout]:
        return [self.member(group, index) for index in range(self.members)]

    def coordinator_hosts(self) -> str:
        """CITUS_COORDINATOR_HOST for every member: all coordinator candidates, with their ports."""
        return ",".join(f"{m.host}:{m.postgres_port}" for m in self.group_members(0))

    def coordinator_dsn(self, database: str, user: str) -> str:
        """libpq multi-host string that always reaches the coordinator group's current primary."""
        members = self.group_members(0)
        hosts = ",".join(m.host for m in members)
        ports = ",".join(str(m.postgres_port) for m in members)
        return (
            f"host={hosts} port={ports} dbname={database} user={user} "
            f"target_session_attrs=read-write passfile={self.pgpass_path}"
        )


@dataclass
class FormationState:
    """What `up` started, saved so `down` and `status` find it again from another process."""

    layout: FormationLayout
    bindir: str
    citus: str
    dcs_pid: int | None = None  # etcd's or ZooKeeper's, after layout.dcs
    member_pids: dict[str, int] = field(default_factory=dict)
    metrics_pid: int | None = None  # `up --metrics`: the exporter's
    pooler_pid: int | None = None  # PgBouncer's, with --pooler
    watcher_pid: int | None = None  # `patroni-citus pooler watch`, with --pooler

    @property
    def etcd_pid(self) -> int | None:
        return self.dcs_pid if self.layout.dcs == "etcd" else None

    def save(self) -> None:
        path = self.layout.base / STATE_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        temporary.replace(path)

    @classmethod
    def load_existing(cls, base_dir: Path) -> FormationState:
        """The saved state of the formation in base_dir; NoFormationError if there is none."""
        state = cls.load(base_dir)
        if state is None:
            raise NoFormationError(f"no local formation in {base_dir} (no formation.json)")
        return state

    @classmethod
    def load(cls, base_dir: Path) -> FormationState | None:
        path = base_dir / STATE_FILE
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigurationError("--base-dir", str(base_dir), f"{path} is unreadable ({exc})") from None
        try:
            return cls(
                layout=FormationLayout(**raw["layout"]),
                bindir=raw["bindir"],
                citus=raw["citus"],
                dcs_pid=raw.get("dcs_pid", raw.get("etcd_pid")),  # etcd_pid: before --dcs
                member_pids={str(k): int(v) for k, v in raw.get("member_pids", {}).items()},
                metrics_pid=raw.get("metrics_pid"),
                pooler_pid=raw.get("pooler_pid"),
                watcher_pid=raw.get("watcher_pid"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigurationError(
                "--base-dir", str(base_dir), f"{path} is incomplete or damaged ({exc!r})"
            ) from None
