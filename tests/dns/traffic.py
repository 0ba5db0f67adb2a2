"""Continuous client traffic while a test changes the DNS answer.

`CallLoop` sends Whoami calls through the proxy from one thread, round robin over a few
channels, one after another, and records every outcome with its time. It stops when told to,
or after `max_calls` calls or `max_seconds` seconds, whichever comes first.

Concurrency: one daemon thread writes the outcomes under a lock
(`tests.support.traffic.Traffic`); the test thread reads them.
"""

from __future__ import annotations

import threading
import time

from harness import client
from tests.support.traffic import Traffic, call_whoami


class CallLoop(Traffic):
    def __init__(
        self, address: str, *, channels: int = 2, max_calls: int = 50_000, max_seconds: float = 60
    ) -> None:
        super().__init__()
        self._channels = [client.open_channel(address) for _ in range(channels)]
        self._max_calls = max_calls
        self._max_seconds = max_seconds
        self._threads = [threading.Thread(target=self._run, name="dns-call-loop", daemon=True)]

    def stop(self) -> None:
        super().stop()
        for channel in self._channels:
            channel.close()

    def _run(self) -> None:
        deadline = time.monotonic() + self._max_seconds
        for index in range(self._max_calls):
            if self._stop.is_set() or time.monotonic() >= deadline:
                return
            connection = index % len(self._channels)
            self._record(call_whoami(self._channels[connection], connection=connection))

    def failures(self) -> list[str]:
        return [o.error for o in self.outcomes() if o.backend is None]

    def answers_after(self, at: float) -> int:
        """Calls that succeeded, returning after `at`."""
        return sum(1 for o in self.outcomes(at) if o.ended > at and o.backend is not None)

    def summary(self) -> str:
        outcomes = self.outcomes()
        failures = self.failures()
        return (
            f"call loop: {len(outcomes)} calls, answers {self.counts()}, "
            f"{len(failures)} failed {failures[:5]}"
        )
