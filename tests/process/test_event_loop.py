"""--event-loop: the workers run on the loop asked for, and proxy the same either way."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support import client
from tests.support.processes import Backend, Proxy, free_port, proxy_args, route
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(("option", "loop"), [
    ((), "uvloop"),  # the default, auto: uvloop is a dependency on Linux
    (("--event-loop", "uvloop"), "uvloop"),
    (("--event-loop", "asyncio"), "asyncio"),
])
def test_workers_serve_on_the_loop_asked_for(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
    option: tuple[str, ...], loop: str,
) -> None:
    port = free_port()
    proxy = proxies(*proxy_args(route(port, backends("a")), workers=2), *option)
    address = f"127.0.0.1:{port}"
    proxy.wait_serving(address)
    with client.open_channel(address) as channel:
        assert client.echo(channel, b"ping")[0] == b"ping"
        assert client.server_stream(channel, 5) == [b"0", b"1", b"2", b"3", b"4"]
    serving = f"endpoints, {loop} loop,"
    assert wait_until(lambda: proxy.output().count(serving) == 2, timeout=10), proxy.output()
