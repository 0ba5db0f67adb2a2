"""The grpc-go interop client over TLS to gproxy-mp (`--tls-cert`, `--tls-key`), which forwards
to the plaintext interop servers: a client of another gRPC implementation verifies the proxy's
certificate (CA file and name) and its cases still pass, on each data plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.certs import CertificateAuthority
from harness.fixtures import PLANES
from tests.conformance.conftest import ProxiedRoute, serving_route
from tests.conformance.interop import InteropServer, Peers, run_client

pytestmark = pytest.mark.timeout(300)

NAME = "proxy.test"
CASES = ["empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong",
         "custom_metadata", "status_code_and_message", "timeout_on_sleeping_server",
         "cancel_after_first_response"]


def tls_flags(ca: Path) -> tuple[str, ...]:
    # --use_test_ca: replace the system roots with --ca_file (else the file is not read).
    return ("--use_tls=true", "--use_test_ca=true", f"--ca_file={ca}",
            f"--server_host_override={NAME}")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("tls-ca"), "interop-ca")


@pytest.fixture(scope="module", params=PLANES)
def tls_route(peers: Peers, interop_servers: tuple[InteropServer, ...], log_dir: Path,
              ca: CertificateAuthority, request: pytest.FixtureRequest
              ) -> Iterator[ProxiedRoute]:
    plane: str = request.param
    cert = ca.issue("proxy", dns=[NAME])
    with serving_route(peers, interop_servers, log_dir=log_dir, plane=plane,
                       index=30 + PLANES.index(plane),
                       proxy_extra=["--tls-cert", str(cert.cert), "--tls-key", str(cert.key)],
                       client_extra=tls_flags(ca.cert)) as proxied:
        yield proxied


@pytest.mark.parametrize("name", CASES)
def test_an_interop_case_passes_over_tls_through_the_proxy(
    peers: Peers, tls_route: ProxiedRoute, ca: CertificateAuthority, name: str
) -> None:
    run = run_client(peers.client, port=tls_route.port, case=name, extra=tls_flags(ca.cert))
    assert run.ok, f"{run.describe()}{tls_route.output()}"


def test_a_client_that_does_not_trust_the_proxys_ca_is_refused(
    peers: Peers, tls_route: ProxiedRoute, tmp_path: Path
) -> None:
    stranger = CertificateAuthority(tmp_path / "stranger", "stranger-ca")
    run = run_client(peers.client, port=tls_route.port, case="empty_unary",
                     extra=tls_flags(stranger.cert), timeout=30)
    assert not run.ok, run.describe()
