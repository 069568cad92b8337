"""A local formation of real etcd, Patroni and PostgreSQL: leaders, Citus loaded, clean shutdown."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
from harness import local_formation, processes_mentioning, run_cli, source_bindir

from patroni_citus.local import pgtree

pytestmark = pytest.mark.integration


def test_formation_elects_leaders_loads_citus_and_stops_cleanly() -> None:
    with local_formation(workers=1, members=2) as formation:
        status = formation.status()
        assert status["exit_code"] == 0, status
        assert status["citus"] == formation.citus
        members = status["members"]
        assert len(members) == 4
        for group in (0, 1):
            roles = sorted(m["role"] for m in members if m["group"] == group)
            assert roles == ["primary", "replica"], (group, members)
        for member in formation.layout.all_members():
            (libraries,) = formation.query(member, "SHOW shared_preload_libraries")[0]
            assert libraries.split(",")[0].strip() == "citus", (member.name, libraries)
        base = str(formation.base)
        assert processes_mentioning(base), "the formation's processes should be visible while it runs"
        run_cli("local", "down", "--base-dir", base)
        assert processes_mentioning(base) == []
        stopped = formation.status()
        assert stopped["exit_code"] == 1
        assert all(not m["running"] for m in stopped["members"])
        assert (formation.base / "group0" / "member0" / "data").is_dir(), "down without --purge keeps data"


@pytest.mark.skipif(pgtree.citus_available(source_bindir()), reason="real Citus is installed here")
def test_up_without_citus_explains_how_to_install_it() -> None:
    base = Path(tempfile.mkdtemp(prefix="patroni-citus-it-"))
    try:
        result = run_cli(
            "local", "up", "--base-dir", str(base), "--pg-bindir", str(source_bindir()), check=False
        )
        assert result.returncode != 0
        assert "Citus is not installed" in result.stderr
        assert "--citus standin" in result.stderr
        assert processes_mentioning(str(base)) == []
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
