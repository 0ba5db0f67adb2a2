"""A large endpoint update: the pool switches at once and opens channels in batches.

Runs the real `BackendPool` in-process with real grpc.aio channels: one to a real grpc.aio
backend on loopback, the rest to silent loopback addresses (127.1.x.y, a port nothing listens
on: a connection attempt only gets a reset).
"""

from __future__ import annotations

import asyncio
import time

import grpc
import grpc.aio
import pytest

from gproxy_mp.model import Endpoint, build_endpoint_set
from gproxy_mp.worker.channels import OPEN_BATCH, BackendPool
from harness.processes import free_port

pytestmark = pytest.mark.timeout(60)

SILENT = 1_000
REAL_HOST = "127.2.0.1"
MAX_TURNS = 100
"""Loop turns the background opening may take (1,000 backends in batches of 100 need ~10)."""


def silent_endpoints(count: int, port: int) -> list[Endpoint]:
    return [Endpoint(f"127.1.{i // 250}.{i % 250 + 1}", port) for i in range(count)]


async def echo_backend() -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.S", {
        "Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request)}),))
    port = server.add_insecure_port(f"{REAL_HOST}:0")
    await server.start()
    return server, port


async def test_a_large_update_opens_a_batch_now_and_the_rest_between_other_work() -> None:
    pool = BackendPool(close_grace=0)
    endpoints = build_endpoint_set(silent_endpoints(SILENT, free_port()))
    try:
        started = time.perf_counter()
        added = pool.update(endpoints)
        seconds = time.perf_counter() - started
        assert len(added) == len(pool) == SILENT
        opened = sum(b._channel is not None for b in added)
        assert opened == OPEN_BATCH, f"{opened} opened during the update ({seconds:.3f} s)"
        for _ in range(MAX_TURNS):
            if all(b._channel is not None for b in added):
                break
            await asyncio.sleep(0)
        assert all(b._channel is not None for b in added)
    finally:
        await pool.close(0)


async def test_a_backend_picked_before_its_batch_opens_on_the_spot_and_answers() -> None:
    server, port = await echo_backend()
    pool = BackendPool(close_grace=0)
    real = Endpoint(REAL_HOST, port)
    try:
        # The real backend sorts after the silent 127.1.*, so it is not in the first batch.
        pool.update(build_endpoint_set([*silent_endpoints(OPEN_BATCH * 3, free_port()), real]))
        backend = next(b for b in pool._order if b.endpoint == real)
        assert backend._channel is None
        echo = backend.channel.unary_unary("/t.S/Echo", None, None)
        assert await echo(b"hi", timeout=10, wait_for_ready=True) == b"hi"
    finally:
        await pool.close(0)
        await server.stop(0)


async def test_backends_removed_before_their_batch_are_never_opened() -> None:
    pool = BackendPool(close_grace=0)
    first = build_endpoint_set(silent_endpoints(OPEN_BATCH * 5, free_port()))
    try:
        added = pool.update(first)
        pool.update(())  # gone before the loop turned: nothing left to open
        for _ in range(MAX_TURNS):
            await asyncio.sleep(0)
        assert sum(b._channel is not None for b in added) == OPEN_BATCH
        assert all(b.closed for b in added)
    finally:
        await pool.close(0)
