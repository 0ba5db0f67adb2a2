"""Per-call round robin over backends, preferring healthy connections. Pure; no gRPC here.

Each backend carries a rank: 0 READY, 1 not yet known to be broken (IDLE, CONNECTING),
2 TRANSIENT_FAILURE. A pick scans at most once around the ring from the cursor and takes the
first backend of the best rank present, then moves the cursor past it, so with all backends
READY the calls go strictly in turn, and a broken backend only gets a call when nothing
better exists. Cost per pick is O(1) while the first candidate is READY.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

READY, UNKNOWN, FAILING = 0, 1, 2


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
