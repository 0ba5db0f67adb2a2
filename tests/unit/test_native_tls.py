"""The native plane's TLS material: the engine takes what the start's checks take, refuses what
rustls cannot use (a P-521 key: ring does not sign with it, though Python's `ssl` loads it)
with one line naming the files, and a refused reload keeps the material in use and is counted.
Real files and a real (unstarted) engine; no clock but the one injected."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gproxy_mp._native import Engine
from gproxy_mp.bus.schema import TlsRefusal, TlsSide
from gproxy_mp.config import WorkerOptions
from gproxy_mp.errors import ConfigError
from gproxy_mp.tls import MaterialError, listener_tls
from gproxy_mp.tls_material import check_tls
from gproxy_mp.worker.planes.native_tls import NativeTls, system_ca
from gproxy_mp.worker.stats import CallStats
from harness.certs import CertificateAuthority, Issued


def engine() -> Engine:
    return Engine(target="static:///127.0.0.1:1", max_concurrent_streams=10,
                  connect_timeout=1.0)


def p521(directory: Path) -> Issued:
    """A self-signed P-521 certificate and key, valid now."""
    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p521")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    issued = Issued(cert=directory / "p521.pem", key=directory / "p521-key.pem")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    return issued


def listener(cert: Path, key: Path) -> WorkerOptions:
    return WorkerOptions(data_plane="native", tls_cert=str(cert), tls_key=str(key))


def test_listener_material_rustls_cannot_use_is_one_line_naming_the_files(
    tmp_path: Path,
) -> None:
    issued = p521(tmp_path)
    with pytest.raises(MaterialError) as refused:
        NativeTls(engine(), options=listener(issued.cert, issued.key), server_name=None,
                  stats=CallStats())
    message = str(refused.value)
    assert "\n" not in message and f"--tls-cert {str(issued.cert)!r}" in message, message
    assert "the native engine's TLS refused them" in message, message


def test_at_start_a_key_rustls_cannot_sign_with_is_one_line_for_the_native_plane_only(
    tmp_path: Path,
) -> None:
    issued = p521(tmp_path)
    files = listener_tls(listener(issued.cert, issued.key))
    check_tls(files)  # grpcio signs with it
    with pytest.raises(ConfigError) as refused:
        check_tls(files, native=True)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"--tls-key {str(issued.key)!r}: "
                                                      "an EC key on secp521r1"), message
    good = CertificateAuthority(tmp_path / "ca", "ca").issue("proxy")
    check_tls(listener_tls(listener(good.cert, good.key)), native=True)


def test_a_reload_rustls_refuses_keeps_the_material_in_use_logs_once_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    good = CertificateAuthority(tmp_path / "ca", "ca").issue("proxy", dns=["proxy.test"])
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(good.cert.read_bytes())
    key.write_bytes(good.key.read_bytes())
    stats = CallStats()
    tls = NativeTls(engine(), options=listener(cert, key), server_name=None, stats=stats)
    assert tls.listener is not None
    in_use = tls.listener.material
    bad = p521(tmp_path)
    cert.write_bytes(bad.cert.read_bytes())
    key.write_bytes(bad.key.read_bytes())
    with caplog.at_level(logging.ERROR):
        assert tls.reload_now() == "listener certificate not usable, kept the current ones"
        assert tls.reload_now() == "listener certificate not usable, kept the current ones"
    assert tls.listener.material == in_use
    refusals = [r.getMessage() for r in caplog.records if "not usable" in r.getMessage()]
    assert len(refusals) == 1 and "the native engine's TLS refused them" in refusals[0]
    assert stats.tls_refused == {(TlsSide.LISTENER, TlsRefusal.UNUSABLE): 1}


def test_backend_tls_without_a_ca_trusts_the_system_bundle_and_with_one_takes_it(
    tmp_path: Path,
) -> None:
    assert b"-----BEGIN CERTIFICATE-----" in system_ca()
    ca = CertificateAuthority(tmp_path / "ca", "ca")
    identity = ca.issue("proxy", client=True)
    stats = CallStats()
    for options in (WorkerOptions(data_plane="native", backend_tls=True),
                    WorkerOptions(data_plane="native", backend_tls=True,
                                  backend_ca=str(ca.cert), backend_cert=str(identity.cert),
                                  backend_key=str(identity.key))):
        tls = NativeTls(engine(), options=options, server_name="api.test", stats=stats)
        assert tls.backend is not None and tls.listener is None
        assert tls.reload_now() == "backend TLS unchanged"
    assert TlsSide.BACKEND in stats.certificates  # the client certificate's notAfter
