"""--event-loop and --grpc-engine: the workers really run on what was asked for, and proxy the
same either way.

gRPC's own `tcp` trace names the source file of each socket operation: iomgr's endpoint is
`tcp_posix.cc`, the EventEngine's is not. "Unknown experiment" in the log would mean a grpcio
that no longer knows the experiments `--grpc-engine iomgr` switches off.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness import client
from harness.fixtures import grpcio_plane
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = [pytest.mark.timeout(120), grpcio_plane]


def serve_and_call(backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
                   option: tuple[str, ...], serving: str) -> str:
    """Two workers with `option`: a unary and a streaming call through them; the output once
    both workers logged `serving` in their start-up line."""
    port = free_port()
    proxy = proxies(*proxy_args(route(port, backends("a")), workers=2), *option)
    address = f"127.0.0.1:{port}"
    proxy.wait_serving(address)
    with client.open_channel(address) as channel:
        assert client.echo(channel, b"ping")[0] == b"ping"
        assert client.server_stream(channel, 5) == [b"0", b"1", b"2", b"3", b"4"]
    served = wait_until(lambda: proxy.output().count(serving) == 2, timeout=10)
    assert served, proxy.output()[-3000:]
    return proxy.output()


@pytest.mark.parametrize(("option", "loop"), [
    ((), "uvloop"),  # the default, auto: uvloop is a dependency on Linux
    (("--event-loop", "uvloop"), "uvloop"),
    (("--event-loop", "asyncio"), "asyncio"),
])
def test_workers_serve_on_the_loop_asked_for(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
    option: tuple[str, ...], loop: str,
) -> None:
    serve_and_call(backends, proxies, option, f"endpoints, {loop} loop,")


@pytest.mark.parametrize(("option", "engine"), [
    ((), "iomgr"),  # the default
    (("--grpc-engine", "iomgr"), "iomgr"),
    (("--grpc-engine", "event-engine"), "event-engine"),
])
def test_workers_run_grpc_on_the_engine_asked_for(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
    monkeypatch: pytest.MonkeyPatch, option: tuple[str, ...], engine: str,
) -> None:
    monkeypatch.setenv("GRPC_VERBOSITY", "debug")
    monkeypatch.setenv("GRPC_TRACE", "tcp")
    output = serve_and_call(backends, proxies, option, f"loop, gRPC on {engine})")
    assert "Unknown experiment" not in output
    assert ("tcp_posix.cc" in output) == (engine == "iomgr"), output[-3000:]
