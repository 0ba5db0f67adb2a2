"""--grpc-engine: the workers' gRPC really runs on the engine asked for, and proxies the same.

gRPC's own `tcp` trace names the source file of each socket operation: iomgr's endpoint is
`tcp_posix.cc`, the EventEngine's is not. "Unknown experiment" in the log would mean a grpcio
that no longer knows the experiments `--grpc-engine iomgr` switches off.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support import client
from tests.support.processes import Backend, Proxy, free_port, proxy_args, route
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


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
    port = free_port()
    proxy = proxies(*proxy_args(route(port, backends("a")), workers=2), *option)
    address = f"127.0.0.1:{port}"
    proxy.wait_serving(address)
    with client.open_channel(address) as channel:
        assert client.echo(channel, b"ping")[0] == b"ping"
        assert client.server_stream(channel, 5) == [b"0", b"1", b"2", b"3", b"4"]
    serving = f"loop, gRPC on {engine})"
    served = wait_until(lambda: proxy.output().count(serving) == 2, timeout=10)
    assert served, proxy.output()[-3000:]
    output = proxy.output()
    assert "Unknown experiment" not in output
    assert ("tcp_posix.cc" in output) == (engine == "iomgr"), output[-3000:]
