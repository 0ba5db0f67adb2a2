"""Per-call round robin over backends, preferring healthy connections. Pure; no gRPC here.

Each backend carries a rank: 0 READY, 1 not yet known to be broken (IDLE, CONNECTING),
2 TRANSIENT_FAILURE. A pick scans at most once around the ring from the cursor and takes the
first backend of the best rank present, then moves the cursor past it, so with all backends
READY the calls go strictly in turn, and a broken backend only gets a call when nothing
better exists. Cost per pick is O(1) while the first candidate is READY.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

READY, UNKNOWN, FAILING = 0, 1, 2

STRIKE_INITIAL_PENALTY = 0.5
"""Seconds a backend ranks as failing after it answered UNAVAILABLE before sending anything."""
STRIKE_MAX_PENALTY = 10.0
"""Upper bound, in seconds, of the penalty, which doubles with each consecutive strike."""


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
