"""A member that exits at start is explained by its log's last error lines, not only Patroni's traceback."""

from __future__ import annotations

from pathlib import Path

from patroni_citus.local.layout import MemberLayout
from patroni_citus.local.readiness import _log_tail


def test_the_last_error_lines_come_before_the_tail(tmp_path: Path) -> None:
    member = MemberLayout(0, 0, "s", "m", 5432, 8008, str(tmp_path))
    lines = [f"INFO {i}" for i in range(20)]
    lines += ["x patroni-citus-post-bootstrap ERROR: the reason", "y INFO no lock"]
    lines += [f"traceback {i}" for i in range(8)]
    member.log_path.write_text("\n".join(lines) + "\n")
    shown = [line.strip() for line in _log_tail(member).splitlines() if line.strip()]
    reason = "x patroni-citus-post-bootstrap ERROR: the reason"
    assert shown == [reason, *[f"traceback {i}" for i in range(8)]]


def test_no_log_is_no_tail(tmp_path: Path) -> None:
    assert _log_tail(MemberLayout(0, 0, "s", "m", 5432, 8008, str(tmp_path / "gone"))) == ""
