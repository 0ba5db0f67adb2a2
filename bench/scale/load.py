"""Bounded unary load through the proxy, with memory sampled while it runs.

`run_unary_load` runs `harness.aio_traffic.run_aio_load`: `connections` grpc.aio channels to
the proxy (each with its own TCP connection, so SO_REUSEPORT spreads them over the workers)
with exactly `concurrency` `test.Echo/Unary` calls of `payload` bytes in flight, spread evenly
over the channels, for `seconds`; every call has a deadline of `CALL_TIMEOUT`. Meanwhile a
task on the same loop samples the memory of `pids()` every `SAMPLE_INTERVAL` and keeps each
process's peak.

Concurrency: one asyncio loop in the benchmark's main thread; reading /proc is a few
microseconds per process, so sampling does not stall the calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import grpc.aio

from harness.aio_traffic import run_aio_load
from harness.procfacts import PeakMemory

CALL_TIMEOUT = 10.0
"""Seconds one call may take before it counts as failed."""
SAMPLE_INTERVAL = 0.2
"""Seconds between two memory samples during the load."""
MAX_CALLS = 10_000_000
"""Calls in all at most; the `seconds` bound ends a run long before (tens of thousands/s)."""
METHOD = "/test.Echo/Unary"
PRIVATE_CONNECTION = ("grpc.use_local_subchannel_pool", 1)


@dataclass(frozen=True, slots=True)
class LoadResult:
    calls: int
    failed: int
    seconds: float
    errors: dict[str, int]

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


async def _unary(channel: grpc.aio.Channel, *, request: bytes) -> str:
    """One `METHOD` call; its reply is not checked (the load measures memory, not replies)."""
    call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
    await call(request, timeout=CALL_TIMEOUT)
    return "ok"


async def _sample(pids: Callable[[], list[int]], peak: PeakMemory) -> None:
    while True:
        peak.sample(pids())
        await asyncio.sleep(SAMPLE_INTERVAL)


def run_unary_load(
    address: str,
    *,
    connections: int,
    concurrency: int,
    payload: int,
    seconds: float,
    pids: Callable[[], list[int]],
) -> tuple[LoadResult, PeakMemory]:
    """Run the load to completion (at most `seconds` + `CALL_TIMEOUT`); result and peaks."""
    peak = PeakMemory.empty()

    async def load() -> LoadResult:
        sampler = asyncio.create_task(_sample(pids, peak))
        try:
            run = await run_aio_load(
                address,
                functools.partial(_unary, request=b"x" * payload),
                channels=connections,
                concurrency=concurrency,
                max_calls=MAX_CALLS,
                max_seconds=seconds,
                options=[PRIVATE_CONNECTION],
            )
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        peak.sample(pids())
        return LoadResult(run.calls, run.failed, run.seconds, run.codes())

    return asyncio.run(load()), peak
