"""Backend TLS: the default name checked in a backend's certificate, the options that go
together, and which connection errors count as TLS handshake failures (pure)."""

from __future__ import annotations

import pytest

from gproxy_mp.config import (
    DnsTarget,
    KubernetesTarget,
    StaticTarget,
    WorkerOptions,
    default_server_name,
)
from gproxy_mp.errors import ConfigError
from gproxy_mp.model import Endpoint
from gproxy_mp.tls import BACKEND_OPTIONS, TlsFiles, backend_tls, listener_tls
from gproxy_mp.worker.handshakes import is_tls_failure


def test_the_default_name_is_the_services_the_queried_one_or_each_backends_own() -> None:
    assert default_server_name(KubernetesTarget("cart", "grpc", "shop"),
                               namespace="x") == "cart.shop.svc"
    assert default_server_name(KubernetesTarget("cart", 80), namespace="mine") == "cart.mine.svc"
    assert default_server_name(DnsTarget("api.internal", 443), namespace="x") == "api.internal"
    assert default_server_name(StaticTarget((Endpoint("10.0.0.1", 1),)), namespace="x") is None


@pytest.mark.parametrize(("options", "said"), [
    (WorkerOptions(backend_ca="ca.pem"), "--backend-ca needs --backend-tls"),
    (WorkerOptions(backend_tls_server_name="x"), "--backend-tls-server-name needs --backend-tls"),
    (WorkerOptions(backend_tls=True, backend_cert="c.pem"), "go together"),
    (WorkerOptions(tls_client_ca="ca.pem"), "--tls-client-ca needs --tls-cert"),
    (WorkerOptions(tls_key="k.pem"), "go together"),
])
def test_tls_options_that_do_not_go_together_are_refused(options: WorkerOptions,
                                                          said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        listener_tls(options)
        backend_tls(options)


def test_backend_tls_alone_trusts_the_system_store() -> None:
    assert backend_tls(WorkerOptions(backend_tls=True)) == TlsFiles(None, None, None,
                                                                    BACKEND_OPTIONS)
    assert backend_tls(WorkerOptions()) is None


@pytest.mark.parametrize(("details", "tls"), [
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:36783: Custom "
     "verification check failed with error: UNAUTHENTICATED: Hostname Verification Check "
     "failed.", True),
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:36783: Tls "
     "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:"
     "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate", True),
    ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: "
     "Connection refused", False),
    ("no healthy upstream", False),
])
def test_tls_handshake_failures_are_told_from_other_connection_errors(details: str,
                                                                      tls: bool) -> None:
    assert is_tls_failure(details) is tls
