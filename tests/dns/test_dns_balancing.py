"""Calls follow the DNS answer: spread over its addresses, onto added ones, off removed ones."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from harness import client
from harness.dnsmasq import DnsServer
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy
from harness.processes import free_port
from harness.shared_port import SharedPortBackends
from harness.traffic import ThreadLoad
from harness.waiting import wait_until
from harness.whoami import private_channels, whoami
from tests.dns.routes import CHANGE_TIMEOUT, dns_proxy_args, dns_route, dns_target

pytestmark = [pytest.mark.timeout(120), both_planes]

HOSTS = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4"}
NAME = "backends.test"
SPREAD_CALLS = 60
TOLERANCE = 0.25
"""Allowed deviation of each backend's share from an even split."""
WARM_TIMEOUT = 15.0
"""Seconds for every backend in the answer to have answered once (channels connect lazily)."""
QUIET_CALLS = 40
"""Consecutive calls without a removed backend that show it left the pick list: round robin
over two backends would reach it every other call."""


def hosts_lines(*names: str) -> list[str]:
    return [f"{HOSTS[name]} {NAME}" for name in names]


def start(
    dns_server: DnsServer,
    shared_port_backends: SharedPortBackends,
    proxies: Callable[..., Proxy],
    *,
    answer: tuple[str, ...],
    drain_timeout: str = "2s",
) -> tuple[Proxy, str, dict[str, Backend]]:
    """Backends a, b, c on one port; the DNS answer holds `answer`; the proxy serves them all."""
    port, backends = shared_port_backends(HOSTS)
    dns_server.set_hosts(hosts_lines(*answer))
    listen = free_port()
    target = dns_target(dns_server.port, NAME, port)
    proxy = proxies(*dns_proxy_args(dns_route(listen, target), drain_timeout=drain_timeout))
    address = f"127.0.0.1:{listen}"
    proxy.wait_serving(address)
    with client.open_channel(address) as channel:
        seen: set[str] = set()

        def all_answered() -> bool:
            seen.add(client.whoami(channel, timeout=5))
            return seen >= set(answer)

        assert wait_until(all_answered, timeout=WARM_TIMEOUT), (
            f"only {seen} of {answer} answered\n{proxy.output()}"
        )
    return proxy, address, backends


def test_calls_on_one_channel_are_spread_evenly_over_the_addresses_in_the_answer(
    dns_server: DnsServer, shared_port_backends: SharedPortBackends, proxies: Callable[..., Proxy]
) -> None:
    proxy, address, _ = start(dns_server, shared_port_backends, proxies, answer=("a", "b"))
    with client.open_channel(address) as channel:
        counts = client.whoami_counts([channel], calls=SPREAD_CALLS)
    even = SPREAD_CALLS / 2
    low, high = even * (1 - TOLERANCE), even * (1 + TOLERANCE)
    assert set(counts) == {"a", "b"}, f"{counts}\n{proxy.output()}"
    assert all(low <= count <= high for count in counts.values()), (
        f"{counts} not within {low:.0f}..{high:.0f}\n{proxy.output()}"
    )


def test_an_address_added_to_the_answer_gets_calls_within_15s_and_no_call_fails(
    dns_server: DnsServer, shared_port_backends: SharedPortBackends, proxies: Callable[..., Proxy]
) -> None:
    proxy, address, _ = start(dns_server, shared_port_backends, proxies, answer=("a", "b"))
    with ThreadLoad(
        private_channels(address), whoami, threads=1, channels_per_thread=2, max_calls=50_000
    ) as loop:
        changed_at = time.monotonic()
        dns_server.set_hosts(hosts_lines("a", "b", "c"))
        reached = wait_until(lambda: loop.first_answer_from("c"), timeout=CHANGE_TIMEOUT + 5)
        seen = len(loop.outcomes())
        wait_until(lambda: len(loop.outcomes()) >= seen + QUIET_CALLS, timeout=10)
        loop.stop()
    report = f"{loop.summary()}\n{proxy.output()}\n{dns_server.output()}"
    assert loop.failures() == [], report
    assert reached is not None, f"c never answered; {report}"
    assert reached - changed_at < CHANGE_TIMEOUT, f"c answered after {reached - changed_at:.1f}s"
    assert set(loop.counts(since=reached)) == {"a", "b", "c"}, report


