"""gRPC calls through the node-local proxy, from the machine running the tests.

Every call goes to ``/test.Echo/Whoami`` (or ``/test.Echo/Sleep``, to hold calls in flight) of
the kind suite's backend, whose reply is the name of the pod that served it. All calls share one
channel, as a real client of a node-local proxy does: one HTTP/2 connection, many calls, which
gproxy-mp spreads call by call.

Concurrency: :class:`Traffic` runs a few caller threads on one grpcio channel (thread-safe);
each appends its outcomes to a list under a lock. Everything else runs on the test's thread.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType

import grpc

WHOAMI = "/test.Echo/Whoami"
SLEEP = "/test.Echo/Sleep"
CALL_TIMEOUT = 5.0
"""Seconds a fail-fast call may take; the backend answers Whoami at once."""
WAIT_FOR_READY_TIMEOUT = 60.0
"""Seconds a wait-for-ready call may wait for the proxy to come back (a DaemonSet pod restart
on the node: old pod's 5s delay and drain, new pod's start) and then complete."""
SLEEP_SECONDS = 0.5
"""How long each Sleep call stays in flight: long enough to straddle a GOAWAY or a pod stop."""
STOP_TIMEOUT = WAIT_FOR_READY_TIMEOUT + 10.0
"""Seconds to wait for the caller threads to finish their last call."""
CHANNEL_OPTIONS = [
    # Ride a restart of the proxy pod in about a second after it listens again, instead of
    # gRPC's default backoff that grows to two minutes.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


@dataclass(frozen=True)
class Outcome:
    """One call: when it started (time.monotonic()), how long it took, and who answered."""

    started: float
    seconds: float
    pod: str | None
    """The backend pod that answered; None when the call failed."""
    error: str | None
    """``CODE: details`` of a failed call; None when it succeeded."""


def open_channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)


def call_whoami(channel: grpc.Channel, *, wait_for_ready: bool = False,
                sleep: float = 0.0) -> Outcome:
    """One call; its outcome, never an exception."""
    method = SLEEP if sleep else WHOAMI
    timeout = WAIT_FOR_READY_TIMEOUT if wait_for_ready else CALL_TIMEOUT + sleep
    started = time.monotonic()
    try:
        reply = channel.unary_unary(method)(str(sleep).encode(), timeout=timeout,
                                            wait_for_ready=wait_for_ready)
    except grpc.RpcError as e:
        code = e.code() if isinstance(e, grpc.Call) else None
        details = e.details() if isinstance(e, grpc.Call) else str(e)
        return Outcome(started, time.monotonic() - started, None,
                       f"{code.name if code else '?'}: {details}")
    return Outcome(started, time.monotonic() - started, reply.decode(), None)


def whoami_counts(address: str, *, calls: int) -> Counter[str]:
    """Make `calls` calls one after another; how many each pod answered.

    Fails on the first failed call, naming it.
    """
    counts: Counter[str] = Counter()
    with open_channel(address) as channel:
        for _ in range(calls):
            outcome = call_whoami(channel)
            if outcome.error is not None:
                raise AssertionError(f"call through {address} failed: {outcome.error} "
                                     f"(answers so far: {dict(counts)})")
            assert outcome.pod is not None
            counts[outcome.pod] += 1
    return counts


class Traffic:
    """Calls through the proxy without pause from `callers` threads, plus one thread of Sleep
    calls that keeps a call in flight at all times, until the `with` block ends."""

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
        self._threads = [threading.Thread(target=self._call_until_stopped, args=(s,),
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

    def _call_until_stopped(self, sleep: float) -> None:
        assert self._channel is not None
        while not self._stop.is_set():
            outcome = call_whoami(self._channel, wait_for_ready=self.wait_for_ready,
                                  sleep=sleep)
            with self._lock:
                self._outcomes.append(outcome)

    @property
    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes)

    def answered_since(self, moment: float) -> Counter[str]:
        """Successful calls started at or after `moment` (time.monotonic()), by pod."""
        return Counter(o.pod for o in self.outcomes if o.pod is not None and o.started >= moment)


def summarize(outcomes: list[Outcome]) -> str:
    """One paragraph for assertion messages: totals, answers by pod, the first failures."""
    failures = [o for o in outcomes if o.error is not None]
    by_pod = Counter(o.pod for o in outcomes if o.pod is not None)
    slowest = max((o.seconds for o in outcomes), default=0.0)
    first = "; ".join(f"{o.error} (after {o.seconds:.2f}s)" for o in failures[:5])
    return (f"{len(outcomes)} calls, {len(failures)} failed, slowest {slowest:.2f}s; "
            f"answered by {dict(by_pod)}" + (f"; first failures: {first}" if failures else ""))
