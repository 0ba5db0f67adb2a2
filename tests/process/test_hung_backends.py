"""A backend that accepts TCP and never speaks HTTP/2 (or never finishes the TLS handshake).

The peer is `harness.silent.SilentListener`: a real listener that accepts and then says
nothing. Without a bound on connecting, gRPC's own connect timeout (20 s) let every call
queued on that backend wait out the client's whole deadline (DEADLINE_EXCEEDED), and
`/debug/endpoints` showed the backend healthy while it connected. With `--connect-timeout`
(default 2 s) the attempt fails UNAVAILABLE, is retried elsewhere when something else is left,
and the backend is listed as `connect_timeout`. The native engine bounds its connects the same
way: the tests without TLS run on both data planes, with the same assertions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from harness import client, procfacts
from harness.admin import route_view
from harness.backend.health import SET_HEALTH_METHOD
from harness.certs import CertificateAuthority
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.silent import SilentListener
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

DEFAULT_CONNECT_TIMEOUT = 2.0
"""Seconds: `--connect-timeout`'s default."""
SLACK = 2.5
"""Seconds of room for a loaded machine on top of a timeout under test."""
REPORTED = DEFAULT_CONNECT_TIMEOUT + SLACK + 1.0
"""Seconds within which every worker's report names the silent backend (reports: 1 s)."""


def listed(admin: str, address: str) -> dict[str, str]:
    """Each worker's reason for not counting `address` healthy (empty: none lists it)."""
    unhealthy: dict[str, dict[str, str]] = route_view(admin)["unhealthy_endpoints"]
    return unhealthy.get(address, {})


@pytest.mark.parametrize(("data_plane", "tls"), [
    ("grpcio", False), ("native", False), ("grpcio", True)],
    ids=["http2-never-spoken-grpcio", "http2-never-spoken-native", "tls-handshake-hangs"])
def test_a_call_whose_only_backend_never_speaks_fails_unavailable_within_the_connect_timeout(
    proxies: Callable[..., Proxy], tmp_path: Path, tls: bool,
) -> None:
    backend_tls = (["--backend-tls", "--backend-ca",
                    str(CertificateAuthority(tmp_path / "ca").cert)] if tls else [])
    with SilentListener() as silent:
        port, admin = free_port(), f"127.0.0.1:{free_port()}"
        proxy = proxies(*proxy_args(route(port, silent.address), workers=1,
                                    admin_address=admin), *backend_tls)
        assert wait_until(lambda: procfacts.listeners(port), timeout=20), proxy.output()
        with client.open_channel(f"127.0.0.1:{port}") as channel:
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as raised:
                client.whoami(channel, timeout=DEFAULT_CONNECT_TIMEOUT + 2 * SLACK + 3)
        took = time.monotonic() - started
        call: grpc.Call = raised.value  # type: ignore[assignment]
        report = f"{client.describe(raised.value)} after {took:.1f}s\n{proxy.output()}"
        assert call.code() == grpc.StatusCode.UNAVAILABLE, report
        assert took < DEFAULT_CONNECT_TIMEOUT + SLACK, report
        assert silent.address in (call.details() or ""), report
        assert silent.accepted >= 1, report

        reasons = wait_until(lambda: listed(admin, silent.address), timeout=REPORTED)
        assert reasons == {"0#0": "connect_timeout"}, f"{route_view(admin)}\n{proxy.output()}"


@both_planes
def test_the_connect_timeout_is_an_option(proxies: Callable[..., Proxy]) -> None:
    with SilentListener() as silent:
        port, admin = free_port(), f"127.0.0.1:{free_port()}"
        proxy = proxies(*proxy_args(route(port, silent.address), workers=1,
                                    admin_address=admin), "--connect-timeout", "300ms")
        assert wait_until(lambda: procfacts.listeners(port), timeout=20), proxy.output()
        with client.open_channel(f"127.0.0.1:{port}") as channel:
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as raised:
                client.whoami(channel, timeout=10)
        took = time.monotonic() - started
        report = f"{client.describe(raised.value)} after {took:.1f}s\n{proxy.output()}"
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, report
        assert took < 0.3 + SLACK, report
        assert wait_until(lambda: listed(admin, silent.address), timeout=REPORTED) == {
            "0#0": "connect_timeout"}, f"{route_view(admin)}\n{proxy.output()}"


@both_planes
def test_beside_backends_in_panic_a_silent_backend_gets_no_calls(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy]
) -> None:
    a = backends("a", extra_args=["--health"])
    b = backends("b", extra_args=["--health"])
    with SilentListener() as silent:
        port, admin = free_port(), f"127.0.0.1:{free_port()}"
        address = f"127.0.0.1:{port}"
        proxy = proxies(*proxy_args(route(port, a, b, silent.address), workers=1,
                                    admin_address=admin),
                        "--health-check", "--health-check-interval", "300ms")
        proxy.wait_serving(address)
        for backend in (a, b):  # no backend passes: the route is in panic, calls go to all
            with client.open_channel(backend.address) as direct:
                direct.unary_unary(SET_HEALTH_METHOD)(b"NOT_SERVING", timeout=5)
        assert wait_until(lambda: listed(admin, a.address) and listed(admin, b.address)
                          and listed(admin, silent.address), timeout=REPORTED), (
            f"{route_view(admin)}\n{proxy.output()}")
        answers: dict[str, int] = {}
        failures: list[str] = []
        with client.open_channel(address) as channel:
            for _ in range(12):
                try:
                    name = client.whoami(channel, timeout=2)
                    answers[name] = answers.get(name, 0) + 1
                except grpc.RpcError as error:
                    failures.append(client.describe(error))
        report = f"{answers}, failed: {failures[:3]}\n{route_view(admin)}\n{proxy.output()}"
        assert failures == [], report
        assert answers == {"a": 6, "b": 6}, report
        # Its health check fails first (`failing`); its connection attempt runs out later.
        assert wait_until(lambda: listed(admin, silent.address) == {"0#0": "connect_timeout"},
                          timeout=REPORTED), report
