"""Worker processes: one set per route, replaced when they die, gone with the supervisor."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from harness import client, procfacts
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.traffic import ThreadLoad
from harness.waiting import wait_until
from harness.whoami import private_channels, whoami

pytestmark = pytest.mark.timeout(120)

WORKERS = 3
REPLACE_TIMEOUT = 10.0
"""Seconds a killed worker may take to be replaced (backoff starts at 0.1 s)."""
ORPHAN_TIMEOUT = 10.0
"""Seconds workers may outlive a SIGKILLed supervisor."""
LOAD_CHANNELS = 6
CALLS_AFTER_REPLACEMENT = 60


def listening_workers(port: int, count: int) -> set[int] | None:
    found = procfacts.listeners(port)
    return found if len(found) == count else None


@pytest.fixture
def two_routes(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> tuple[Proxy, int, int]:
    first, second = backends("a"), backends("b")
    port_a, port_b = free_port(), free_port()
    proxy = proxies(*proxy_args(route(port_a, first), route(port_b, second), workers=WORKERS))
    assert proxy.wait_serving(f"127.0.0.1:{port_a}") == "a", proxy.output()
    assert proxy.wait_serving(f"127.0.0.1:{port_b}") == "b", proxy.output()
    return proxy, port_a, port_b


def test_each_route_has_its_own_workers_listening_and_the_supervisor_does_not_listen(
    two_routes: tuple[Proxy, int, int],
) -> None:
    proxy, port_a, port_b = two_routes
    on_a = wait_until(lambda: listening_workers(port_a, WORKERS), timeout=10)
    on_b = wait_until(lambda: listening_workers(port_b, WORKERS), timeout=10)
    report = (
        f"A={procfacts.listeners(port_a)} B={procfacts.listeners(port_b)} supervisor={proxy.pid}\n"
        f"{proxy.output()}"
    )
    assert on_a is not None and on_b is not None, report
    assert on_a.isdisjoint(on_b), report
    assert proxy.pid not in on_a | on_b, report
    assert on_a | on_b <= set(proxy.workers()), f"children={proxy.workers()} {report}"


def test_a_killed_worker_is_replaced_while_its_siblings_keep_serving(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, backends("a"), backends("b")), workers=WORKERS))
    proxy.wait_serving(address)
    before = wait_until(lambda: listening_workers(port, WORKERS), timeout=10)
    assert before is not None, f"listeners={procfacts.listeners(port)}\n{proxy.output()}"

    with ThreadLoad(
        private_channels(address), whoami,
        threads=1, channels_per_thread=LOAD_CHANNELS, failure_pause=0.0, max_calls=20_000,
    ) as load:
        assert wait_until(lambda: len(load.outcomes()) >= 30, timeout=10), (
            f"no load\n{proxy.output()}"
        )
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        after = wait_until(
            lambda: (found := listening_workers(port, WORKERS)) and victim not in found and found,
            timeout=REPLACE_TIMEOUT,
        )
        replaced_in = time.monotonic() - killed_at
        done_at_replacement = len(load.outcomes())
        wait_until(
            lambda: len(load.outcomes()) >= done_at_replacement + CALLS_AFTER_REPLACEMENT,
            timeout=10,
        )

    failures = [(o.started, o.error) for o in load.failures()]
    done = len(load.outcomes())
    report = (
        f"victim={victim} before={before} now={procfacts.listeners(port)} calls={done} "
        f"failures={[(round(t - killed_at, 3), text) for t, text in failures]}\n"
        f"{proxy.output()}"
    )
    assert after, f"not replaced within {REPLACE_TIMEOUT}s: {report}"
    assert after - before, f"no new worker pid: {report}"
    assert replaced_in <= REPLACE_TIMEOUT, report
    # A connection to the killed worker may lose the call in flight on it; nothing else may fail.
    assert all(text.startswith("UNAVAILABLE") for _, text in failures), report
    assert len(failures) <= LOAD_CHANNELS, report
    assert all(started >= killed_at - 0.5 for started, _ in failures), report
    assert done >= done_at_replacement + CALLS_AFTER_REPLACEMENT, report
    with client.open_channel(address) as channel:
        assert client.whoami_counts([channel], calls=10), report


def test_no_worker_outlives_a_killed_supervisor(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    port = free_port()
    proxy = proxies(*proxy_args(route(port, backends("a")), workers=WORKERS))
    proxy.wait_serving(f"127.0.0.1:{port}")
    assert wait_until(lambda: listening_workers(port, WORKERS), timeout=10), proxy.output()
    workers = proxy.workers()
    assert workers, proxy.output()

    os.kill(proxy.pid, signal.SIGKILL)
    proxy.wait(timeout=5)
    orphans_gone = wait_until(
        lambda: not proxy.surviving_descendants() and not procfacts.listeners(port),
        timeout=ORPHAN_TIMEOUT,
    )
    assert orphans_gone, (
        f"workers {workers}: still alive {proxy.surviving_descendants()}, "
        f"listening {procfacts.listeners(port)}\n{proxy.output()}"
    )
