"""Waiting for a condition in tests: the one poll loop the integration and container harnesses share."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
#: Slower machines may stretch every test timeout (never shorten them).
TIMEOUT_MULTIPLIER = float(os.environ.get("PATRONI_CITUS_TEST_TIMEOUT_MULTIPLIER", "1"))


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = 60.0,
    interval: float = 0.5,
    explain: Callable[[], str] | None = None,
) -> T:
    """Poll probe until it returns something truthy; fail naming what never happened (and why, if explain)."""
    deadline = time.monotonic() + timeout * TIMEOUT_MULTIPLIER
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except Exception as exc:  # polling tolerates transient errors and reports the last one
            last_error = exc
        time.sleep(interval)
    context = "\n" + explain() if explain is not None else ""
    message = (
        f"timed out after {timeout * TIMEOUT_MULTIPLIER:.0f}s waiting for {what}; last error: {last_error}"
    )
    raise AssertionError(message + context)
