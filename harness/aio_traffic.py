"""Calls through a proxy from grpc.aio tasks: N calls in flight, bounded in count and time.

`run_aio_load` opens ``channels`` grpc.aio channels to ``address`` (with ``options``: give each
``grpc.use_local_subchannel_pool`` for a TCP connection of its own), optionally waits until
each is ready, and keeps ``concurrency`` calls in flight, task ``i`` on channel
``i % channels``, until ``max_calls`` calls were made or ``max_seconds`` passed. A call is a
coroutine ``call(channel) -> label`` (the backend's name, or any label of a good reply) that
raises `grpc.RpcError` on a failed call and `WrongReplyError` on a reply that is not the expected
one. Every call's result is a `harness.traffic.Outcome` (``connection`` is the channel index;
``code`` ``"WRONG_REPLY"`` for `WrongReplyError`); the run returns them with the wall seconds and
this process's CPU seconds of the calls alone (channel set-up excluded).

This is the asyncio shape of `harness.traffic.ThreadLoad`, for loads whose client must cost
little CPU per call (benchmarks) or share a loop with other work (memory sampling).

Concurrency: one asyncio loop; the tasks share the remaining-call count and the outcome list,
touched only between awaits.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc import aio

from harness.traffic import Outcome

READY_TIMEOUT = 30.0
"""Seconds a channel may take to connect when the load waits for ready channels."""

AioCall = Callable[[aio.Channel], Awaitable[str]]
ChannelOption = tuple[str, int | str]


class WrongReplyError(Exception):
    """A call that completed with status OK but not the expected reply; the message says how."""


@dataclass(frozen=True, slots=True)
class AioRun:
    outcomes: list[Outcome]
    seconds: float  # wall seconds of the calls alone
    cpu_seconds: float  # this process's CPU seconds meanwhile

    @property
    def calls(self) -> int:
        return len(self.outcomes)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o.code != "OK")

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0

    def codes(self) -> dict[str, int]:
        """Failed calls per status code name (``WRONG_REPLY`` for a wrong reply)."""
        return dict(Counter(o.code for o in self.outcomes if o.code != "OK"))

    def errors(self) -> dict[str, int]:
        """Failed calls per ``CODE: details`` (or the wrong reply's description)."""
        return dict(Counter(o.error for o in self.outcomes if o.code != "OK"))

    def latencies_us(self) -> list[float]:
        """Microseconds each successful call took, in the order they returned."""
        return [o.latency * 1e6 for o in self.outcomes if o.code == "OK"]


async def _make_call(call: AioCall, channel: aio.Channel, connection: int) -> Outcome:
    started = time.monotonic()
    try:
        label = await call(channel)
    except grpc.RpcError as error:
        if isinstance(error, aio.AioRpcError):
            code = error.code().name
            return Outcome(
                started, time.monotonic(), connection, code, None, f"{code}: {error.details()}"
            )
        return Outcome(started, time.monotonic(), connection, "UNKNOWN", None, str(error))
    except WrongReplyError as error:
        return Outcome(started, time.monotonic(), connection, "WRONG_REPLY", None, str(error))
    return Outcome(started, time.monotonic(), connection, "OK", label)


async def run_aio_load(
    address: str,
    call: AioCall,
    *,
    channels: int,
    concurrency: int,
    max_calls: int,
    max_seconds: float,
    options: Sequence[ChannelOption] = (),
    wait_ready: bool = False,
    credentials: grpc.ChannelCredentials | None = None,
) -> AioRun:
    """Run the load to its end (at most `max_seconds` plus one call's deadline); with
    `credentials`, over TLS (secure channels), else in clear."""
    opened = [
        aio.secure_channel(address, credentials, options=list(options))
        if credentials
        else aio.insecure_channel(address, options=list(options))
        for _ in range(channels)
    ]
    outcomes: list[Outcome] = []
    remaining = max_calls

    async def caller(index: int) -> None:
        nonlocal remaining
        channel = opened[index % channels]
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            outcomes.append(await _make_call(call, channel, index % channels))

    try:
        if wait_ready:
            for channel in opened:
                await asyncio.wait_for(channel.channel_ready(), READY_TIMEOUT)
        cpu, wall = time.process_time(), time.monotonic()
        deadline = wall + max_seconds
        await asyncio.gather(*(caller(index) for index in range(concurrency)))
        return AioRun(outcomes, time.monotonic() - wall, time.process_time() - cpu)
    finally:
        for channel in opened:
            await channel.close(None)
