"""TLS towards the backends (`--backend-tls` and co.), through the real CLI, with real TLS
backends (`harness.backend --tls-cert ...`) and real certificates (`harness.certs`), on both
data planes."""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from harness import client
from harness.certs import CertificateAuthority, Issued
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.traffic import ThreadLoad
from harness.waiting import wait_until
from harness.whoami import private_channels, whoami
from tests.process.test_tls_listener import secret_volume, swap

pytestmark = [pytest.mark.timeout(120), both_planes]

NAME = "backends.test"


@pytest.fixture
def pki(tmp_path: Path) -> tuple[CertificateAuthority, CertificateAuthority]:
    return (CertificateAuthority(tmp_path / "ca", "ca-one"),
            CertificateAuthority(tmp_path / "other", "ca-two"))


def tls_backend(backends: Callable[..., Backend], name: str, cert: Issued,
                client_ca: Path | None = None, port: int = 0) -> Backend:
    """A TLS backend; `client_ca`: it requires client certificates; `port`: on this port (a
    replacement)."""
    extra = ["--tls-cert", str(cert.cert), "--tls-key", str(cert.key)]
    if client_ca is not None:
        extra += ["--tls-client-ca", str(client_ca)]
    where = {"host": "127.0.0.1", "port": port} if port else {}
    return backends(name, extra_args=extra, **where)


def start(proxies: Callable[..., Proxy], *servers: Backend | str, extra: list[str],
          admin: str = "off") -> tuple[Proxy, str]:
    port = free_port()
    proxy = proxies(*proxy_args(route(port, *servers), workers=1, admin_address=admin),
                    "--backend-tls", *extra)
    return proxy, f"127.0.0.1:{port}"


def listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def call(address: str) -> str:
    """One Whoami through the proxy: the backend's name, or `CODE: details`."""
    with client.open_channel(address) as channel:
        try:
            return client.whoami(channel, timeout=5)
        except grpc.RpcError as error:
            return client.describe(error)


def handshake_failures(admin: str) -> float:
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(v) for v in re.findall(
        r'^gproxy_tls_handshake_failures_total\{.*side="backend".*\} (\S+)$', text, re.M))


def test_backends_are_verified_against_the_ca_and_the_name(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy],
    pki: tuple[CertificateAuthority, CertificateAuthority],
) -> None:
    ca, _ = pki
    a = tls_backend(backends, "a", ca.issue("a", dns=[NAME]))
    proxy, address = start(proxies, a, extra=["--backend-ca", str(ca.cert),
                                              "--backend-tls-server-name", NAME])
    assert proxy.wait_serving(address) == "a"


def test_a_static_backend_is_checked_against_its_own_host_by_default(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy],
    pki: tuple[CertificateAuthority, CertificateAuthority],
) -> None:
    ca, _ = pki
    a = tls_backend(backends, "a", ca.issue("a", ips=["127.0.0.1"]))
    proxy, address = start(proxies, a, extra=["--backend-ca", str(ca.cert)])
    assert proxy.wait_serving(address) == "a"


@pytest.mark.parametrize("case", ["wrong-name", "untrusted-ca", "plaintext-backend"])
def test_a_backend_that_fails_verification_is_refused_naming_why_and_counted(
    case: str, backends: Callable[..., Backend], proxies: Callable[..., Proxy],
    pki: tuple[CertificateAuthority, CertificateAuthority],
) -> None:
    ca, other = pki
    if case == "plaintext-backend":
        a = backends("a")
    else:
        issuer = other if case == "untrusted-ca" else ca
        a = tls_backend(backends, "a", issuer.issue("a", dns=["elsewhere.test"
                                                              if case == "wrong-name" else NAME]))
    admin = f"127.0.0.1:{free_port()}"
    proxy, address = start(proxies, a, admin=admin, extra=[
        "--backend-ca", str(ca.cert), "--backend-tls-server-name", NAME])
    # The proxy's own port first (a busy machine may take more than a second to start it),
    # then a second for the worker to try the backend.
    assert wait_until(lambda: listening(address), timeout=20), proxy.output()
    time.sleep(1.0)
    answer = call(address)
    assert answer.startswith("UNAVAILABLE: no backend of target static:///"), answer
    if case != "plaintext-backend":  # a plaintext server just closes the connection
        assert re.search(r"(?i)handshake failed|verification check failed", answer), answer
    # Counted either way (the plaintext backend by the worker's TCP probe); workers report
    # their counts every second.
    assert wait_until(lambda: handshake_failures(admin) >= 1, timeout=5), proxy.output()


