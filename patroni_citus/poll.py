"""Waiting for a condition: the package's one poll loop (tests/polling.py builds on it too).

Callers say what "ready" means in a probe and what a timeout means after it returns None; a probe
that finds the wait hopeless (the process it waits for exited) raises, which ends the wait at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(probe: Callable[[], T | None], timeout: float, interval: float) -> T | None:
    """probe()'s first truthy result, asking every interval seconds; None once timeout has passed.

    None comes only from a probe that ended past the deadline, so a long last sleep never turns a
    condition that did come true into a timeout.

    >>> poll_until(lambda: "ready", timeout=0, interval=1)
    'ready'
    >>> answers = iter([None, 0, "", 7])
    >>> poll_until(lambda: next(answers), timeout=5, interval=0)
    7
    >>> poll_until(lambda: False, timeout=0.02, interval=0.01) is None
    True
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)
