"""Calls are spread round robin per call, across workers and connections."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness import client
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port

pytestmark = [pytest.mark.timeout(120), both_planes]

BACKEND_NAMES = ("a", "b", "c")
CHANNELS = 6
CALLS = 600
TOLERANCE = 0.25
"""Allowed deviation of each backend's share from an even split."""
SINGLE_CHANNEL_CALLS = 90


@pytest.fixture
def balanced(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> tuple[Proxy, str]:
    servers = [backends(name) for name in BACKEND_NAMES]
    port = free_port()
    proxy = proxies(*proxy_args(route(port, *servers), workers=2))
    address = f"127.0.0.1:{port}"
    proxy.wait_serving(address)
    return proxy, address


def test_calls_over_many_connections_are_spread_evenly_over_the_backends(
    balanced: tuple[Proxy, str],
) -> None:
    proxy, address = balanced
    channels = [client.open_channel(address) for _ in range(CHANNELS)]
    try:
        counts = client.whoami_counts(channels, calls=CALLS)
    finally:
        for channel in channels:
            channel.close()
    even = CALLS / len(BACKEND_NAMES)
    low, high = even * (1 - TOLERANCE), even * (1 + TOLERANCE)
    assert set(counts) == set(BACKEND_NAMES), f"{counts}\n{proxy.output()}"
    assert all(low <= count <= high for count in counts.values()), (
        f"{counts} not within {low:.0f}..{high:.0f}\n{proxy.output()}"
    )


def test_calls_on_one_connection_reach_every_backend(balanced: tuple[Proxy, str]) -> None:
    proxy, address = balanced
    with client.open_channel(address) as channel:
        counts = client.whoami_counts([channel], calls=SINGLE_CHANNEL_CALLS)
    assert set(counts) == set(BACKEND_NAMES), f"{counts}\n{proxy.output()}"
