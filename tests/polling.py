"""Waiting for a condition in tests: the product's poll loop, tolerant of transient errors and stretchable.

The integration and container harnesses share it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from patroni_citus.poll import poll_until

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
    last_error: Exception | None = None

    def tolerant() -> T | None:
        nonlocal last_error
        try:
            return probe()
        except Exception as exc:  # polling tolerates transient errors and reports the last one
            last_error = exc
            return None

    result = poll_until(tolerant, timeout * TIMEOUT_MULTIPLIER, interval)
    if result is not None:
        return result
    context = "\n" + explain() if explain is not None else ""
    message = (
        f"timed out after {timeout * TIMEOUT_MULTIPLIER:.0f}s waiting for {what}; last error: {last_error}"
    )
    raise AssertionError(message + context)
