"""TLS on the listener (`--tls-cert`, `--tls-key`, `--tls-client-ca`), through the real CLI.

grpcio clients speak TLS to the proxy, which forwards to plaintext backends. Real certificates
from `harness.certs`. The rotation test swaps the files the way a Kubernetes secret volume does
(a `..data` symlink replaced atomically) while clients keep calling. Every test runs on both
data planes; only the native plane sees failed client handshakes (grpcio has no hook for
them), so their metric is asserted there and asserted absent on grpcio.
"""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from harness import client
from harness.admin import admin_get, metric_value
from harness.certs import CertificateAuthority, Issued
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.traffic import ThreadLoad
from harness.waiting import wait_until
from harness.whoami import whoami

pytestmark = [pytest.mark.timeout(120), both_planes]

SERVER_NAME = "proxy.test"
LOAD_THREADS = 4
ROTATION_BOUND = 10.0
"""Seconds within which new connections must see a rotated certificate."""


def secure_channel(address: str, ca: bytes, *, identity: Issued | None = None) -> grpc.Channel:
    """A TLS channel trusting `ca`, presenting `identity` if given, checking SERVER_NAME."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=identity.key.read_bytes() if identity else None,
        certificate_chain=identity.cert.read_bytes() if identity else None)
    return grpc.secure_channel(address, credentials, options=[
        client.PRIVATE_CONNECTION, ("grpc.ssl_target_name_override", SERVER_NAME)])


def call(address: str, ca: bytes, *, identity: Issued | None = None) -> str:
    """One Whoami on a fresh TLS connection: the backend's name, or `CODE: details`."""
    with secure_channel(address, ca, identity=identity) as channel:
        try:
            return client.whoami(channel, timeout=5)
        except grpc.RpcError as error:
            return client.describe(error)


def wait_tls_serving(proxy: Proxy, address: str, ca: bytes, *,
                     identity: Issued | None = None) -> str:
    deadline = time.monotonic() + 20
    answer = ""
    while time.monotonic() < deadline:
        assert proxy.process.poll() is None, proxy.output()
        answer = call(address, ca, identity=identity)
        if ":" not in answer:
            return answer
        time.sleep(0.2)
    raise AssertionError(f"{address} not serving TLS: {answer}\n{proxy.output()}")


@pytest.fixture
def pki(tmp_path: Path) -> tuple[CertificateAuthority, CertificateAuthority]:
    """The proxy's CA and another one nobody should trust for it."""
    return (CertificateAuthority(tmp_path / "ca", "ca-one"),
            CertificateAuthority(tmp_path / "other", "ca-two"))


def serving_cert(ca: CertificateAuthority, **kw: object) -> Issued:
    return ca.issue("proxy", dns=[SERVER_NAME], ips=["127.0.0.1"], **kw)  # type: ignore[arg-type]


def tls_proxy(proxies: Callable[..., Proxy], backend: Backend, cert: Issued, *extra: str,
              admin: str = "off") -> tuple[Proxy, str]:
    port = free_port()
    proxy = proxies(*proxy_args(route(port, backend), workers=2, admin_address=admin),
                    "--tls-cert", str(cert.cert), "--tls-key", str(cert.key), *extra)
    return proxy, f"127.0.0.1:{port}"


def listener_handshake_failures(admin: str) -> float | None:
    return metric_value(admin, "gproxy_tls_handshake_failures_total", side="listener")


def wait_listener_handshake_failures(admin: str, data_plane: str, at_least: int) -> None:
    """The native plane counts failed client handshakes (workers report every second); the
    grpcio plane cannot see them and has no listener series at all."""
    if data_plane == "grpcio":
        time.sleep(1.5)
        assert listener_handshake_failures(admin) is None, admin_metrics(admin)
        return
    deadline = time.monotonic() + 5
    while (listener_handshake_failures(admin) or 0) < at_least:
        assert time.monotonic() < deadline, admin_metrics(admin)
        time.sleep(0.3)


