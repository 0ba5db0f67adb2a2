"""Stray signals (SIGHUP, SIGUSR1, SIGUSR2) to the supervisor or to one worker: nothing stops,
calls in flight finish, readiness stays; SIGHUP re-reads the TLS files at once; each other
signal is logged once. The decision for every signal is `gproxy_mp.signals`."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import client
from harness.certs import CertificateAuthority
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy
from harness.processes import free_port
from harness.waiting import wait_until
from tests.process.test_shutdown import (
    readyz_status,
    result_or_status,
    serve_one_backend,
    start_sleep,
)
from tests.process.test_tls_backends import NAME, start, tls_backend
from tests.process.test_tls_listener import call, proxy_on_secret, serving_cert, swap

pytestmark = pytest.mark.timeout(120)

STRAY = [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2]
LOGGED = {
    signal.SIGHUP: "SIGHUP: no TLS files to re-read",
    signal.SIGUSR1: "SIGUSR1 received: ignored",
    signal.SIGUSR2: "SIGUSR2 received: ignored",
}
"""What the log says when the signal arrives at a proxy without TLS."""


@pytest.mark.parametrize("signum", STRAY, ids=lambda s: s.name)
def test_a_stray_signal_to_the_supervisor_stops_nothing(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy], signum: signal.Signals
) -> None:
    backend = backends("a")
    admin = f"127.0.0.1:{free_port()}"
    proxy, _, address = serve_one_backend(
        proxies, backend, workers=2, shutdown_delay="0s", drain_timeout="5s", admin_address=admin
    )
    workers = sorted(proxy.workers())

    with client.open_channel(address) as channel:
        in_flight = start_sleep(backend, channel, 2)
        proxy.send(signum)
        assert wait_until(lambda: LOGGED[signum] in proxy.stderr(), timeout=10), proxy.output()
        assert proxy.process.poll() is None, proxy.output()
        assert readyz_status(admin) == 200, proxy.output()
        result = result_or_status(in_flight, timeout=15)
        assert result == b"slept", f"in-flight call: {result!r}\n{proxy.output()}"
        assert client.whoami(channel, timeout=5) == "a", proxy.output()
    assert readyz_status(admin) == 200, proxy.output()
    assert sorted(proxy.workers()) == workers, f"workers replaced\n{proxy.output()}"


def test_each_stray_signal_is_logged_once(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    proxy, _, address = serve_one_backend(
        proxies, backends("a"), workers=1, shutdown_delay="0s", drain_timeout="5s"
    )
    proxy.send(signal.SIGUSR1)
    assert wait_until(lambda: "SIGUSR1 received" in proxy.stderr(), timeout=10), proxy.output()
    proxy.send(signal.SIGUSR1)
    proxy.send(signal.SIGUSR2)  # answered after the second SIGUSR1
    assert wait_until(lambda: "SIGUSR2 received" in proxy.stderr(), timeout=10), proxy.output()
    assert proxy.stderr().count("SIGUSR1 received") == 1, proxy.output()
    with client.open_channel(address) as channel:
        assert client.whoami(channel, timeout=5) == "a", proxy.output()


@pytest.mark.parametrize("signum", STRAY, ids=lambda s: s.name)
def test_a_stray_signal_to_a_worker_stops_nothing(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy], signum: signal.Signals
) -> None:
    backend = backends("a")
    admin = f"127.0.0.1:{free_port()}"
    proxy, _, address = serve_one_backend(
        proxies, backend, workers=1, shutdown_delay="0s", drain_timeout="5s", admin_address=admin
    )
    [worker] = proxy.workers()

    with client.open_channel(address) as channel:
        in_flight = start_sleep(backend, channel, 2)  # on the one worker
        os.kill(worker, signum)
        assert wait_until(
            lambda: any(LOGGED[signum] in line and "#0" in line
                        for line in proxy.stderr().splitlines()), timeout=10
        ), proxy.output()
        result = result_or_status(in_flight, timeout=15)
        assert result == b"slept", f"in-flight call: {result!r}\n{proxy.output()}"
        assert client.whoami(channel, timeout=5) == "a", proxy.output()
    assert proxy.workers() == [worker], f"worker replaced\n{proxy.output()}"
    assert readyz_status(admin) == 200, proxy.output()


@both_planes
def test_sighup_has_every_worker_reread_the_tls_files_at_once(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy], tmp_path: Path
) -> None:
    ca = CertificateAuthority(tmp_path / "ca", "ca-one")
    successor = CertificateAuthority(tmp_path / "successor", "ca-two")
    proxy, address = proxy_on_secret(proxies, backends("a"), ca, tmp_path / "secret", workers=2)
    assert wait_until(lambda: proxy.stderr().count(") is serving") == 2, timeout=20), (
        proxy.output())  # both hold the first certificate
    swap(tmp_path / "secret", serving_cert(successor))
    # No handshake from here on until both workers said they reloaded: without SIGHUP, the
    # listener looks at its files only when a handshake asks for the certificate.
    proxy.send(signal.SIGHUP)
    assert wait_until(
        lambda: proxy.stderr().count("listener certificate files reloaded") == 2, timeout=10
    ), proxy.output()
    assert "SIGHUP: asked 2 worker(s) to re-read the TLS files now (--tls-cert" in (
        proxy.stderr()), proxy.output()
    started = time.monotonic()
    assert call(address, successor.pem()) == "a", proxy.output()
    assert time.monotonic() - started < 5, proxy.output()


@both_planes
def test_sighup_has_the_workers_reread_the_backend_tls_files_and_say_so(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy], tmp_path: Path
) -> None:
    ca = CertificateAuthority(tmp_path / "ca", "ca-one")
    backend = tls_backend(backends, "a", ca.issue("a", dns=[NAME]))
    proxy, address = start(proxies, backend,
                           extra=["--backend-ca", str(ca.cert), "--backend-tls-server-name", NAME])
    assert proxy.wait_serving(address) == "a"
    proxy.send(signal.SIGHUP)
    assert wait_until(lambda: "SIGHUP: re-read the TLS files: backend TLS unchanged"
                      in proxy.stderr(), timeout=10), proxy.output()
    assert f"(--backend-ca {ca.cert})" in proxy.stderr(), proxy.output()
    assert proxy.wait_serving(address) == "a"
