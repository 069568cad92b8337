"""-f json|yaml: one document in both, and every timestamp in it carries its zone."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
import yaml
from formation_snapshots import healthy

from patroni_citus import formats
from patroni_citus.status import StatusResult, as_json
from patroni_citus.template import default_scripts_dir

UNREACHABLE_DCS = ["--dcs", "etcd3://127.0.0.1:1", "--formation", "x", "--dcs-timeout", "1"]


def zoned(stamp: str) -> datetime:
    """stamp parsed, insisting on a zone (an offset like +00:00)."""
    moment = datetime.fromisoformat(stamp)
    assert moment.utcoffset() is not None, f"{stamp} has no zone"
    return moment


@pytest.mark.parametrize("zone", [UTC, timezone(timedelta(hours=2))], ids=str)
def test_status_json_says_which_clock_it_read(zone: timezone) -> None:
    checked_at = datetime(2026, 12, 2, 7, 14, 45, tzinfo=zone)
    document = as_json(StatusResult(healthy(), [], checked_at))
    assert zoned(document["checked_at"]) == checked_at
    assert document["checked_at"].endswith("+00:00" if zone is UTC else "+02:00")


def test_a_naive_timestamp_is_refused_not_printed_as_utc() -> None:
    with pytest.raises(ValueError, match="without a zone"):
        as_json(StatusResult(healthy(), [], datetime(2026, 12, 2, 7, 14, 45)))


@pytest.mark.parametrize("stream", [False, True], ids=["document", "stream"])
def test_yaml_is_the_same_document_as_json(stream: bool) -> None:
    document = as_json(StatusResult(healthy(), [], datetime.now(UTC)))
    from_yaml = yaml.safe_load(formats.render(document, formats.YAML, stream=stream))
    assert from_yaml == json.loads(formats.render(document, formats.JSON, stream=stream))
    assert isinstance(from_yaml["checked_at"], str), "a timestamp stays a string, as in JSON"


def test_pretty_is_not_a_document() -> None:
    with pytest.raises(ValueError, match="pretty"):
        formats.render({}, formats.PRETTY)


def rounds_of(arguments: list[str], seconds: float = 3) -> str:
    """The installed CLI's stdout for a few rounds of a repeating command, ended with SIGTERM."""
    command = [str(default_scripts_dir() / "patroni-citus"), *arguments, *UNREACHABLE_DCS]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(seconds)
        process.send_signal(signal.SIGTERM)
        stdout, _stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    return stdout


@pytest.mark.parametrize(
    ("arguments", "field"),
    [(["reconcile", "--every", "1"], "at"), (["status", "--watch", "0.5"], "checked_at")],
    ids=["reconcile --every", "status --watch"],
)
def test_repeating_commands_stamp_failed_rounds_with_their_zone(arguments: list[str], field: str) -> None:
    lines = [line for line in rounds_of([*arguments, "--json"]).splitlines() if line.strip()]
    assert lines, "no round was printed"
    for line in lines:
        zoned(json.loads(line)[field])
    documents = [d for d in yaml.safe_load_all(rounds_of([*arguments, "-f", "yaml"])) if d is not None]
    assert documents, "no YAML round was printed"
    assert all(zoned(document[field]) and document["error"] for document in documents), documents
