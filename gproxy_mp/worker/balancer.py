"""Per-call picking over backends, preferring healthy connections. Pure; no gRPC here.

Each backend carries a health rank: 0 READY, 1 not yet known to be broken (IDLE, CONNECTING),
2 TRANSIENT_FAILURE (or struck by passive health, `Strikes`), and a locality ring: 0 for the
backends this proxy prefers (same node or zone, when the Service asks for it), then 1, 2.
`placed_rank` orders by health first, then ring: a READY backend of the preferred ring first,
then a READY one of the next ring (spill-over), and only then backends not known to be ready.
With `--health-check`, a backend whose check fails ranks `CHECK_FAILED` higher than its
connection alone would: after every backend that passes, and among those that fail, READY
connections first (panic, `worker/panic.py`: a hung or unreachable backend gets no call while a
connected one exists). Every balancer picks only among the backends of the best rank present, so
a broken backend only gets a call when nothing better exists; they differ in which of those they
take.

- `RoundRobin` (`--balancer round-robin`, the default): scans at most once around the ring from
  the cursor and takes the first backend of the best rank, then moves the cursor past it; with
  all backends READY the calls go strictly in turn. O(1) per pick while the first is READY.
- `LeastRequest` (`--balancer least-request`): power of two choices (Envoy's least-request,
  Linkerd's P2C): two distinct backends of the best rank at random, and the one with fewer
  calls in flight in this worker wins; a tie goes to the lower `Ewma` of recent response
  times. A slow backend accumulates calls in flight, so it gets fewer new ones, without the
  herding of always taking the global minimum. O(1) per pick when both draws are READY.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")

READY, UNKNOWN, FAILING = 0, 1, 2
CHECK_FAILED = 3
"""Added to the health rank of a backend whose health check fails (`worker/health.py`)."""

STRIKE_INITIAL_PENALTY = 0.5
"""Seconds a backend ranks as failing after it answered UNAVAILABLE before sending anything."""
STRIKE_MAX_PENALTY = 10.0
"""Upper bound, in seconds, of the penalty, which doubles with each consecutive strike."""
EWMA_DECAY = 10.0
"""Seconds over which a response time's weight in `Ewma` falls to 1/e (Linkerd's default)."""
BALANCERS = ("round-robin", "least-request")
RINGS = 3
"""Locality rings a rank tells apart (same node, same zone, the rest); higher ones count as
the last."""


def placed_rank(health: int, ring: int) -> int:
    """The rank pickers compare: health first, then locality ring; 0 is READY in ring 0."""
    return health * RINGS + min(ring, RINGS - 1)


@dataclass(slots=True)
class Strikes:
    """Passive health: a backend whose connection is READY but which answers UNAVAILABLE
    (overloaded, shutting down, a broken sidecar) ranks as failing for a while, so calls go
    to healthy backends first instead of spending retries and the retry budget on it."""

    count: int = 0
    until: float = 0.0

    def strike(self, now: float) -> None:
        self.count += 1
        self.until = now + min(STRIKE_MAX_PENALTY, STRIKE_INITIAL_PENALTY * 2.0 ** (self.count - 1))

    def clear(self) -> None:
        self.count, self.until = 0, 0.0

    def active(self, now: float) -> bool:
        return now < self.until


@dataclass(slots=True)
class Ewma:
    """An exponentially weighted moving average of response times, weighted by time: a sample
    taken `dt` seconds after the previous one replaces a share 1 - exp(-dt/EWMA_DECAY) of it.
    Unmeasured (no sample yet), it is 0: a new backend is tried first."""

    value: float = 0.0
    last: float | None = None

    def observe(self, seconds: float, now: float) -> None:
        if self.last is None:
            self.value = seconds
        else:
            weight = math.exp(-max(now - self.last, 0.0) / EWMA_DECAY)
            self.value = self.value * weight + seconds * (1.0 - weight)
        self.last = now


class Picker(Protocol[T]):
    def pick(self, backends: Sequence[T], *, rank: Callable[[T], int],
             exclude: Container[T] = ()) -> T | None: ...


class RoundRobin(Generic[T]):
    def __init__(self) -> None:
        self._cursor = 0

    def pick(self, backends: Sequence[T], *, rank: Callable[[T], int],
             exclude: Container[T] = ()) -> T | None:
        """The next backend to use, skipping `exclude` (already tried by this call)."""
        count = len(backends)
        best: tuple[int, int] | None = None  # (rank, index)
        for step in range(count):
            index = (self._cursor + step) % count
            backend = backends[index]
            if backend in exclude:
                continue
            backend_rank = rank(backend)
            if backend_rank == READY:
                best = (READY, index)
                break
            if best is None or backend_rank < best[0]:
                best = (backend_rank, index)
        if best is None:
            return None
        self._cursor = best[1] + 1
        return backends[best[1]]


class LeastRequest(Generic[T]):
    """Power of two choices by calls in flight, ties broken by response-time EWMA; `load(b)`
    gives (calls in flight, EWMA seconds). `choose` is injectable for tests."""

    def __init__(self, load: Callable[[T], tuple[int, float]], *,
                 choose: Callable[[int], int] | None = None) -> None:
        self._load = load
        self._choose = choose or random.Random().randrange

    def pick(self, backends: Sequence[T], *, rank: Callable[[T], int],
             exclude: Container[T] = ()) -> T | None:
        """The less loaded of two random backends of the best rank, skipping `exclude`."""
        count = len(backends)
        if count >= 2:  # the common case: two distinct READY draws, nothing excluded
            first = self._choose(count)
            second = (first + 1 + self._choose(count - 1)) % count
            a, b = backends[first], backends[second]
            if (rank(a) == READY and rank(b) == READY
                    and a not in exclude and b not in exclude):
                return self._lighter(a, b)
        best_rank: int | None = None
        candidates: list[T] = []
        for backend in backends:
            if backend in exclude:
                continue
            backend_rank = rank(backend)
            if best_rank is None or backend_rank < best_rank:
                best_rank, candidates = backend_rank, [backend]
            elif backend_rank == best_rank:
                candidates.append(backend)
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        first = self._choose(len(candidates))
        second = (first + 1 + self._choose(len(candidates) - 1)) % len(candidates)
        return self._lighter(candidates[first], candidates[second])

    def _lighter(self, a: T, b: T) -> T:
        return a if self._load(a) <= self._load(b) else b


def build_picker(name: str, load: Callable[[T], tuple[int, float]]) -> Picker[T]:
    """The picker `--balancer` names (one of `BALANCERS`)."""
    if name == "least-request":
        return LeastRequest(load)
    if name == "round-robin":
        return RoundRobin()
    raise ValueError(f"unknown balancer {name!r}")
