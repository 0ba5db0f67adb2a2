"""Pure restart policy (workers, resolvers): backoff, and how an exit is told to the operator.

A dead worker is replaced after 0.1 s, doubling to 10 s while it keeps dying; a worker that ran
for a healthy minute starts the count again. A worker that exits with the boot-error code, or
dies before it ever served, halts the supervisor instead of looping (gunicorn's rule).
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from dataclasses import dataclass

from gproxy_mp.errors import ExitCode

RESTART_INITIAL_DELAY = 0.1
"""Seconds before the first restart of a dead worker."""
RESTART_MAX_DELAY = 10.0
"""Upper bound, in seconds, of the doubling restart delay."""
HEALTHY_UPTIME = 60.0
"""Seconds a worker must run before its restart delay starts again from the initial value."""
JITTER = 0.2
"""Relative jitter of a restart delay, so the resolvers of many proxies do not retry in step."""


def jittered(delay: float, *, rng: Callable[[], float] = random.random) -> float:
    """`delay` spread uniformly over +-`JITTER` of itself."""
    return delay * (1.0 + JITTER * (2.0 * rng() - 1.0))


@dataclass(slots=True)
class RestartBackoff:
    failures: int = 0

    def next_delay(self, *, uptime: float) -> float:
        """The delay before restarting a worker that exited after `uptime` seconds."""
        if uptime >= HEALTHY_UPTIME:
            self.failures = 0
        delay = min(RESTART_MAX_DELAY, RESTART_INITIAL_DELAY * 2.0**self.failures)
        self.failures += 1
        return delay


def is_boot_failure(returncode: int, *, ever_ready: bool) -> bool:
    """True when the worker could not start at all: restarting it would only loop."""
    return returncode == ExitCode.WORKER_BOOT or not ever_ready


def describe_exit(returncode: int, *, expected: bool = False) -> str:
    """How a worker's exit status reads in a log line; `expected` when we stopped it."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if -returncode == signal.SIGKILL and not expected:
            return f"killed by {name} (perhaps out of memory)"
        return f"killed by {name}"
    if returncode == ExitCode.WORKER_BOOT:
        return "could not start (boot error)"
    return f"exited with code {returncode}"


def exit_reason(returncode: int) -> str:
    """A short, bounded label for metrics: `signal_SIGKILL`, `exit_1`, `boot_error`."""
    if returncode < 0:
        try:
            return f"signal_{signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal_{-returncode}"
    if returncode == ExitCode.WORKER_BOOT:
        return "boot_error"
    return f"exit_{returncode}"
