"""A backend that ends a call while the client is still sending keeps its status unchanged.

grpc.aio overwrites a call's status with INTERNAL "Internal error from Core" when a write fails
because the backend has already answered; the proxy must forward what the backend said.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from harness import client
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port

pytestmark = [pytest.mark.timeout(120), both_planes]

CALLS = 300
"""Calls per case: the race, before the fix, hit roughly one call in ten."""
MESSAGES = 50
"""Request messages each call tries to send after the backend has already answered."""


def requests() -> Iterator[bytes]:
    for _ in range(MESSAGES):
        yield b"x" * 1024


def test_an_early_error_of_a_streaming_call_reaches_the_client_unchanged(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, backends("a")), workers=1))
    proxy.wait_serving(address)
    seen: dict[tuple[grpc.StatusCode, str], int] = {}
    with client.open_channel(address) as channel:
        unknown = client.stream_unary(channel, "Nope")
        for _ in range(CALLS):
            try:
                unknown(requests(), timeout=10)
            except grpc.RpcError as error:
                key = (error.code(), error.details() or "")
                seen[key] = seen.get(key, 0) + 1
    assert list(seen) == [(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")], (
        f"{seen}\n{proxy.output()}")
