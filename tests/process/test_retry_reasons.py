"""`gproxy_retries_total{reason}` means the same on both planes: `connect` when the attempt
found no connection to its backend, `unavailable` when the backend answered UNAVAILABLE
(README "Metrics" says which reasons each plane can tell apart).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import grpc
import pytest

from harness import client
from harness.admin import admin_get
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

CALLS = 6


def retries_by_reason(admin: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in admin_get(admin, "/metrics").splitlines():
        match = re.match(r'gproxy_retries_total\{.*reason="([^"]*)".*\} (\S+)$', line)
        if match and float(match[2]):
            found[match[1]] = found.get(match[1], 0.0) + float(match[2])
    return found


def call_through(address: str) -> list[str]:
    outcomes = []
    with client.open_channel(address) as channel:
        for _ in range(CALLS):
            try:
                outcomes.append(client.whoami(channel, timeout=10))
            except grpc.RpcError as error:
                outcomes.append(error.code().name)
    return outcomes


def serve(proxies: Callable[..., Proxy], *targets: Backend | str) -> tuple[Proxy, str, str]:
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    proxy = proxies(*proxy_args(route(port, *targets), workers=1, admin_address=admin))
    assert wait_until(lambda: "serving on" in proxy.output(), timeout=20), proxy.output()
    return proxy, f"127.0.0.1:{port}", admin


@both_planes
def test_retries_after_failed_connects_are_counted_as_connect(
    proxies: Callable[..., Proxy]
) -> None:
    dead = [f"127.0.0.1:{free_port()}" for _ in range(2)]  # nothing listens there
    proxy, address, admin = serve(proxies, *dead)
    assert set(call_through(address)) == {"UNAVAILABLE"}, proxy.output()
    assert wait_until(lambda: retries_by_reason(admin), timeout=10), proxy.output()
    assert set(retries_by_reason(admin)) == {"connect"}, proxy.output()


@both_planes
def test_retries_after_an_unavailable_answer_are_counted_as_unavailable(
    backends: Callable[[str], Backend], unavailable_backends: Callable[[str], Backend],
    proxies: Callable[..., Proxy],
) -> None:
    proxy, address, admin = serve(proxies, unavailable_backends("x"), backends("a"))
    proxy.wait_serving(address)
    assert set(call_through(address)) == {"a"}, proxy.output()
    assert wait_until(lambda: retries_by_reason(admin), timeout=10), proxy.output()
    assert set(retries_by_reason(admin)) == {"unavailable"}, proxy.output()
