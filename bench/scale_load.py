"""Bounded unary load through the proxy, with memory sampled while it runs.

`run_unary_load` opens `connections` grpc.aio channels to the proxy (each with its own TCP
connection, so SO_REUSEPORT spreads them over the workers) and keeps exactly `concurrency`
`test.Echo/Unary` calls of `payload` bytes in flight, spread evenly over the channels, for
`seconds`; every call has a deadline of `CALL_TIMEOUT`. Meanwhile a task on the same loop
samples the memory of `pids()` every `SAMPLE_INTERVAL` and keeps each process's peak.

Concurrency: one asyncio loop in the benchmark's main thread; reading /proc is a few
microseconds per process, so sampling does not stall the calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import grpc.aio

from harness.procfacts import PeakMemory

CALL_TIMEOUT = 10.0
"""Seconds one call may take before it counts as failed."""
SAMPLE_INTERVAL = 0.2
"""Seconds between two memory samples during the load."""
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


async def _caller(
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes],
    payload: bytes,
    deadline: float,
    errors: dict[str, int],
) -> int:
    done = 0
    while time.monotonic() < deadline:
        try:
            await call(payload, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            errors[error.code().name] = errors.get(error.code().name, 0) + 1
        done += 1
    return done


async def _sample(pids: Callable[[], list[int]], peak: PeakMemory) -> None:
    while True:
        peak.sample(pids())
        await asyncio.sleep(SAMPLE_INTERVAL)


async def _load(
    address: str,
    *,
    connections: int,
    concurrency: int,
    payload: int,
    seconds: float,
    pids: Callable[[], list[int]],
    peak: PeakMemory,
) -> LoadResult:
    channels = [
        grpc.aio.insecure_channel(address, options=[PRIVATE_CONNECTION])
        for _ in range(connections)
    ]
    sampler = asyncio.create_task(_sample(pids, peak))
    errors: dict[str, int] = {}
    try:
        calls = [
            channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
            for channel in channels
        ]
        started = time.monotonic()
        counts = await asyncio.gather(
            *(
                _caller(calls[index % connections], b"x" * payload, started + seconds, errors)
                for index in range(concurrency)
            )
        )
        elapsed = time.monotonic() - started
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        for channel in channels:
            await channel.close(None)
    peak.sample(pids())
    return LoadResult(sum(counts), sum(errors.values()), elapsed, errors)


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
    result = asyncio.run(
        _load(
            address,
            connections=connections,
            concurrency=concurrency,
            payload=payload,
            seconds=seconds,
            pids=pids,
            peak=peak,
        )
    )
    return result, peak
