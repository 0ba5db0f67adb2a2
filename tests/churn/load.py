"""Client load for the churn tier: N threads, each on its own channel (its own TCP connection).

Each thread sends Whoami calls back to back through the proxy and records every outcome: when
the call started and ended, its status code, and the backend that answered. A thread may also
replace its channel with a fresh one every `reconnect_every` calls (new connections during a
shutdown delay). Every thread stops when told to, after its share of `max_calls`, or after
`max_seconds`, whichever comes first.

Concurrency: the threads append outcomes under one lock; the test thread only reads them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType

import grpc

from tests.support import client

CALL_TIMEOUT = 5.0
"""Seconds one call may take; a proxy that keeps a call waiting this long has failed it."""
JOIN_TIMEOUT = CALL_TIMEOUT + 5.0
"""Seconds `stop` waits for each thread: its call in flight ends within `CALL_TIMEOUT`."""


@dataclass(frozen=True)
class Outcome:
    started: float  # time.monotonic() when the call was sent
    ended: float  # time.monotonic() when it returned
    connection: int  # index of the client thread (and channel) that sent it
    code: str  # "OK" or the status code's name
    backend: str | None  # the backend that answered, None for a failed call
    error: str = ""


class ClientLoad:
    def __init__(
        self,
        address: str,
        *,
        connections: int = 4,
        max_calls: int = 40_000,
        max_seconds: float = 60.0,
        reconnect_every: int = 0,
    ) -> None:
        self._address = address
        self._connections = connections
        self._calls_per_thread = max(1, max_calls // connections)
        self._max_seconds = max_seconds
        self._reconnect_every = reconnect_every
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._threads = [
            threading.Thread(target=self._run, args=(index,), name=f"load-{index}", daemon=True)
            for index in range(connections)
        ]

    def __enter__(self) -> ClientLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=JOIN_TIMEOUT)

    def wait_done(self, timeout: float) -> bool:
        """Wait until every thread ended by itself (count or time bound); True if all have."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0))
        return not any(thread.is_alive() for thread in self._threads)

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
                started = time.monotonic()
                try:
                    name = client.whoami(channel, timeout=CALL_TIMEOUT)
                    outcome = Outcome(started, time.monotonic(), index, "OK", name)
                except grpc.RpcError as error:
                    code = error.code().name if isinstance(error, grpc.Call) else "UNKNOWN"
                    outcome = Outcome(
                        started, time.monotonic(), index, code, None, client.describe(error)
                    )
                with self._lock:
                    self._outcomes.append(outcome)
        finally:
            channel.close()

    def outcomes(self, since: float = 0.0) -> list[Outcome]:
        """Calls that returned at or after `since`, in the order they returned."""
        with self._lock:
            return [o for o in self._outcomes if o.ended >= since]

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes() if o.backend is None]

    def successes(self) -> int:
        return sum(1 for o in self.outcomes() if o.backend is not None)

    def counts(self, since: float = 0.0) -> dict[str, int]:
        """Answers per backend among calls that returned at or after `since`."""
        return dict(Counter(o.backend for o in self.outcomes(since) if o.backend is not None))

    def first_answer_from(self, name: str, since: float = 0.0) -> float | None:
        return next((o.ended for o in self.outcomes(since) if o.backend == name), None)

    def last_answer_from(self, name: str) -> float | None:
        return next((o.ended for o in reversed(self.outcomes()) if o.backend == name), None)

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
