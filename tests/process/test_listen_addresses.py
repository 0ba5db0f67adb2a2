"""Where a route listens: every address its listen host names, the same on both planes.

gRPC core (the grpcio plane) binds each address a listen host resolves to, and `localhost` as
both loopback addresses whatever /etc/hosts says (its resolver answers RFC 6761's special
name itself); the native plane's listener (`worker/planes/listener.py`) must bind the same.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args
from harness.processes import free_port

pytestmark = pytest.mark.timeout(60)


@both_planes
def test_a_localhost_route_serves_on_both_loopback_addresses(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    port = free_port()
    proxy = proxies(*proxy_args(f"localhost:{port}-static:///{backends('a').address}",
                                workers=1))
    assert proxy.wait_serving(f"127.0.0.1:{port}") == "a"
    assert proxy.wait_serving(f"[::1]:{port}", timeout=5) == "a"
