"""What the CLI prints for people or scripts: -f pretty|json|yaml (patronictl's convention), one structure.

JSON and YAML carry the same document; every timestamp in them is ISO 8601 with its zone, so a
script never has to guess which clock the CLI read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import yaml

from patroni_citus.errors import ConfigurationError

PRETTY, JSON, YAML = "pretty", "json", "yaml"
FORMATS = (PRETTY, JSON, YAML)


def timestamp(moment: datetime) -> str:
    """A moment as ISO 8601 with its zone; a naive datetime is a bug, never printed as if it were UTC.

    >>> from datetime import UTC
    >>> timestamp(datetime(2026, 12, 2, 7, 14, 45, 123, tzinfo=UTC))
    '2026-12-02T07:14:45+00:00'
    >>> timestamp(datetime(2026, 12, 2))
    Traceback (most recent call last):
    ...
    ValueError: a timestamp without a zone: 2026-12-02 00:00:00
    """
    if moment.utcoffset() is None:
        raise ValueError(f"a timestamp without a zone: {moment}")
    return moment.isoformat(timespec="seconds")


def chosen(output_format: str | None, as_json: bool) -> str:
    """-f FORMAT, with --json as an alias of -f json; both at once only if they agree.

    >>> chosen(None, False), chosen("yaml", False), chosen(None, True), chosen("json", True)
    ('pretty', 'yaml', 'json', 'json')
    """
    if as_json and output_format not in (None, JSON):
        raise ConfigurationError("--format", output_format, "--json means -f json; give one of them")
    return JSON if as_json else output_format or PRETTY


def requested(params: Mapping[str, Any]) -> str:
    """The format a command's parsed parameters ask for, without refusing a conflict (error reporting)."""
    return JSON if params.get("as_json") else params.get("output_format") or PRETTY


def render(document: Any, output_format: str, *, stream: bool = False) -> str:
    """document in JSON or YAML; stream: one of several (a JSON object a line, a YAML document each)."""
    if output_format == YAML:
        text = yaml.safe_dump(document, sort_keys=False, explicit_start=stream, allow_unicode=True)
        return text.rstrip("\n")
    if output_format == JSON:
        return json.dumps(document) if stream else json.dumps(document, indent=2)
    raise ValueError(f"no document rendering for {output_format!r}")
