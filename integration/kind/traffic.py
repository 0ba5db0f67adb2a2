"""gRPC calls through the node-local proxy, from the machine running the tests.

Every call goes to ``/test.Echo/Whoami`` (or ``/test.Echo/Sleep``, to hold calls in flight) of
the kind suite's backend, whose reply is the name of the pod that served it. All calls share one
channel, as a real client of a node-local proxy does: one HTTP/2 connection, many calls, which
gproxy-mp spreads call by call.

Each call's result is a `harness.traffic.Outcome` (made by `harness.traffic.make_call`, which
needs nothing from the repository's tests package). The shape differs from
`harness.traffic.ThreadLoad` on purpose: one shared channel, wait-for-ready calls of up to a
minute, and a thread of Sleep calls.

Concurrency: :class:`Traffic` runs a few caller threads on one grpcio channel (thread-safe);
each appends its outcomes to a list under a lock. Everything else runs on the test's thread.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from types import TracebackType

import grpc

from harness.traffic import Outcome, make_call

WHOAMI = "/test.Echo/Whoami"
SLEEP = "/test.Echo/Sleep"
CALL_TIMEOUT = 5.0
"""Seconds a fail-fast call may take; the backend answers Whoami at once."""
WAIT_FOR_READY_TIMEOUT = 60.0
"""Seconds a wait-for-ready call may wait for the proxy to come back (a DaemonSet pod restart
on the node: old pod's 5s delay and drain, new pod's start) and then complete."""
SLEEP_SECONDS = 0.5
"""How long each Sleep call stays in flight: long enough to straddle a GOAWAY or a pod stop."""
MAX_SECONDS = 600.0
"""Seconds a caller thread calls at most, should the test never stop it."""
STOP_TIMEOUT = WAIT_FOR_READY_TIMEOUT + 10.0
"""Seconds to wait for the caller threads to finish their last call."""
CHANNEL_OPTIONS = [
    # Ride a restart of the proxy pod in about a second after it listens again, instead of
    # gRPC's default backoff that grows to two minutes.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def open_channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)


def answering_pod(channel: grpc.Channel, *, wait_for_ready: bool, sleep: float) -> str:
    """The pod that answered one Whoami (or, with ``sleep``, Sleep) call; raises on failure."""
    method = SLEEP if sleep else WHOAMI
    timeout = WAIT_FOR_READY_TIMEOUT if wait_for_ready else CALL_TIMEOUT + sleep
    reply: bytes = channel.unary_unary(method)(str(sleep).encode(), timeout=timeout,
                                               wait_for_ready=wait_for_ready)
    return reply.decode()


def call_whoami(channel: grpc.Channel, *, wait_for_ready: bool = False,
                sleep: float = 0.0, connection: int = 0) -> Outcome:
    """One call; its outcome (``backend`` is the pod), never an exception."""
    call = functools.partial(answering_pod, wait_for_ready=wait_for_ready, sleep=sleep)
    return make_call(call, channel, connection=connection)


def whoami_counts(address: str, *, calls: int) -> Counter[str]:
    """Make `calls` calls one after another; how many each pod answered.

    Fails on the first failed call, naming it.
    """
    counts: Counter[str] = Counter()
    with open_channel(address) as channel:
        for _ in range(calls):
            outcome = call_whoami(channel)
            if outcome.backend is None:
                raise AssertionError(f"call through {address} failed: {outcome.error} "
                                     f"(answers so far: {dict(counts)})")
            counts[outcome.backend] += 1
    return counts


class Traffic:
    """Calls through the proxy without pause from `callers` threads, plus one thread of Sleep
    calls that keeps a call in flight at all times, until the `with` block ends (or
    `MAX_SECONDS` pass)."""

    def __init__(self, address: str, *, callers: int = 4, wait_for_ready: bool = False) -> None:
        self.address = address
        self.callers = callers
        self.wait_for_ready = wait_for_ready
        self._outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._channel: grpc.Channel | None = None

    def __enter__(self) -> Traffic:
        self._channel = open_channel(self.address)
        sleeps = [0.0] * self.callers + [SLEEP_SECONDS]
        self._threads = [threading.Thread(target=self._call_until_stopped, args=(s, i),
                                          name=f"caller-{i}", daemon=True)
                         for i, s in enumerate(sleeps)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        deadline = time.monotonic() + STOP_TIMEOUT
        for thread in self._threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0))
        alive = [t.name for t in self._threads if t.is_alive()]
        if self._channel is not None:
            self._channel.close()
        if alive and exc is None:
            raise AssertionError(f"caller threads still running after {STOP_TIMEOUT}s: {alive}")

    def _call_until_stopped(self, sleep: float, index: int) -> None:
        assert self._channel is not None
        deadline = time.monotonic() + MAX_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            outcome = call_whoami(self._channel, wait_for_ready=self.wait_for_ready,
                                  sleep=sleep, connection=index)
            with self._lock:
                self._outcomes.append(outcome)

    @property
    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes)

    def answered_since(self, moment: float) -> Counter[str]:
        """Successful calls started at or after `moment` (time.monotonic()), by pod."""
        return Counter(o.backend for o in self.outcomes
                       if o.backend is not None and o.started >= moment)


def summarize(outcomes: list[Outcome]) -> str:
    """One paragraph for assertion messages: totals, answers by pod, the first failures."""
    failures = [o for o in outcomes if o.backend is None]
    by_pod = Counter(o.backend for o in outcomes if o.backend is not None)
    slowest = max((o.latency for o in outcomes), default=0.0)
    first = "; ".join(f"{o.error} (after {o.latency:.2f}s)" for o in failures[:5])
    return (f"{len(outcomes)} calls, {len(failures)} failed, slowest {slowest:.2f}s; "
            f"answered by {dict(by_pod)}" + (f"; first failures: {first}" if failures else ""))
