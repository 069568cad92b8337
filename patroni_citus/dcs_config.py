"""Keep `citus` first in shared_preload_libraries in Patroni's DCS-held dynamic configuration."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

CITUS = "citus"


def split_libraries(value: str) -> list[str]:
    return [part.strip().strip('"') for part in value.split(",") if part.strip()]


def libraries_citus_first(libraries: Iterable[str]) -> list[str]:
    """The libraries with citus first (once) and every other library kept in order.

    The one definition of "citus first": the template's rendered list and the DCS patch both use it.

    >>> libraries_citus_first(["pg_stat_statements", "citus", "auto_explain", "citus"])
    ['citus', 'pg_stat_statements', 'auto_explain']
    """
    return [CITUS, *(library for library in libraries if library != CITUS)]


def citus_first(value: str | None) -> str:
    """A shared_preload_libraries value (as the DCS holds it) with citus first.

    >>> citus_first("pg_stat_statements, citus,auto_explain")
    'citus,pg_stat_statements,auto_explain'
    >>> citus_first(None)
    'citus'
    """
    return ",".join(libraries_citus_first(split_libraries(value or "")))


def preload_patch(dynamic_config: dict[str, Any]) -> dict[str, Any] | None:
    """The PATCH /config body that puts citus first, or None when it already is."""
    parameters = (dynamic_config.get("postgresql") or {}).get("parameters") or {}
    current = parameters.get("shared_preload_libraries")
    wanted = citus_first(None if current is None else str(current))
    if current is not None and split_libraries(str(current)) == split_libraries(wanted):
        return None
    return {"postgresql": {"parameters": {"shared_preload_libraries": wanted}}}
