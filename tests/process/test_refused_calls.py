"""Calls the proxy itself refuses are counted in /metrics as what the client saw.

The proxy accepts up to 256 KiB of metadata per hop (README "metadata"). A call with more is
refused with RESOURCE_EXHAUSTED, before any backend is picked: ``gproxy_calls_total`` must
count it as ``code="RESOURCE_EXHAUSTED", backend=""``. It used to count it as CANCELLED: gRPC
core refused the header block itself and only cancelled the handler, which cannot tell that
from a client's cancel. Both shapes of forwarding are covered: the stream-shaped one and the
unary one of methods declared with ``--unary-methods``, and the native data plane's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import grpc
import pytest

from harness import client
from harness.admin import admin_get
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

OVERSIZED = (("x-big", "t" * 300 * 1024),)
"""300 KiB of metadata: more than the proxy's 256 KiB."""
CLIENT_LIMITS = [("grpc.max_metadata_size", 4 << 20), ("grpc.absolute_max_metadata_size", 4 << 20),
                 ("grpc.use_local_subchannel_pool", 1)]
"""The client's own limits raised, so that only the proxy's limit is in play."""
CALLS = 3


def calls_by_code(admin: str) -> dict[tuple[str, str], float]:
    """``gproxy_calls_total`` as {(backend, code): count}."""
    found: dict[tuple[str, str], float] = {}
    for line in admin_get(admin, "/metrics").splitlines():
        match = re.match(r'gproxy_calls_total\{backend="([^"]*)",code="([^"]*)",.*\} (\S+)$', line)
        if match:
            found[(match[1], match[2])] = float(match[3])
    return found


@pytest.mark.parametrize("option", [("--data-plane", "grpcio"),
                                    ("--unary-methods", "/test.Echo/Unary", "--data-plane",
                                     "grpcio"),
                                    ("--data-plane", "native")],
                         ids=["stream-shaped", "declared-unary", "native"])
def test_a_call_refused_for_oversized_metadata_is_counted_as_resource_exhausted(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy], option: tuple[str, ...]
) -> None:
    backend = backends("a")
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, backend), workers=1, admin_address=admin), *option)
    proxy.wait_serving(address)
    calls_before = backend.counter("calls")  # counts itself too
    seen = []
    with grpc.insecure_channel(address, options=CLIENT_LIMITS) as channel:
        for _ in range(CALLS):
            try:
                client.unary_unary(channel, "Unary")(b"m", metadata=OVERSIZED, timeout=10)
                seen.append("OK")
            except grpc.RpcError as error:
                seen.append(error.code().name)
    assert seen == ["RESOURCE_EXHAUSTED"] * CALLS, proxy.output()
    counted = wait_until(lambda: calls_by_code(admin).get(("", "RESOURCE_EXHAUSTED")) == CALLS,
                         timeout=10)
    assert counted, f"{calls_by_code(admin)}\n{proxy.output()}"
    assert ("", "CANCELLED") not in calls_by_code(admin)
    # Only this Stats call is new: no refused call got through.
    assert backend.counter("calls") == calls_before + 1


OVERSIZED_ANSWER = 300 * 1024
"""Bytes of response headers or trailers a backend sends: more than the proxy's 256 KiB."""


@pytest.mark.parametrize("option", [("--data-plane", "grpcio"),
                                    ("--unary-methods", "/test.Echo/Fail", "--data-plane",
                                     "grpcio"),
                                    ("--data-plane", "native")],
                         ids=["stream-shaped", "declared-unary", "native"])
@pytest.mark.parametrize("part", ["headers", "trailers-only", "trailers"])
def test_a_backend_answer_with_oversized_metadata_is_counted_against_that_backend(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy], option: tuple[str, ...],
    part: str,
) -> None:
    backend = backends("a")
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, backend), workers=1, admin_address=admin), *option)
    proxy.wait_serving(address)
    big_trailer = (b"t" * OVERSIZED_ANSWER).hex()
    spec = {"headers": {"code": "NOT_FOUND", "header_bytes": OVERSIZED_ANSWER},
            "trailers-only": {"code": "NOT_FOUND", "details_bin": big_trailer},
            "trailers": {"code": "NOT_FOUND", "header_bytes": 10, "details_bin": big_trailer},
            }[part]
    seen = []
    with grpc.insecure_channel(address, options=CLIENT_LIMITS) as channel:
        for _ in range(CALLS):
            try:
                client.unary_unary(channel, "Fail")(json.dumps(spec).encode(), timeout=10)
                seen.append("OK")
            except grpc.RpcError as error:
                seen.append(error.code().name)
    assert seen == ["RESOURCE_EXHAUSTED"] * CALLS, proxy.output()
    counted = wait_until(lambda: calls_by_code(admin).get(
        (backend.address, "RESOURCE_EXHAUSTED")) == CALLS, timeout=10)
    assert counted, f"{calls_by_code(admin)}\n{proxy.output()}"
    assert ("", "RESOURCE_EXHAUSTED") not in calls_by_code(admin)
