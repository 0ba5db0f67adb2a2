"""--max-concurrent-streams through the real CLI: what one client connection may hold open.

The worker advertises the limit in its HTTP/2 SETTINGS (grpc's ``grpc.max_concurrent_streams``
server argument). A client that opens more calls on one connection keeps the rest waiting on
its side until a stream ends (HTTP/2 behaviour, RFC 9113 §5.1.2), so they never reach the
worker, let alone the backend, and never cost the worker memory. Before the limit, one
connection opening 10,000 streams that never sent their data took a worker from 46 to 527 MB.
(A client at the limit may also see a few calls refused, REFUSED_STREAM: worker/server.py.)

RSS (VmRSS, through `harness.procfacts`) is read of the worker this test's proxy started.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc
import grpc.aio
import pytest

from harness import client, procfacts
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = [pytest.mark.timeout(180), both_planes]

LIMIT = 50
SLEEPING_CALLS = 200
IDLE_STREAMS = 2000
"""Streams that never send anything: without the limit about 100 MB of worker RSS."""
SLEEP = 60.0
"""Seconds each Sleep call would take: longer than the test, they are cancelled at its end."""
HOLD = 2.0
"""Seconds the test watches the backend once the limit is reached: it must never be passed."""
REFUSED = "UNAVAILABLE: Stream removed (RST_STREAM (Received RST_STREAM with error code 7))"
"""How grpcio reports a stream the server refused (HTTP/2 error code 7, REFUSED_STREAM)."""
RELEASE_TIMEOUT = 5.0
"""Seconds the worker may take to release the streams its client cancelled."""
MAX_RSS_GROWTH = 25 * 1024 * 1024
"""Bytes the worker's RSS may grow while the idle streams are open: ``LIMIT`` streams and some
allocator noise (an open stream costs the worker about 43 KiB, its backend call included)."""


def whoami_unless_refused(channel: grpc.Channel) -> str | None:
    """Whoami's answer, or None if the worker refused the stream."""
    try:
        return client.whoami(channel)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return None


def describe_outcome(call: grpc.Future[bytes]) -> str:
    error = call.exception()  # done already: it was not cancelled
    return client.describe(error) if isinstance(error, grpc.RpcError) else repr(error)


def rss_bytes(pid: int) -> int:
    memory = procfacts.read_memory(pid)
    assert memory is not None, f"no RSS for pid {pid}: it is gone"
    return memory.rss_kib * 1024


class NewCalls:
    """Calls the backend has started since this was made, not counting its own Stats calls
    (the backend counts each Stats call before it answers)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._probes = 0
        self._base = self._read()

    def _read(self) -> int:
        self._probes += 1
        return self._backend.counter("calls")

    def count(self) -> int:
        return self._read() - self._base - (self._probes - 1)


def start_limited_proxy(backend: Backend, proxies: Callable[..., Proxy]) -> tuple[Proxy, str]:
    port = free_port()
    proxy = proxies(*proxy_args(route(port, backend), workers=1),
                    "--max-concurrent-streams", str(LIMIT))
    address = f"127.0.0.1:{port}"
    proxy.wait_serving(address)
    return proxy, address


def test_calls_beyond_the_limit_wait_in_the_client_and_never_reach_the_backend(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    backend = backends("a")
    proxy, address = start_limited_proxy(backend, proxies)
    with client.open_channel(address) as channel:  # one connection
        # Up first, so that the client knows the limit: streams sent before the worker's
        # SETTINGS arrive are refused beyond it (REFUSED_STREAM), not held back.
        assert client.whoami(channel) == "a"
        calls = [client.sleep_future(channel, SLEEP, timeout=SLEEP) for _ in range(SLEEPING_CALLS)]
        try:
            reached = wait_until(lambda: backend.counter("sleeping") >= LIMIT, timeout=20)
            seen = [backend.counter("sleeping")]
            deadline = time.monotonic() + HOLD
            while time.monotonic() < deadline:
                seen.append(backend.counter("sleeping"))
                time.sleep(0.1)
        finally:
            for call in calls:
                call.cancel()
        assert reached, f"{seen}\n{proxy.output()}"
        assert max(seen) == LIMIT, f"sleeping calls seen at the backend: {seen}"
        # The calls beyond the limit waited in the client, which cancelled them. A few may have
        # been refused instead (REFUSED_STREAM) while the worker still held the warm-up
        # call's ended stream (grpc core's overload protection, see worker/server.py): never
        # any other failure, and never most of them.
        failed = [describe_outcome(call) for call in calls if not call.cancelled()]
        assert set(failed) <= {REFUSED}, f"{failed}\n{proxy.output()}"
        assert len(failed) < (SLEEPING_CALLS - LIMIT) / 2, failed
        # Once the cancels have gone through, the connection takes new calls. Until the worker
        # has released the cancelled streams, grpc core still counts them and refuses new
        # ones (REFUSED_STREAM: UNAVAILABLE here, see worker/server.py): a few milliseconds.
        assert wait_until(lambda: backend.counter("sleeping") == 0, timeout=10)
        answer = wait_until(lambda: whoami_unless_refused(channel), timeout=RELEASE_TIMEOUT)
        assert answer == "a", proxy.output()


async def test_idle_streams_beyond_the_limit_cost_the_worker_no_memory(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    backend = backends("a")
    proxy, address = start_limited_proxy(backend, proxies)
    [worker] = proxy.workers()
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.use_local_subchannel_pool", 1)]
    ) as channel:
        bidi = channel.stream_stream(client.method("Bidi"), request_serializer=None,
                                     response_deserializer=None)
        await channel.unary_unary(client.method("Whoami"), request_serializer=None,
                                  response_deserializer=None)(b"", timeout=10)
        new_calls = NewCalls(backend)
        before = rss_bytes(worker)
        # request_iterator=None: the stream stays open for writes that never come.
        streams = [bidi(request_iterator=None, timeout=SLEEP) for _ in range(IDLE_STREAMS)]
        try:
            deadline = time.monotonic() + 20
            while (await asyncio.to_thread(new_calls.count) < LIMIT
                   and time.monotonic() < deadline):
                await asyncio.sleep(0.1)
            await asyncio.sleep(HOLD)  # time for any stream beyond the limit to show up
            reached = await asyncio.to_thread(new_calls.count)
            grown = rss_bytes(worker) - before
        finally:
            for stream in streams:
                stream.cancel()
    print(f"\n{IDLE_STREAMS} idle streams, limit {LIMIT}: {reached} reached the backend, "
          f"worker RSS +{grown / 2**20:.1f} MiB")
    assert reached == LIMIT, proxy.output()
    assert grown < MAX_RSS_GROWTH, f"worker RSS grew {grown / 2**20:.1f} MiB"
