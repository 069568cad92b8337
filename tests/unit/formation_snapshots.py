"""Formation snapshots the pure tests judge and render: a healthy coordinator + one worker group."""

from __future__ import annotations

from patroni_citus.planner import Endpoint, GroupLeader, NodeRow
from patroni_citus.topology import FormationSnapshot, MemberSnapshot

C0, C1, W1, W2 = (
    Endpoint("10.0.0.1", 5432),
    Endpoint("10.0.0.2", 5432),
    Endpoint("10.0.1.1", 5432),
    Endpoint("10.0.1.2", 5432),
)


def member(group: int, name: str, endpoint: Endpoint, leader: bool, **extra: object) -> MemberSnapshot:
    values: dict[str, object] = {
        "group": group,
        "scope": f"demo-{group}",
        "name": name,
        "endpoint": endpoint,
        "role": "primary" if leader else "replica",
        "state": "running" if leader else "streaming",
        "is_leader": leader,
        "lag": None if leader else 0,
        "pending_restart": False,
        "preload": "citus",
        "citus_version": "13.2-1",
    }
    values.update(extra)
    return MemberSnapshot(**values)  # type: ignore[arg-type]


def healthy() -> FormationSnapshot:
    return FormationSnapshot(
        scopes_by_group={0: ["demo-0"], 1: ["demo-1"]},
        leaders=[GroupLeader(0, C0), GroupLeader(1, W1)],
        members=[
            member(0, "c0", C0, True),
            member(0, "c1", C1, False),
            member(1, "w1", W1, True),
            member(1, "w2", W2, False),
        ],
        dcs_preload={"demo-0": "citus", "demo-1": "citus,pg_stat_statements"},
        rows=[NodeRow(1, 0, C0, shouldhaveshards=False), NodeRow(2, 1, W1)],
    )
