"""Where a local formation keeps its files and which ports it uses, and its saved state.

Everything lives under one base directory so `down --purge` (and nothing else) can remove it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from patroni_citus.errors import ConfigurationError

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


@dataclass(frozen=True)
class FormationLayout:
    """The shape of a local formation: a coordinator group (0) and worker groups 1..workers."""

    base_dir: str
    name: str = "demo"
    workers: int = 2
    members: int = 2
    port_base: int = 25000
    synchronous: bool = False
    mode: str = "callbacks"
    network: str = "loopback"

    def __post_init__(self) -> None:
        if not 0 <= self.workers <= MAX_WORKERS:
            raise ConfigurationError("--workers", str(self.workers), f"use 0 to {MAX_WORKERS}")
        if not 1 <= self.members <= MAX_MEMBERS:
            raise ConfigurationError("--members", str(self.members), f"use 1 to {MAX_MEMBERS}")
        if self.mode not in MODES:
            raise ConfigurationError("--mode", self.mode, f"use one of {', '.join(MODES)}")
        if self.network not in NETWORKS:
            raise ConfigurationError("--network", self.network, f"use one of {', '.join(NETWORKS)}")
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
    def etcd_dir(self) -> Path:
        return self.base / "etcd"

    @property
    def secrets_dir(self) -> Path:
        return self.base / "secrets"

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
    etcd_pid: int | None = None
    member_pids: dict[str, int] = field(default_factory=dict)

    def save(self) -> None:
        path = self.layout.base / STATE_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        temporary.replace(path)

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
                etcd_pid=raw.get("etcd_pid"),
                member_pids={str(k): int(v) for k, v in raw.get("member_pids", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigurationError(
                "--base-dir", str(base_dir), f"{path} is incomplete or damaged ({exc!r})"
            ) from None
