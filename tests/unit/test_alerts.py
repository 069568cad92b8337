"""docs/alerts.yml: promtool checks and unit-tests it; its alerts and the exporter's metrics are documented.

Without promtool (Debian's prometheus package) the promtool tests skip, except where
PATRONI_CITUS_REQUIRE_PROMETHEUS=1 (scripts/test.sh, so CI) makes them fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from formation_snapshots import W2, healthy

from patroni_citus import health
from patroni_citus.callback_state import CallbackOutcome, CallbackState
from patroni_citus.metrics import Reading, callback_families, formation_families
from patroni_citus.planner import GroupLeader
from patroni_citus.status import StatusResult

ROOT = Path(__file__).parents[2]
ALERTS = ROOT / "docs" / "alerts.yml"
ALERTS_TEST = ROOT / "tests" / "unit" / "alerts_test.yml"
MONITORING = (ROOT / "docs" / "monitoring.md").read_text()


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool not installed (apt-get install prometheus)"
        if os.environ.get("PATRONI_CITUS_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(f"PATRONI_CITUS_REQUIRE_PROMETHEUS=1 but {reason}")
        pytest.skip(reason)
    return found


@pytest.mark.parametrize(
    "args", [("check", "rules", str(ALERTS)), ("test", "rules", str(ALERTS_TEST))], ids=["check", "test"]
)
def test_promtool(args: tuple[str, ...]) -> None:
    result = subprocess.run([promtool(), *args], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def rules() -> list[dict[str, object]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def exported_names() -> set[str]:
    """Every series name the exporter can emit (formation and callbacks), as Prometheus stores them."""
    snapshot = replace(healthy(), leaders=[*healthy().leaders[:1], GroupLeader(1, W2)])
    result = StatusResult(snapshot, health.find_problems(snapshot), datetime.now(UTC))
    families = formation_families(Reading(result, None, {"dcs": 0.1}), {}, 0)
    outcome = CallbackOutcome("on_start", "primary", "success", 1.0, 1, 1, 1.0)
    families += callback_families([CallbackState("m", 1, outcome, 1.0, 1, 0)], 0)
    return {family.name + ("_total" if family.type == "counter" else "") for family in families}


def test_every_alert_is_documented_with_its_runbook_line() -> None:
    for rule in rules():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict) and annotations.get("runbook"), rule["alert"]
        assert f"`{rule['alert']}`" in MONITORING, f"{rule['alert']} is not in docs/monitoring.md"
        assert str(annotations["runbook"]) in MONITORING, f"{rule['alert']}'s runbook line differs in the doc"


def test_alerts_use_only_metrics_the_exporter_has() -> None:
    known = exported_names() | {"up"}
    for rule in rules():
        used = set(re.findall(r"\b(?:patroni_citus_[a-z_]+|up)\b", str(rule["expr"])))
        assert used <= known, (rule["alert"], used - known)


def test_every_metric_is_documented() -> None:
    missing = sorted(name for name in exported_names() if f"`{name}`" not in MONITORING)
    assert not missing, f"not in docs/monitoring.md: {missing}"
