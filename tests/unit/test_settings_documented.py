"""docs/configuration.md lists every environment variable settings.py reads, with what it allows."""

from __future__ import annotations

import re
from pathlib import Path

import patroni_citus.settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_variable_read_is_in_the_configuration_table() -> None:
    source = Path(patroni_citus.settings.__file__).read_text()
    names = set(re.findall(r'"((?:CITUS|PATRONI|PG)_[A-Z0-9_]+)"', source))
    assert len(names) > 20, names  # the pattern still finds the settings
    table = (ROOT / "docs" / "configuration.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    # Credentials are read by prefix: PATRONI_SUPERUSER -> _USERNAME / _PASSWORD / _PASSWORD_FILE.
    missing = sorted(
        name for name in names if not any(f"`{name}`" in row or f"`{name}_USERNAME`" in row for row in rows)
    )
    assert not missing, f"settings read but not in docs/configuration.md's tables: {missing}"
