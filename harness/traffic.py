"""Calls through a proxy from client threads, and the log of every call's outcome.

`ThreadLoad` is the one closed-loop traffic generator of the tests and the benchmarks:
``threads`` threads, each with ``channels_per_thread`` channels of its own (from
``open_channel``; give each its own subchannels for a connection of its own), sending calls
round robin over its channels, one in flight per thread. Options shape it:

- ``interval``: at most one call per ``interval`` seconds per thread (a fixed rate; a late call
  is not caught up), 0 for back to back;
- ``failure_pause``: seconds a thread waits after a failed call (a channel in reconnect backoff
  fails calls at once; without a pause a thread spends its share of ``max_calls`` there);
- ``reconnect_every``: a thread replaces its channels with new ones every N calls;
- bounds, always: each thread stops when told to, after its share of ``max_calls``, or after
  ``max_seconds``, whichever comes first.

A call is a function ``call(channel) -> backend name`` that raises `grpc.RpcError` on failure
(`harness.whoami.whoami`); its result is an `Outcome` (sent, returned, connection, code,
backend, error) in an `OutcomeLog`, which answers the questions tests and benchmarks ask and
waits on conditions (an answer from a backend, a backend gone quiet). The same log is filled
from JSON lines by `harness.remote_traffic` for a load that runs in another process.

Concurrency: the threads append outcomes under one condition variable and notify it after
every call; the test or benchmark thread only reads and waits, every wait bounded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Self

import grpc

CALL_TIMEOUT = 5.0
"""Seconds one call may take; a proxy that keeps a call waiting this long has failed it."""
FAILED_CALL_PAUSE = 0.005
"""Seconds a thread waits after a failed call, by default. While a channel waits out its
reconnect backoff (about 1 s), grpc fails fail-fast calls at once; without a pause a thread would
spend its whole share of ``max_calls`` there (seen: 10,000 calls in a second) and have none left
to show that it is served again afterwards."""
JOIN_TIMEOUT = CALL_TIMEOUT + 5.0
"""Seconds `ThreadLoad.stop` waits for each thread: its call in flight ends within
`CALL_TIMEOUT`."""

ChannelFactory = Callable[[], grpc.Channel]
Call = Callable[[grpc.Channel], str]
"""One call on a channel; the name of the backend that answered, or `grpc.RpcError`."""


@dataclass(frozen=True, slots=True)
class Outcome:
    started: float  # time.monotonic() when the call was sent
    ended: float  # time.monotonic() when it returned
    connection: int  # index of the channel that sent it, over all threads
    code: str  # "OK" or the status code's name
    backend: str | None  # the backend that answered, None for a failed call
    error: str = ""  # "CODE: details" of a failed call

    @property
    def latency(self) -> float:
        return self.ended - self.started

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: str | bytes) -> Outcome:
        data: Mapping[str, object] = json.loads(line)
        return cls(
            started=float(str(data["started"])),
            ended=float(str(data["ended"])),
            connection=int(str(data["connection"])),
            code=str(data["code"]),
            backend=None if data["backend"] is None else str(data["backend"]),
            error=str(data["error"]),
        )


def make_call(call: Call, channel: grpc.Channel, *, connection: int) -> Outcome:
    """One call on `channel`, whatever its result, as an `Outcome`."""
    started = time.monotonic()
    try:
        name = call(channel)
    except grpc.RpcError as error:
        if isinstance(error, grpc.Call):
            code = error.code().name
            described = f"{code}: {error.details()}"
        else:
            code, described = "UNKNOWN", str(error)
        return Outcome(started, time.monotonic(), connection, code, None, described)
    return Outcome(started, time.monotonic(), connection, "OK", name)


class OutcomeLog:
    """Every outcome recorded so far, the questions asked of them, and bounded waits."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._outcomes: list[Outcome] = []
        self._last_answer: dict[str, float] = {}
        self._answers = 0
        self._answers_until: dict[str, int] = {}  # answers counted when a backend last answered

    def record(self, outcome: Outcome) -> None:
        with self._changed:
            self._outcomes.append(outcome)
            if outcome.backend is not None:
                self._answers += 1
                self._last_answer[outcome.backend] = outcome.ended
                self._answers_until[outcome.backend] = self._answers
            self._changed.notify_all()

    def outcomes(self, since: float = 0.0) -> list[Outcome]:
        """Calls that returned at or after `since`, in the order they were recorded."""
        with self._changed:
            return [o for o in self._outcomes if o.ended >= since]

    def failures(self, since: float = 0.0) -> list[Outcome]:
        return [o for o in self.outcomes(since) if o.backend is None]

    def backends(self, since: float = 0.0) -> set[str]:
        """The backends that answered calls returning at or after `since`."""
        return {o.backend for o in self.outcomes(since) if o.backend is not None}

    def successes(self) -> int:
        return sum(1 for o in self.outcomes() if o.backend is not None)

    def counts(self, since: float = 0.0) -> dict[str, int]:
        """Answers per backend among calls that returned at or after `since`."""
        return dict(Counter(o.backend for o in self.outcomes(since) if o.backend is not None))

    def answers_sent_after(self, at: float) -> int:
        """Calls sent after `at` that succeeded."""
        return sum(1 for o in self.outcomes(at) if o.started > at and o.backend is not None)

    def answers_returned_after(self, at: float) -> int:
        """Calls that succeeded, returning after `at`."""
        return sum(1 for o in self.outcomes(at) if o.ended > at and o.backend is not None)

    def first_answer_from(self, name: str, since: float = 0.0) -> float | None:
        """When `name` first answered at or after `since`."""
        return next((o.ended for o in self.outcomes(since) if o.backend == name), None)

    def last_answer_from(self, name: str) -> float | None:
        return next((o.ended for o in reversed(self.outcomes()) if o.backend == name), None)

    def wait_answer_from(self, name: str, *, since: float, timeout: float) -> bool:
        """Wait until `name` answers a call that returned at or after `since`."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._last_answer.get(name, -1.0) >= since, timeout=timeout
            )

    def wait_quiet(self, name: str, *, quiet: float, others: int, timeout: float) -> bool:
        """Wait until `name` has answered nothing for `quiet` seconds while at least `others`
        other calls succeeded: calls are flowing, and none reaches it any more."""

        def is_quiet() -> bool:
            last = self._last_answer.get(name, -1.0)
            served_since = self._answers - self._answers_until.get(name, 0)
            return time.monotonic() - last >= quiet and served_since >= others

        with self._changed:
            return self._changed.wait_for(is_quiet, timeout=timeout)

    def summary(self, since: float = 0.0) -> str:
        """One line for assertion messages: totals, codes, answers, the first failures."""
        outcomes = self.outcomes(since)
        failures = [o for o in outcomes if o.backend is None]
        codes = Counter(o.code for o in outcomes)
        first = [(round(o.started, 3), o.error) for o in failures[:5]]
        return (
            f"{len(outcomes)} calls, codes {dict(codes)}, answers {self.counts(since)}, "
            f"{len(failures)} failed, first {first}"
        )


class RunningLoad(OutcomeLog):
    """The log of a load that runs until `stop` or its bounds; leaving ``with`` stops it."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        raise NotImplementedError


