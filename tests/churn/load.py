"""Client load for the churn tier: N threads, each on its own channel (its own TCP connection).

Each thread sends Whoami calls back to back through the proxy and records every outcome: when
the call started and ended, its status code, and the backend that answered. A thread may also
replace its channel with a fresh one every `reconnect_every` calls (new connections during a
shutdown delay). Every thread stops when told to, after its share of `max_calls`, or after
`max_seconds`, whichever comes first. A failed call is followed by a short pause, so a client
in its reconnect backoff does not burn its share of calls on instant failures.

Concurrency: the threads append outcomes under one lock (`tests.support.traffic.Traffic`); the
test thread only reads them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from harness import client
from tests.support.traffic import Outcome, Traffic, call_whoami

FAILED_CALL_PAUSE = 0.005
"""Seconds a thread waits after a failed call. While a channel waits out its reconnect backoff
(about 1 s), grpc fails fail-fast calls at once; without a pause a thread would spend its whole
share of `max_calls` there (seen: 10,000 calls in a second) and have none left to show that it
is served again afterwards."""


class ClientLoad(Traffic):
    def __init__(
        self,
        address: str,
        *,
        connections: int = 4,
        max_calls: int = 40_000,
        max_seconds: float = 60.0,
        reconnect_every: int = 0,
    ) -> None:
        super().__init__()
        self._address = address
        self._connections = connections
        self._calls_per_thread = max(1, max_calls // connections)
        self._max_seconds = max_seconds
        self._reconnect_every = reconnect_every
        self._threads = [
            threading.Thread(target=self._run, args=(index,), name=f"load-{index}", daemon=True)
            for index in range(connections)
        ]

    def _run(self, index: int) -> None:
        deadline = time.monotonic() + self._max_seconds
        channel = client.open_channel(self._address)
        try:
            for number in range(self._calls_per_thread):
                if self._stop.is_set() or time.monotonic() >= deadline:
                    return
                if self._reconnect_every and number and number % self._reconnect_every == 0:
                    channel.close()
                    channel = client.open_channel(self._address)
                outcome = call_whoami(channel, connection=index)
                self._record(outcome)
                if outcome.backend is None:
                    time.sleep(FAILED_CALL_PAUSE)
        finally:
            channel.close()

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes() if o.backend is None]

    def successes(self) -> int:
        return sum(1 for o in self.outcomes() if o.backend is not None)

    def answers_after(self, at: float) -> int:
        """Calls sent after `at` that succeeded."""
        return sum(1 for o in self.outcomes(at) if o.started > at and o.backend is not None)

    def summary(self) -> str:
        outcomes = self.outcomes()
        failures = self.failures()
        codes = Counter(o.code for o in outcomes)
        return (
            f"client load: {len(outcomes)} calls on {self._connections} connections, "
            f"codes {dict(codes)}, answers {self.counts()}, "
            f"first failures {[(round(o.started, 3), o.error) for o in failures[:5]]}"
        )


def timeline(outcomes: list[Outcome], origin: float) -> list[tuple[float, float, str]]:
    """(started, ended, error) of each outcome in seconds relative to `origin`, for reports."""
    return [(round(o.started - origin, 3), round(o.ended - origin, 3), o.error) for o in outcomes]
