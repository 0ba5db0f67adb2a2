"""`/debug/endpoints` follows the resolver: a DNS change shows within a refresh or two.

The README's promise for the operator's view: each route's current endpoints and bus `seq`, its
resolver's provenance (the DNS answer, or "command line" for a static list), and per worker the
`seq` it has applied. Read over HTTP from the real CLI's admin port.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from harness.dnsmasq import DnsServer
from harness.fixtures import both_planes
from harness.peers import Proxy, proxy_args, route
from harness.processes import free_port
from harness.shared_port import SharedPortBackends
from harness.waiting import wait_until
from tests.dns.routes import dns_route, dns_target

pytestmark = [pytest.mark.timeout(120), both_planes]

NAME = "debug.test"
HOSTS = {"a": "127.0.0.2", "b": "127.0.0.3"}
REFRESH_INTERVAL = 1.0
"""Seconds of `--dns-refresh-rate`; the resolver jitters it by ±10%."""
CHANGE_TIMEOUT = 2 * REFRESH_INTERVAL * 1.1 + 1.0
"""Seconds within which the view must show a changed answer: two jittered refreshes, plus a
second for the lookup itself, the publish and this test's polling."""
STATUS_TIMEOUT = 5.0
"""Seconds for every worker's applied seq to catch up: workers report status every second."""
HTTP_TIMEOUT = 2.0
"""Seconds one admin request may take."""


def debug_endpoints(admin: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{admin}/debug/endpoints", timeout=HTTP_TIMEOUT) as r:
        assert r.headers["Content-Type"].startswith("application/json"), r.headers
        view: dict[str, Any] = json.loads(r.read())
        return view


def the_route(view: dict[str, Any]) -> dict[str, Any]:
    (only,) = view["routes"]
    assert isinstance(only, dict)
    return only


def route_view(admin: str) -> dict[str, Any]:
    """The one route's view; `{}` while the admin port does not answer yet."""
    try:
        return the_route(debug_endpoints(admin))
    except OSError:
        return {}


def workers_caught_up(admin: str, *, workers: int) -> dict[str, Any] | None:
    """The route's view once every one of `workers` has applied the route's seq, else None."""
    view = route_view(admin)
    if not view:
        return None
    applied = [w["applied_seq"] for w in view["workers"]]
    return view if len(applied) == workers and set(applied) == {view["seq"]} else None


def test_a_changed_dns_answer_shows_in_debug_endpoints_within_two_refreshes(
    dns_server: DnsServer, shared_port_backends: SharedPortBackends, proxies: Callable[..., Proxy]
) -> None:
    port, _ = shared_port_backends(HOSTS)
    dns_server.set_hosts([f"{HOSTS['a']} {NAME}"])
    listen, admin = free_port(), f"127.0.0.1:{free_port()}"
    target = dns_target(dns_server.port, NAME, port)
    proxy = proxies(*proxy_args(dns_route(listen, target), workers=2, admin_address=admin),
                    "--dns-refresh-rate", f"{REFRESH_INTERVAL:g}s")
    proxy.wait_serving(f"127.0.0.1:{listen}")

    first = wait_until(lambda: workers_caught_up(admin, workers=2), timeout=STATUS_TIMEOUT)
    assert first is not None, f"{route_view(admin)}\n{proxy.output()}"
    assert first["target"] == target, first
    assert first["endpoints"] == [f"{HOSTS['a']}:{port}"], first
    assert first["resolver"]["source"]["answer"] == [HOSTS["a"]], first

    dns_server.set_hosts([f"{host} {NAME}" for host in HOSTS.values()])
    changed_at = time.monotonic()
    wanted = sorted(f"{host}:{port}" for host in HOSTS.values())
    after = wait_until(lambda: (r := route_view(admin)).get("endpoints") == wanted and r,
                       timeout=CHANGE_TIMEOUT, interval=0.1)
    shown_in = time.monotonic() - changed_at
    report = f"{route_view(admin)}\n{proxy.output()}\n{dns_server.output()}"
    assert after, f"endpoints not {wanted} {shown_in:.1f}s after the change: {report}"
    assert after["resolver"]["source"]["answer"] == sorted(HOSTS.values()), report
    assert after["seq"] > first["seq"], report
    assert after["resolver"]["updates"] > first["resolver"]["updates"], report

    caught_up = wait_until(lambda: workers_caught_up(admin, workers=2), timeout=STATUS_TIMEOUT)
    assert caught_up is not None, f"workers never applied seq {after['seq']}: {report}"
    assert caught_up["seq"] == after["seq"], report
    assert {w["state"] for w in caught_up["workers"]} == {"ready"}, report


def test_a_static_target_shows_its_endpoints_listed_on_the_command_line(
    proxies: Callable[..., Proxy],
) -> None:
    # No backend needs to listen: the view shows the configured list, not reachability.
    listen, admin = free_port(), f"127.0.0.1:{free_port()}"
    addresses = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    proxy = proxies(*proxy_args(route(listen, *addresses), workers=1, admin_address=admin))

    view = wait_until(lambda: workers_caught_up(admin, workers=1), timeout=20)
    report = proxy.output()
    assert view is not None, report
    # The target is shown in its canonical form (addresses sorted), not as typed.
    assert view["target"] == f"static:///{','.join(sorted(addresses))}", view
    assert view["endpoints"] == sorted(addresses), view
    assert view["resolver"]["source"]["listed"] == "command line", view
    assert view["resolver"]["errors"] == 0, view
