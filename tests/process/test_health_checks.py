"""`--health-check`: backends that say NOT_SERVING get no calls until they say SERVING again.

Real backends with gRPC's own health service (`harness.backend.health`, grpcio-health-checking's
servicer); a test flips one backend's answer by calling it directly, while a load of calls runs
through the proxy. A backend without the health service counts as serving. Every test runs on
both data planes, with the same assertions.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import grpc
import pytest

from harness import client
from harness.admin import admin_get, route_view
from harness.backend.health import SET_HEALTH_METHOD
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.traffic import ThreadLoad
from harness.waiting import wait_until
from harness.whoami import private_channels, whoami

pytestmark = [pytest.mark.timeout(120), both_planes]

INTERVAL = "300ms"
TAKE_EFFECT = 3.0
"""Seconds within which a changed answer must show in where calls go: an interval and a
check's round trip, with room for a loaded machine."""
QUIET = 1.0


def set_health(backend: Backend, status: str) -> None:
    with client.open_channel(backend.address) as channel:
        channel.unary_unary(SET_HEALTH_METHOD)(status.encode(), timeout=5)


def served_by(load: ThreadLoad, since: float) -> set[str]:
    return load.backends(since=since)


def test_a_backend_not_serving_gets_no_calls_until_it_serves_again(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy]
) -> None:
    a = backends("a", extra_args=["--health"])
    b = backends("b", extra_args=["--health"])
    port = free_port()
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, a, b), workers=2), "--health-check",
                    "--health-check-interval", INTERVAL)
    proxy.wait_serving(address)
    with ThreadLoad(private_channels(address), whoami, threads=4, max_seconds=60) as load:
        assert load.wait_answer_from("a", since=0.0, timeout=10), load.summary()
        assert load.wait_answer_from("b", since=0.0, timeout=10), load.summary()

        set_health(a, "NOT_SERVING")
        changed = time.monotonic()
        quiet = load.wait_quiet("a", quiet=QUIET, others=50, timeout=TAKE_EFFECT + QUIET)
        assert quiet, f"{load.summary(changed)}\n{proxy.output()}"
        assert served_by(load, time.monotonic() - QUIET) == {"b"}, load.summary(changed)

        set_health(a, "SERVING")
        back = time.monotonic()
        assert load.wait_answer_from("a", since=back, timeout=TAKE_EFFECT), (
            f"{load.summary(back)}\n{proxy.output()}")
    assert load.failures() == [], load.summary()
    log = proxy.stderr()
    assert "health check failed (NOT_SERVING): out of the pick" in log, log
    assert "health check passed (SERVING): back in the pick" in log, log


def test_backends_without_the_health_service_count_as_serving(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy]
) -> None:
    a, b = backends("a"), backends("b")
    port = free_port()
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, a, b), workers=1), "--health-check",
                    "--health-check-interval", INTERVAL)
    proxy.wait_serving(address)
    time.sleep(1.0)  # several checks answered UNIMPLEMENTED
    with client.open_channel(address) as channel:
        counts = client.whoami_counts([channel], calls=40)
    assert counts == {"a": 20, "b": 20}, f"{counts}\n{proxy.output()}"
    assert "out of the pick" not in proxy.stderr()


def test_debug_endpoints_shows_which_workers_count_a_backend_unhealthy(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy]
) -> None:
    a = backends("a", extra_args=["--health"])
    b = backends("b", extra_args=["--health"])
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, a, b), workers=2, admin_address=admin),
                    "--health-check", "--health-check-interval", INTERVAL)
    proxy.wait_serving(address)
    assert route_view(admin)["unhealthy_endpoints"] == {}
    names = sorted(w["worker"] for w in route_view(admin)["workers"])

    set_health(a, "NOT_SERVING")
    expected = {a.address: dict.fromkeys(names, "not_serving")}
    # A status report comes every second: within TAKE_EFFECT + 1 s both workers tell.
    assert wait_until(lambda: route_view(admin)["unhealthy_endpoints"] == expected,
                      timeout=TAKE_EFFECT + 1.0), f"{route_view(admin)}\n{proxy.output()}"
    workers = route_view(admin)["workers"]
    assert [w["unhealthy_backends"] for w in workers] == [1, 1], workers

    set_health(a, "SERVING")
    assert wait_until(lambda: route_view(admin)["unhealthy_endpoints"] == {},
                      timeout=TAKE_EFFECT + 1.0), f"{route_view(admin)}\n{proxy.output()}"


PANIC_REPORTED = TAKE_EFFECT + 1.0
"""Seconds within which every worker's status report (each second) shows a changed verdict."""
COUNTED_INTERVAL = "1s"
"""The check interval of tests that count log lines: each check may take up to the interval,
so a loaded machine does not turn a slow answer into a failed check (a new cause, a new line)."""


