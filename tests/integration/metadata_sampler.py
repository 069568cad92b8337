"""A sampler of the coordinator's committed pg_dist_node: catches a wrong state that lasts one transaction.

Never two primary rows for a group, never a secondary row at the group's primary, never a parked
placeholder name; extra checks (e.g. "this group's row only ever names these members") can be added.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from patroni_citus import drill, metadata
from patroni_citus.planner import PARKED_SUFFIX

Row = tuple[int, int, str, int, str]  # nodeid, groupid, nodename, nodeport, noderole
ROWS_SQL = "SELECT nodeid, groupid, nodename, nodeport, noderole::text FROM pg_dist_node ORDER BY nodeid"


def invariant_violations(rows: list[Row]) -> list[str]:
    """What no committed pg_dist_node may ever show."""
    found = []
    primaries: dict[int, tuple[str, int]] = {}
    for _nodeid, group, host, port, role in rows:
        if host.endswith(PARKED_SUFFIX):
            found.append(f"parked name committed: {host}:{port}")
        if role == "primary":
            if group in primaries:
                found.append(f"two primary rows in group {group}")
            primaries[group] = (host, port)
    for _nodeid, group, host, port, role in rows:
        if role == "secondary" and primaries.get(group) == (host, port):
            found.append(f"group {group}: a secondary row at the primary {host}:{port}")
    return found


@dataclass
class Sampler:
    """Reads the coordinator's pg_dist_node every 50 ms and keeps every violation it saw.

    The reading loop (reconnect after any error, one outcome per attempt) is the drill's: drill.Load.loop.
    """

    dsn: str
    violations: list[str] = field(default_factory=list)
    extra_check: Callable[[list[Row]], list[str]] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    load: drill.Load = field(init=False)

    def __post_init__(self) -> None:
        self.load = drill.Load(self.dsn, iter(()), stopping=self.stop)

    @property
    def samples(self) -> int:
        """Reads that completed (and were checked)."""
        return sum(1 for outcome in self.load.outcomes if outcome.ok)

    def _sample(self, connection: metadata.Connection) -> None:
        rows = [
            (row.nodeid, row.groupid, row.endpoint.host, row.endpoint.port, row.noderole)
            for row in metadata.read_nodes(connection)
        ]
        self.violations += invariant_violations(rows)
        if self.extra_check is not None:
            self.violations += self.extra_check(rows)

    def run(self) -> None:
        self.load.loop("sample", self._sample, options="")