def test_clients_trusting_the_ca_are_served_over_tls_and_others_are_not(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
    pki: tuple[CertificateAuthority, CertificateAuthority], data_plane: str,
) -> None:
    ca, other = pki
    admin = f"127.0.0.1:{free_port()}"
    proxy, address = tls_proxy(proxies, backends("a"), serving_cert(ca), admin=admin)
    assert wait_tls_serving(proxy, address, ca.pem()) == "a"
    if data_plane == "native":  # a TCP probe (connect, close) is no failed handshake
        for _ in range(3):
            socket.create_connection(("127.0.0.1", int(address.rpartition(":")[2])),
                                     timeout=5).close()
        time.sleep(1.5)  # workers report every second
        assert wait_until(lambda: listener_handshake_failures(admin) is not None, timeout=5)
        assert listener_handshake_failures(admin) == 0, admin_metrics(admin)
    assert call(address, other.pem()).startswith("UNAVAILABLE"), proxy.output()
    with client.open_channel(address) as plaintext, pytest.raises(grpc.RpcError) as refused:
        client.whoami(plaintext, timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "Handshake failed" not in proxy.stderr()  # gRPC core's INFO lines stay quiet
    wait_listener_handshake_failures(admin, data_plane, at_least=2)  # the stranger, plaintext


def test_mutual_tls_serves_only_clients_with_a_certificate_of_the_client_ca(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
    pki: tuple[CertificateAuthority, CertificateAuthority], data_plane: str,
) -> None:
    ca, other = pki
    admin = f"127.0.0.1:{free_port()}"
    proxy, address = tls_proxy(proxies, backends("a"), serving_cert(ca),
                               "--tls-client-ca", str(ca.cert), admin=admin)
    good = ca.issue("client", client=True)
    assert wait_tls_serving(proxy, address, ca.pem(), identity=good) == "a"
    assert call(address, ca.pem()).startswith("UNAVAILABLE")  # no certificate
    stranger = other.issue("client", client=True)
    assert call(address, ca.pem(), identity=stranger).startswith("UNAVAILABLE")
    wait_listener_handshake_failures(admin, data_plane, at_least=2)


def secret_volume(directory: Path, cert: Issued) -> tuple[Path, Path]:
    """`tls.crt` and `tls.key` behind a `..data` symlink, as kubelet lays out a secret."""
    directory.mkdir()
    swap(directory, cert)
    for name in ("tls.crt", "tls.key"):
        (directory / name).symlink_to(f"..data/{name}")
    return directory / "tls.crt", directory / "tls.key"


def swap(directory: Path, cert: Issued) -> None:
    """Write a new timestamped directory and point `..data` at it in one rename."""
    version = directory / f"..{time.monotonic_ns()}"
    version.mkdir()
    (version / "tls.crt").write_bytes(cert.cert.read_bytes())
    (version / "tls.key").write_bytes(cert.key.read_bytes())
    link = directory / "..data_tmp"
    link.symlink_to(version.name)
    os.replace(link, directory / "..data")


def proxy_on_secret(proxies: Callable[..., Proxy], backend: Backend, ca: CertificateAuthority,
                    directory: Path, *, workers: int, admin: str = "off",
                    issued: Issued | None = None) -> tuple[Proxy, str]:
    """A TLS proxy serving `issued` (by default a new certificate of `ca`) from a secret
    volume at `directory`."""
    cert, key = secret_volume(directory, issued or serving_cert(ca))
    port = free_port()
    proxy = proxies(*proxy_args(route(port, backend), workers=workers, admin_address=admin),
                    "--tls-cert", str(cert), "--tls-key", str(key))
    address = f"127.0.0.1:{port}"
    wait_tls_serving(proxy, address, ca.pem())
    return proxy, address


def test_a_rotated_certificate_reaches_new_connections_while_old_ones_keep_working(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
    pki: tuple[CertificateAuthority, CertificateAuthority], tmp_path: Path,
) -> None:
    ca, successor = pki  # the certificate moves to a new CA, as a CA rotation does
    proxy, address = proxy_on_secret(proxies, backends("a"), ca, tmp_path / "secret", workers=2)
    both = ca.pem() + successor.pem()  # clients that trust both
    load = ThreadLoad(lambda: secure_channel(address, both), whoami, threads=LOAD_THREADS,
                      max_calls=200_000, max_seconds=ROTATION_BOUND + 10)
    with load:
        time.sleep(1.0)
        swap(tmp_path / "secret", serving_cert(successor))
        swapped = time.monotonic()
        answer = ""
        while time.monotonic() - swapped < ROTATION_BOUND:
            answer = call(address, successor.pem())
            if answer == "a":
                break
            time.sleep(0.2)
        seen_after = time.monotonic() - swapped
        time.sleep(1.0)
    calls, failures = len(load.outcomes()), load.failures()
    report = f"{answer} after {seen_after:.1f}s; {calls} calls\n{proxy.output()}"
    assert answer == "a", report
    assert calls > 100 and failures == [], f"{failures[:5]} {report}"
    assert "certificate files reloaded" in proxy.stderr(), report


def test_a_broken_new_certificate_is_logged_and_the_old_one_kept(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
    pki: tuple[CertificateAuthority, CertificateAuthority], tmp_path: Path,
) -> None:
    ca, other = pki
    proxy, address = proxy_on_secret(proxies, backends("a"), ca, tmp_path / "secret", workers=1)
    mismatched = Issued(cert=serving_cert(other).cert, key=ca.issue("unrelated").key)
    swap(tmp_path / "secret", mismatched)
    time.sleep(1.5)
    for _ in range(5):  # several handshakes: logged once, served with the old material
        assert call(address, ca.pem()) == "a", proxy.output()
        time.sleep(0.3)
    errors = [line for line in proxy.stderr().splitlines() if "not usable" in line]
    assert len(errors) == 1 and "does not belong to --tls-cert" in errors[0], proxy.output()


def timestamp(issued: Issued) -> float:
    assert issued.not_after is not None
    return issued.not_after.timestamp()


def iso(issued: Issued) -> str:
    """notAfter as the proxy writes it."""
    assert issued.not_after is not None
    return issued.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("case", ["expired", "not-yet-valid"])
def test_a_new_certificate_out_of_its_validity_is_refused_logged_once_and_counted(
    case: str, backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
    pki: tuple[CertificateAuthority, CertificateAuthority], tmp_path: Path,
) -> None:
    """A `..data` swap to a certificate that TLS clients would refuse: the old one is still
    served, one line says why (naming notAfter), the refusal is counted, and the expiry gauge
    still shows the certificate in use."""
    ca, _ = pki
    admin = f"127.0.0.1:{free_port()}"
    current = serving_cert(ca)
    proxy, address = proxy_on_secret(proxies, backends("a"), ca, tmp_path / "secret",
                                     workers=1, admin=admin, issued=current)
    bad = (serving_cert(ca, valid_for=-datetime.timedelta(days=1)) if case == "expired"
           else serving_cert(ca, starts_in=datetime.timedelta(days=1)))
    swap(tmp_path / "secret", bad)
    time.sleep(1.5)  # past the worker's once-a-second look at the files
    for _ in range(5):  # several handshakes: each one looks at the files, each is served
        assert call(address, ca.pem()) == "a", proxy.output()
        time.sleep(0.3)
    errors = [line for line in proxy.stderr().splitlines() if "not usable" in line]
    assert len(errors) == 1, proxy.output()
    assert "--tls-cert" in errors[0] and iso(bad) in errors[0], errors
    reason = "expired" if case == "expired" else "not_yet_valid"
    assert "reloaded" not in proxy.stderr(), proxy.output()
    deadline = time.monotonic() + 5  # workers report every second
    while metric_value(admin, "gproxy_tls_reload_failures_total", side="listener",
                       reason=reason) != 1.0:
        assert time.monotonic() < deadline, admin_metrics(admin)
        time.sleep(0.3)
    assert metric_value(admin, "gproxy_tls_certificate_expiry_timestamp_seconds",
                        side="listener") == timestamp(current), admin_metrics(admin)


def admin_metrics(admin: str) -> str:
    return admin_get(admin, "/metrics")


OUT_OF_VALIDITY = [
    pytest.param("--tls-cert", lambda ca: ca.issue("p", valid_for=-datetime.timedelta(days=1)),
                 id="expired-listener"),
    pytest.param("--tls-cert", lambda ca: ca.issue("p", starts_in=datetime.timedelta(hours=2)),
                 id="not-yet-valid-listener"),
    pytest.param("--backend-cert",
                 lambda ca: ca.issue("c", client=True, valid_for=-datetime.timedelta(hours=1)),
                 id="expired-backend-cert"),
]


@pytest.mark.parametrize(("option", "make"), OUT_OF_VALIDITY)
def test_a_certificate_out_of_its_validity_is_one_line_naming_its_not_after_and_exit_2(
    option: str, make: Callable[[CertificateAuthority], Issued], tmp_path: Path,
    pki: tuple[CertificateAuthority, CertificateAuthority], data_plane: str,
) -> None:
    issued = make(pki[0])
    files = (["--tls-cert", str(issued.cert), "--tls-key", str(issued.key)]
             if option == "--tls-cert" else
             ["--backend-tls", "--backend-cert", str(issued.cert), "--backend-key",
              str(issued.key)])
    result = subprocess.run(
        [sys.executable, "-m", "gproxy_mp", "-p", f"127.0.0.1:{free_port()}-static:///a:1",
         "--admin-address", "off", "--data-plane", data_plane, *files],
        capture_output=True, text=True, timeout=30, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result
    assert len(lines) == 1 and "Traceback" not in result.stderr, lines
    assert option in lines[0] and str(issued.cert) in lines[0] and iso(issued) in lines[0], lines


def pair(issued: Issued) -> list[str]:
    return ["--tls-cert", str(issued.cert), "--tls-key", str(issued.key)]


BAD_START = [
    pytest.param(lambda ca, tmp: ["--tls-cert", str(tmp / "missing.pem"), "--tls-key",
                                  str(ca.issue("p").key)], "--tls-cert", id="missing-cert"),
    pytest.param(lambda ca, tmp: ["--tls-cert", str(ca.issue("p").cert), "--tls-key",
                                  str(ca.issue("q").key)], "does not belong", id="key-mismatch"),
    pytest.param(lambda ca, tmp: ["--tls-cert", str(ca.issue("p").cert)], "go together",
                 id="cert-without-key"),
    pytest.param(lambda ca, tmp: ["--tls-client-ca", str(ca.cert)], "needs --tls-cert",
                 id="client-ca-alone"),
    pytest.param(lambda ca, tmp: [*pair(ca.issue("p")), "--tls-client-ca",
                                  str(tmp / "garbage.pem")], "--tls-client-ca",
                 id="garbage-client-ca"),
    pytest.param(lambda ca, tmp: ["--tls-cert", str(tmp / "garbage.pem"), "--tls-key",
                                  str(ca.issue("p").key)], "not a PEM", id="garbage-cert"),
]


@pytest.mark.parametrize(("args", "said"), BAD_START)
def test_unusable_tls_files_are_one_line_and_exit_2_at_start(
    args: Callable[[CertificateAuthority, Path], list[str]], said: str, tmp_path: Path,
    pki: tuple[CertificateAuthority, CertificateAuthority], data_plane: str,
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    result = subprocess.run(
        [sys.executable, "-m", "gproxy_mp", "-p", f"127.0.0.1:{free_port()}-static:///a:1",
         "--admin-address", "off", "--data-plane", data_plane, *args(pki[0], tmp_path)],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0] and "Traceback" not in result.stderr, lines
