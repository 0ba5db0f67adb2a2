"""Continuous Whoami traffic for the discovery benchmark, with every call timestamped.

`WhoamiLoad` runs N threads, each on its own channel (its own TCP connection, or its own
subchannels for a `dns://` target), sending Whoami calls back to back, at most one per
`call_interval` seconds each. Every call is kept as a `Call`: when it was sent and returned
(`time.monotonic()`), and the backend that answered (None for a failed call). Each thread stops
when told to, after `max_calls` calls, or after `max_seconds` seconds, whichever comes first.

The benchmark waits on the load (`wait_answer_from`, `wait_quiet`) to know when a change has
taken effect; the latencies themselves are computed afterwards from `calls()`. Those come from
`CallLog`, which `WhoamiLoad` fills from its threads and `bench.discovery_remote.RemoteLoad`
from the JSON lines of a load running in another process (inside a network namespace).

Concurrency: writers append calls and update the per-backend times under one condition
variable and notify it after every call; the benchmark thread only waits and reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import grpc

from harness import client

CALL_TIMEOUT = 5.0
"""Seconds one call may take; a call kept waiting this long has failed."""
JOIN_TIMEOUT = CALL_TIMEOUT + 5.0
"""Seconds `stop` waits for each thread: its call in flight ends within `CALL_TIMEOUT`."""

ChannelFactory = Callable[[], grpc.Channel]


@dataclass(frozen=True, slots=True)
class Call:
    started: float
    ended: float
    connection: int
    backend: str | None  # None: the call failed
    error: str = ""


class CallLog:
    """Every call recorded so far, and waits on what they show."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._calls: list[Call] = []
        self._last_answer: dict[str, float] = {}
        self._answers = 0
        self._answers_until: dict[str, int] = {}  # answers counted when a backend last answered

    def record(self, call: Call) -> None:
        with self._changed:
            self._calls.append(call)
            if call.backend is not None:
                self._answers += 1
                self._last_answer[call.backend] = call.ended
                self._answers_until[call.backend] = self._answers
            self._changed.notify_all()

    def calls(self) -> list[Call]:
        """Every call so far, in the order they returned."""
        with self._changed:
            return list(self._calls)

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


class WhoamiLoad(CallLog):
    """The load's threads; `on_call`, if given, also sees every call as it is recorded (under
    the log's lock, so one at a time)."""

    def __init__(
        self,
        open_channel: ChannelFactory,
        *,
        connections: int = 4,
        call_interval: float = 0.0,
        max_calls: int = 1_000_000,
        max_seconds: float = 300.0,
        on_call: Callable[[Call], None] | None = None,
    ) -> None:
        super().__init__()
        self._open_channel = open_channel
        self._call_interval = call_interval
        self._calls_per_thread = max(1, max_calls // connections)
        self._max_seconds = max_seconds
        self._on_call = on_call
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(index,), name=f"whoami-{index}", daemon=True)
            for index in range(connections)
        ]

    def __enter__(self) -> WhoamiLoad:
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

    def _run(self, index: int) -> None:
        deadline = time.monotonic() + self._max_seconds
        channel = self._open_channel()
        try:
            due = time.monotonic()
            for _ in range(self._calls_per_thread):
                if self._stop.is_set() or time.monotonic() >= deadline:
                    return
                self.record(self._call(channel, index))
                due = max(due + self._call_interval, time.monotonic())  # late: no catching up
                self._stop.wait(max(due - time.monotonic(), 0.0))
        finally:
            channel.close()

    @staticmethod
    def _call(channel: grpc.Channel, index: int) -> Call:
        started = time.monotonic()
        try:
            name = client.whoami(channel, timeout=CALL_TIMEOUT)
        except grpc.RpcError as error:
            return Call(started, time.monotonic(), index, None, client.describe(error))
        return Call(started, time.monotonic(), index, name)

    def record(self, call: Call) -> None:
        with self._changed:
            super().record(call)
            if self._on_call is not None:
                self._on_call(call)


def open_plain(target: str, *, options: tuple[tuple[str, object], ...] = ()) -> ChannelFactory:
    """A factory of insecure channels to `target`, each with its own subchannels."""

    def build() -> grpc.Channel:
        return grpc.insecure_channel(target, options=[client.PRIVATE_CONNECTION, *options])

    return build