def test_mutual_tls_towards_a_backend_that_requires_client_certificates(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy],
    pki: tuple[CertificateAuthority, CertificateAuthority],
) -> None:
    ca, _ = pki
    a = tls_backend(backends, "a", ca.issue("a", dns=[NAME]), client_ca=ca.cert)
    common = ["--backend-ca", str(ca.cert), "--backend-tls-server-name", NAME]
    _, without = start(proxies, a, extra=common)
    time.sleep(1.0)
    assert call(without).startswith("UNAVAILABLE"), "a backend requiring mTLS served a proxy "
    identity = ca.issue("proxy", client=True)
    proxy, address = start(proxies, a, extra=[*common, "--backend-cert", str(identity.cert),
                                              "--backend-key", str(identity.key)])
    assert proxy.wait_serving(address) == "a"


def test_a_backend_that_refuses_the_proxy_for_want_of_a_client_certificate_is_counted(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy],
    pki: tuple[CertificateAuthority, CertificateAuthority],
) -> None:
    """TLS 1.3: the proxy's side of the handshake completes before the backend checks for a
    client certificate; the backend then closes the connection, which grpc reports as `Secure
    read failed` or `Socket closed`, not as a handshake failure. It still is one."""
    ca, _ = pki
    a = tls_backend(backends, "a", ca.issue("a", dns=[NAME]), client_ca=ca.cert)
    admin = f"127.0.0.1:{free_port()}"
    proxy, address = start(proxies, a, admin=admin, extra=[
        "--backend-ca", str(ca.cert), "--backend-tls-server-name", NAME])
    assert wait_until(lambda: listening(address), timeout=20), proxy.output()
    answers = []
    for _ in range(3):
        answers.append(call(address))
        time.sleep(0.5)
    assert all(answer.startswith("UNAVAILABLE") for answer in answers), answers
    assert wait_until(lambda: handshake_failures(admin) >= 1, timeout=5), (
        f"{answers}\n{proxy.output()}")


def test_a_rotated_client_certificate_reaches_new_backend_connections_without_failed_calls(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy],
    pki: tuple[CertificateAuthority, CertificateAuthority], tmp_path: Path,
) -> None:
    """The proxy's client certificate moves from CA one to CA two (both trusted by the
    backends at first) under load: no call fails. Then backend b is restarted trusting CA two
    only: the proxy's new connections to it must present the new certificate, and no call
    fails (a call that finds b restarting is retried on a)."""
    ca, successor = pki
    both = tmp_path / "both.pem"
    both.write_bytes(ca.pem() + successor.pem())
    serving = ca.issue("backend", dns=[NAME])
    a = tls_backend(backends, "a", serving, client_ca=both)
    b = tls_backend(backends, "b", serving, client_ca=both)
    cert, key = secret_volume(tmp_path / "secret", ca.issue("proxy", client=True))
    proxy, address = start(proxies, a, b, extra=[
        "--backend-ca", str(ca.cert), "--backend-tls-server-name", NAME,
        "--backend-cert", str(cert), "--backend-key", str(key)])
    proxy.wait_serving(address)
    with ThreadLoad(private_channels(address), whoami, threads=4, max_seconds=60) as load:
        assert load.wait_answer_from("b", since=0.0, timeout=10), load.summary()
        swap(tmp_path / "secret", successor.issue("proxy", client=True))
        renewed = time.monotonic()
        while "backend TLS files reloaded" not in proxy.stderr():
            assert time.monotonic() - renewed < 10, proxy.output()
            time.sleep(0.2)
        assert load.wait_answer_from("b", since=time.monotonic(), timeout=10), load.summary()
    assert load.failures() == [], load.summary()  # calls on the old channels finished
    # b now trusts the new CA only. Stopped outside the load: a backend that stops cancels
    # the calls it has just accepted, and the proxy hands CANCELLED on as it came.
    only_new = tmp_path / "new.pem"
    only_new.write_bytes(successor.pem())
    port = b.port
    b.stop()
    b2 = tls_backend(backends, "b2", serving, client_ca=only_new, port=port)
    with ThreadLoad(private_channels(address), whoami, threads=4, max_seconds=60) as after:
        assert after.wait_answer_from("b2", since=0.0, timeout=10), (
            f"{after.summary()}\n{proxy.output()}\n{b2.output()}")
    assert after.failures() == [], after.summary()