class ThreadLoad(RunningLoad):
    """The load's threads, started on ``with`` and stopped on its end (or `stop`); `on_outcome`,
    if given, sees every outcome as it is recorded (under the log's lock, one at a time)."""

    def __init__(
        self,
        open_channel: ChannelFactory,
        call: Call,
        *,
        threads: int = 4,
        channels_per_thread: int = 1,
        interval: float = 0.0,
        failure_pause: float = FAILED_CALL_PAUSE,
        reconnect_every: int = 0,
        max_calls: int = 40_000,
        max_seconds: float = 60.0,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        super().__init__()
        self._open_channel = open_channel
        self._call = call
        self._channels_per_thread = channels_per_thread
        self._interval = interval
        self._failure_pause = failure_pause
        self._reconnect_every = reconnect_every
        self._calls_per_thread = max(1, max_calls // threads)
        self._max_seconds = max_seconds
        self._on_outcome = on_outcome
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(index,), name=f"load-{index}", daemon=True)
            for index in range(threads)
        ]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

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

    def record(self, outcome: Outcome) -> None:
        with self._changed:
            super().record(outcome)
            if self._on_outcome is not None:
                self._on_outcome(outcome)

    def _run(self, index: int) -> None:
        deadline = time.monotonic() + self._max_seconds
        width = self._channels_per_thread
        channels = [self._open_channel() for _ in range(width)]
        try:
            due = time.monotonic()
            for number in range(self._calls_per_thread):
                if self._stop.is_set() or time.monotonic() >= deadline:
                    return
                if self._reconnect_every and number and number % self._reconnect_every == 0:
                    for channel in channels:
                        channel.close()
                    channels = [self._open_channel() for _ in range(width)]
                slot = number % width
                outcome = make_call(self._call, channels[slot], connection=index * width + slot)
                self.record(outcome)
                if outcome.backend is None and self._failure_pause:
                    self._stop.wait(self._failure_pause)
                if self._interval:
                    due = max(due + self._interval, time.monotonic())  # late: no catching up
                    self._stop.wait(max(due - time.monotonic(), 0.0))
        finally:
            for channel in channels:
                channel.close()


def timeline(outcomes: list[Outcome], origin: float) -> list[tuple[float, float, str]]:
    """(started, ended, error) of each outcome in seconds relative to `origin`, for reports."""
    return [(round(o.started - origin, 3), round(o.ended - origin, 3), o.error) for o in outcomes]
