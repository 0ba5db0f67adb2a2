"""Continuous client traffic while a test changes the DNS answer.

`CallLoop` sends Whoami calls through the proxy from one thread, round robin over a few
channels, one after another, and records every outcome with its time. It stops when told to,
or after `max_calls` calls or `max_seconds` seconds, whichever comes first.

Concurrency: one daemon thread writes the outcomes under a lock; the test thread reads them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType

import grpc

from tests.support import client

CALL_TIMEOUT = 5.0
"""Seconds one call may take; a proxy that keeps a call waiting this long has failed it."""


@dataclass(frozen=True)
class Outcome:
    at: float  # time.monotonic() when the call returned
    name: str | None  # the backend that answered, None for a failed call
    error: str = ""


class CallLoop:
    def __init__(
        self, address: str, *, channels: int = 2, max_calls: int = 50_000, max_seconds: float = 60
    ) -> None:
        self._channels = [client.open_channel(address) for _ in range(channels)]
        self._max_calls = max_calls
        self._max_seconds = max_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._thread = threading.Thread(target=self._run, name="dns-call-loop", daemon=True)

    def __enter__(self) -> CallLoop:
        self._thread.start()
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
        self._thread.join(timeout=CALL_TIMEOUT + 5)
        for channel in self._channels:
            channel.close()

    def wait_done(self, timeout: float) -> bool:
        """Wait until the loop ended by itself (count or time bound); True if it has."""
        self._thread.join(timeout=timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        deadline = time.monotonic() + self._max_seconds
        for index in range(self._max_calls):
            if self._stop.is_set() or time.monotonic() >= deadline:
                return
            channel = self._channels[index % len(self._channels)]
            try:
                outcome = Outcome(time.monotonic(), client.whoami(channel, timeout=CALL_TIMEOUT))
            except grpc.RpcError as error:
                outcome = Outcome(time.monotonic(), None, client.describe(error))
            with self._lock:
                self._outcomes.append(outcome)

    def outcomes(self, since: float = 0.0) -> list[Outcome]:
        with self._lock:
            return [o for o in self._outcomes if o.at >= since]

    def failures(self) -> list[str]:
        return [o.error for o in self.outcomes() if o.name is None]

    def counts(self, since: float = 0.0) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes(since):
            if outcome.name is not None:
                counts[outcome.name] = counts.get(outcome.name, 0) + 1
        return counts

    def first_answer_from(self, name: str, since: float = 0.0) -> float | None:
        """When `name` first answered at or after `since`."""
        return next((o.at for o in self.outcomes(since) if o.name == name), None)

    def last_answer_from(self, name: str) -> float | None:
        return next((o.at for o in reversed(self.outcomes()) if o.name == name), None)

    def answers_after(self, at: float) -> int:
        """Calls that succeeded after `at`."""
        return sum(1 for o in self.outcomes(at) if o.at > at and o.name is not None)

    def summary(self) -> str:
        outcomes = self.outcomes()
        failures = self.failures()
        return (
            f"call loop: {len(outcomes)} calls, answers {self.counts()}, "
            f"{len(failures)} failed {failures[:5]}"
        )
