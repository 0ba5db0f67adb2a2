"""Unary methods learned from the backends' server reflection drive the workers' handlers.

The backends can be made to lie (``--declare-unary ClientStream``): a client-streaming call of
three messages through the proxy then reaches the backend as one message, because the proxy
believed them and serves the method with a unary handler (grpc's unary handlers read the first
request message). That is how these tests see which handler a worker chose; the honest case is
covered by the transparency tests' ``learned-unary`` mode.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness import client
from harness.fixtures import grpcio_plane
from harness.peers import Launcher, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = [pytest.mark.timeout(120), grpcio_plane]

LEARNED = "methods as unary, learned by reflection"
LYING = ("--reflection", "--declare-unary", "ClientStream")
HONEST = ("--reflection",)
MESSAGES = [b"one", b"two", b"three"]


def start(launcher: Launcher, proxies: Callable[..., Proxy], *backend_args: tuple[str, ...],
          extra: tuple[str, ...] = ()) -> tuple[Proxy, str]:
    servers = [launcher.start_backend(f"b{i}", extra_args=args)
               for i, args in enumerate(backend_args)]
    port = free_port()
    proxy = proxies(*proxy_args(route(port, *servers), workers=2), *extra)
    address = f"127.0.0.1:{port}"
    proxy.wait_serving(address)
    return proxy, address


def learned_by_both_workers(proxy: Proxy) -> bool:
    return bool(wait_until(lambda: proxy.output().count(LEARNED) >= 2, timeout=15))


def test_methods_all_backends_declare_unary_are_served_unary(
    launcher: Launcher, proxies: Callable[..., Proxy],
) -> None:
    proxy, address = start(launcher, proxies, LYING, LYING)
    assert learned_by_both_workers(proxy), proxy.output()
    assert "/test.Echo/ClientStream" in proxy.output()
    with client.open_channel(address) as channel:
        assert client.echo(channel, b"still fine")[0] == b"still fine"
        for _ in range(4):  # every worker, whichever accepted the connection
            assert client.client_stream(channel, MESSAGES)[0] == 1, proxy.output()


def test_a_method_any_backend_declares_streaming_stays_transparent(
    launcher: Launcher, proxies: Callable[..., Proxy],
) -> None:
    proxy, address = start(launcher, proxies, LYING, HONEST)
    assert learned_by_both_workers(proxy), proxy.output()
    with client.open_channel(address) as channel:
        for _ in range(4):  # both backends, round robin
            assert client.client_stream(channel, MESSAGES)[0] == len(MESSAGES), proxy.output()


def test_learning_can_be_switched_off(
    launcher: Launcher, proxies: Callable[..., Proxy],
) -> None:
    proxy, address = start(launcher, proxies, LYING, extra=("--no-learn-unary-methods",))
    with client.open_channel(address) as channel:
        for _ in range(4):
            assert client.client_stream(channel, MESSAGES)[0] == len(MESSAGES)
    assert LEARNED not in proxy.output()
