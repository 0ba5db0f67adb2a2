"""Bounded polling of an observable condition (never a bare sleep as readiness)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_INTERVAL = 0.05
"""Seconds between two looks at the condition."""


def wait_until(probe: Callable[[], T], *, timeout: float, interval: float = POLL_INTERVAL) -> T:
    """Call ``probe`` until it returns something truthy; return that.

    After ``timeout`` seconds return the last (falsy) value instead, so the
    caller's assertion shows what was observed.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(min(interval, max(deadline - time.monotonic(), 0)))
