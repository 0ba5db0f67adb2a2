"""`ask_reflection` against a real grpc.aio server that offers reflection (v1alpha only, as
grpcio-reflection does), in-process on loopback, many times over: the v1 attempt ends
UNIMPLEMENTED in one of two ways (an error on write or read, or a clean end of stream when the
status wins the race), and either way v1alpha must be asked next."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from gproxy_mp.worker.reflection import ask_reflection
from harness.backend.reflection import enable_reflection

pytestmark = pytest.mark.timeout(60)

ROUNDS = 40


async def test_every_conversation_falls_back_to_v1alpha_and_gets_the_shapes() -> None:
    server = grpc.aio.server()
    enable_reflection(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for _ in range(ROUNDS):
                shapes = await ask_reflection(channel, timeout=10)
                assert shapes is not None
                assert shapes["/test.Echo/Unary"] is True
                assert shapes["/test.Echo/Bidi"] is False
    finally:
        await server.stop(0)


async def test_a_server_without_reflection_is_told_apart() -> None:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for _ in range(5):
                assert await ask_reflection(channel, timeout=10) is None
    finally:
        await server.stop(0)