def route_panic(admin: str) -> float | None:
    """The route's ``gproxy_route_panic`` sample (None: not exposed)."""
    for line in admin_get(admin, "/metrics").splitlines():
        if line.startswith("gproxy_route_panic{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_an_unknown_health_service_is_panic_calls_go_to_all_and_it_says_why(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy]
) -> None:
    a = backends("a", extra_args=["--health"])
    b = backends("b", extra_args=["--health"])
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, a, b), workers=2, admin_address=admin),
                    "--health-check=nosuch.Svc", "--health-check-interval", COUNTED_INTERVAL)
    proxy.wait_serving(address)
    names = sorted(w["worker"] for w in route_view(admin)["workers"])
    expected = {backend.address: dict.fromkeys(names, "unknown_service") for backend in (a, b)}
    assert wait_until(lambda: route_view(admin)["unhealthy_endpoints"] == expected,
                      timeout=PANIC_REPORTED), f"{route_view(admin)}\n{proxy.output()}"
    assert wait_until(lambda: route_panic(admin) == 1.0, timeout=PANIC_REPORTED), (
        f"{admin_get(admin, '/metrics')}\n{proxy.output()}")
    assert route_view(admin)["panic"] is True, route_view(admin)
    with client.open_channel(address) as channel:  # panic: calls still go to every backend
        counts = client.whoami_counts([channel], calls=20)
    assert set(counts) == {"a", "b"}, f"{counts}\n{proxy.output()}"

    time.sleep(3.5)  # several more checks, each answered NOT_FOUND: no more lines
    log = proxy.stderr()
    panics = [line for line in log.splitlines() if "panic" in line]
    assert len(panics) == 2, log  # one per worker
    assert all("unknown_service" in line for line in panics), log
    for backend in (a, b):
        failed = [line for line in log.splitlines()
                  if f"backend {backend.address}: health check failed" in line]
        assert len(failed) == 2, log  # once per worker
        assert all("unknown service" in line for line in failed), log


def test_every_backend_not_serving_is_panic_until_one_serves_again(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy]
) -> None:
    a = backends("a", extra_args=["--health"])
    b = backends("b", extra_args=["--health"])
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, a, b), workers=1, admin_address=admin),
                    "--health-check", "--health-check-interval", COUNTED_INTERVAL)
    proxy.wait_serving(address)
    assert wait_until(lambda: route_panic(admin) == 0.0, timeout=PANIC_REPORTED), (
        f"{admin_get(admin, '/metrics')}\n{proxy.output()}")

    set_health(a, "NOT_SERVING")
    set_health(b, "NOT_SERVING")
    assert wait_until(lambda: route_panic(admin) == 1.0, timeout=PANIC_REPORTED), proxy.output()
    assert route_view(admin)["unhealthy_endpoints"] == {
        a.address: {"0#0": "not_serving"}, b.address: {"0#0": "not_serving"}}
    with client.open_channel(address) as channel:
        counts = client.whoami_counts([channel], calls=20)
    assert counts == {"a": 10, "b": 10}, f"{counts}\n{proxy.output()}"

    set_health(a, "SERVING")
    assert wait_until(lambda: route_panic(admin) == 0.0, timeout=PANIC_REPORTED), proxy.output()
    with client.open_channel(address) as channel:
        counts = client.whoami_counts([channel], calls=20)
    assert counts == {"a": 20}, f"{counts}\n{proxy.output()}"
    log = proxy.stderr()
    assert len([line for line in log.splitlines() if "panic:" in line]) == 1, log
    assert "panic over" in log, log


def test_a_refused_or_stopped_backend_is_listed_failing_not_not_serving(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy]
) -> None:
    live = backends("live", extra_args=["--health"])
    stopped = backends("stopped", extra_args=["--health"])
    dead = f"127.0.0.1:{free_port()}"
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, dead, live, stopped), workers=1,
                                admin_address=admin),
                    "--health-check", "--health-check-interval", INTERVAL)
    proxy.wait_serving(address)
    assert wait_until(lambda: route_view(admin)["unhealthy_endpoints"] == {
        dead: {"0#0": "failing"}}, timeout=PANIC_REPORTED), (
        f"{route_view(admin)}\n{proxy.output()}")

    os.kill(stopped.pid, signal.SIGSTOP)  # a hung backend: its connection stays up
    try:
        assert wait_until(lambda: route_view(admin)["unhealthy_endpoints"] == {
            dead: {"0#0": "failing"}, stopped.address: {"0#0": "failing"}},
            timeout=PANIC_REPORTED), f"{route_view(admin)}\n{proxy.output()}"
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    assert route_panic(admin) == 0.0, proxy.output()


RARE_INTERVAL = "60s"
"""An interval longer than any wait in the test: a verdict that changes came from a check made
at once, not from the interval."""


def answers(address: str) -> str | None:
    """Who answers one call through the proxy (None: the call failed)."""
    with client.open_channel(address) as channel:
        try:
            return client.whoami(channel, timeout=2)
        except grpc.RpcError:
            return None


def test_a_backend_is_checked_at_once_when_a_new_connection_to_it_comes_up(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy]
) -> None:
    a = backends("a", extra_args=["--health"])
    set_health(a, "NOT_SERVING")  # before the proxy: its first check says so
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, a), workers=1, admin_address=admin),
                    "--health-check", "--health-check-interval", RARE_INTERVAL)
    proxy.wait_serving(address)  # panic: the calls still go to it
    assert wait_until(lambda: route_view(admin)["unhealthy_endpoints"] == {
        a.address: {"0#0": "not_serving"}}, timeout=PANIC_REPORTED), proxy.output()

    a.stop()
    again = backends("a-again", extra_args=["--health"], port=a.port)  # SERVING from its start
    assert wait_until(lambda: answers(address) == "a-again", timeout=TAKE_EFFECT), (
        proxy.output())
    assert wait_until(lambda: route_view(admin)["unhealthy_endpoints"] == {},
                      timeout=PANIC_REPORTED), f"{route_view(admin)}\n{proxy.output()}"
    assert wait_until(lambda: "health check passed (SERVING): back in the pick"
                      in proxy.stderr(), timeout=PANIC_REPORTED), proxy.output()
    assert again.address == a.address
