"""Whoami traffic through the proxy from daemon threads, and the record of every outcome.

`Traffic` owns what the churn tier's `ClientLoad` and the DNS tier's `CallLoop` share: the
threads (started on ``with``, stopped when told to or when their bounds run out), the outcome
list, and the questions tests ask of it. Each subclass gives the threads and how they spread
calls over channels.

Concurrency: the threads append outcomes under one lock; the test thread only reads them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import grpc

from harness import client

CALL_TIMEOUT = 5.0
"""Seconds one call may take; a proxy that keeps a call waiting this long has failed it."""
JOIN_TIMEOUT = CALL_TIMEOUT + 5.0
"""Seconds `Traffic.stop` waits for each thread: its call in flight ends within `CALL_TIMEOUT`."""


@dataclass(frozen=True)
class Outcome:
    started: float  # time.monotonic() when the call was sent
    ended: float  # time.monotonic() when it returned
    connection: int  # index of the client thread or channel that sent it
    code: str  # "OK" or the status code's name
    backend: str | None  # the backend that answered, None for a failed call
    error: str = ""


def call_whoami(channel: grpc.Channel, *, connection: int) -> Outcome:
    """One Whoami call on `channel`, whatever its result, as an `Outcome`."""
    started = time.monotonic()
    try:
        name = client.whoami(channel, timeout=CALL_TIMEOUT)
    except grpc.RpcError as error:
        code = error.code().name if isinstance(error, grpc.Call) else "UNKNOWN"
        return Outcome(started, time.monotonic(), connection, code, None, client.describe(error))
    return Outcome(started, time.monotonic(), connection, "OK", name)


class Traffic:
    """Threads that record `Outcome`s; subclasses create them in ``__init__`` (not started)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Self:
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

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self._outcomes.append(outcome)

    def outcomes(self, since: float = 0.0) -> list[Outcome]:
        """Calls that returned at or after `since`, in the order they returned."""
        with self._lock:
            return [o for o in self._outcomes if o.ended >= since]

    def counts(self, since: float = 0.0) -> dict[str, int]:
        """Answers per backend among calls that returned at or after `since`."""
        return dict(Counter(o.backend for o in self.outcomes(since) if o.backend is not None))

    def first_answer_from(self, name: str, since: float = 0.0) -> float | None:
        """When `name` first answered at or after `since`."""
        return next((o.ended for o in self.outcomes(since) if o.backend == name), None)

    def last_answer_from(self, name: str) -> float | None:
        return next((o.ended for o in reversed(self.outcomes()) if o.backend == name), None)