def test_an_address_removed_from_the_answer_stops_getting_calls_within_15s_and_no_call_fails(
    dns_server: DnsServer, shared_port_backends: SharedPortBackends, proxies: Callable[..., Proxy]
) -> None:
    proxy, address, backends = start(
        dns_server, shared_port_backends, proxies, answer=("a", "b", "c")
    )
    removed = backends["c"]
    with ThreadLoad(
        private_channels(address), whoami, threads=1, channels_per_thread=2, max_calls=50_000
    ) as loop:
        assert wait_until(lambda: loop.first_answer_from("c"), timeout=10), loop.summary()
        changed_at = time.monotonic()
        dns_server.set_hosts(hosts_lines("a", "b"))

        def quiet_since() -> float | None:
            last = max(loop.last_answer_from("c") or changed_at, changed_at)
            return last if loop.answers_returned_after(last) >= QUIET_CALLS else None

        last_reached = wait_until(quiet_since, timeout=CHANGE_TIMEOUT + 5)
        # The backend is still up; its own counter shows that calls stopped reaching it.
        calls_before = removed.counter("calls")
        seen = len(loop.outcomes())
        wait_until(lambda: len(loop.outcomes()) >= seen + QUIET_CALLS, timeout=10)
        calls_after = removed.counter("calls")
        loop.stop()
    report = f"{loop.summary()}\n{proxy.output()}\n{dns_server.output()}"
    assert loop.failures() == [], report
    assert last_reached is not None, f"c kept getting calls; {report}"
    assert last_reached - changed_at < CHANGE_TIMEOUT, (
        f"c got calls until {last_reached - changed_at:.1f}s after the change; {report}"
    )
    assert len(loop.outcomes()) >= seen + QUIET_CALLS, report
    assert calls_after == calls_before + 1, (  # + 1: the Stats call itself
        f"c served {calls_after - calls_before - 1} proxied calls after removal; {report}"
    )


def test_a_call_in_flight_on_a_removed_backend_completes(
    dns_server: DnsServer, shared_port_backends: SharedPortBackends, proxies: Callable[..., Proxy]
) -> None:
    # The grace a removed backend's channel gets is --drain-timeout; make it outlast the call.
    proxy, address, backends = start(
        dns_server, shared_port_backends, proxies, answer=("a", "b"), drain_timeout="10s"
    )
    removed = backends["b"]
    with client.open_channel(address) as channel:
        # Round robin on one channel: of two calls, one lands on each backend.
        sleeps = [client.sleep_future(channel, 3.0, timeout=15) for _ in range(2)]
        try:
            assert wait_until(lambda: removed.counter("sleeping") == 1, timeout=5), (
                f"no Sleep call reached b\n{proxy.output()}"
            )
            dns_server.set_hosts(hosts_lines("a"))
            answers: list[str] = []

            def removal_seen() -> bool:
                answers.append(client.whoami(channel, timeout=5))
                return answers[-QUIET_CALLS // 4 :] == ["a"] * (QUIET_CALLS // 4)

            assert wait_until(removal_seen, timeout=CHANGE_TIMEOUT), (
                f"b was not removed: {answers[-20:]}\n{proxy.output()}"
            )
            still_sleeping = removed.counter("sleeping")
            results = [future.result(timeout=15) for future in sleeps]
        finally:
            for future in sleeps:
                future.cancel()
    assert still_sleeping == 1, f"b's call ended before its removal\n{proxy.output()}"
    assert results == [b"slept", b"slept"], proxy.output()
    assert removed.counter("cancelled") == 0, proxy.output()
