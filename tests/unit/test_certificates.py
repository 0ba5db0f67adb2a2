"""Certificate validity as part of "usable" TLS material: the window of a chain, the words of a
refusal, and a worker's reload decisions against an injected clock."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from gproxy_mp.bus.schema import TlsRefusal, TlsSide
from gproxy_mp.certificates import OutOfValidityError, chain_validity, check, iso
from gproxy_mp.tls import BACKEND_OPTIONS, LISTENER_OPTIONS, MaterialError, TlsFiles
from gproxy_mp.tls_material import load_material
from gproxy_mp.worker.credentials import BackendCredentials
from gproxy_mp.worker.stats import CallStats
from harness.certs import CertificateAuthority, Issued

DAY = datetime.timedelta(days=1)


def at(issued: Issued) -> float:
    assert issued.not_after is not None
    return issued.not_after.timestamp()


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "ca", "ca")


def test_a_chain_is_valid_until_its_earliest_not_after(ca: CertificateAuthority) -> None:
    leaf = ca.issue("leaf", valid_for=DAY / 2)  # the CA: a day
    validity = chain_validity(leaf.cert.read_bytes() + ca.pem())
    assert validity.not_after == at(leaf) and validity.not_after_of == ""


def test_an_intermediate_that_expires_first_is_named(ca: CertificateAuthority,
                                                     tmp_path: Path) -> None:
    leaf = CertificateAuthority(tmp_path / "other", "other").issue("leaf", valid_for=2 * DAY)
    validity = chain_validity(leaf.cert.read_bytes() + ca.pem())
    assert validity.not_after_of == "CN=ca"
    with pytest.raises(OutOfValidityError, match="its chain's certificate 'CN=ca' expired"):
        check(validity, now=validity.not_after + 1)


def test_an_expired_chain_is_refused_naming_its_not_after(ca: CertificateAuthority) -> None:
    leaf = ca.issue("leaf", valid_for=-DAY)
    validity = chain_validity(leaf.cert.read_bytes())
    with pytest.raises(OutOfValidityError) as refused:
        check(validity, now=datetime.datetime.now(datetime.UTC).timestamp())
    assert refused.value.reason is TlsRefusal.EXPIRED
    assert str(refused.value) == f"the certificate expired at {iso(at(leaf))} (notAfter)"


def test_a_chain_not_yet_valid_is_refused_naming_both_ends(ca: CertificateAuthority) -> None:
    leaf = ca.issue("leaf", starts_in=DAY)
    validity = chain_validity(leaf.cert.read_bytes())
    with pytest.raises(OutOfValidityError) as refused:
        check(validity, now=validity.not_before - 1)
    assert refused.value.reason is TlsRefusal.NOT_YET_VALID
    assert "notBefore" in str(refused.value) and iso(at(leaf)) in str(refused.value)
    check(validity, now=validity.not_before)  # valid from its first second


def test_validity_is_checked_only_when_a_time_is_given(ca: CertificateAuthority) -> None:
    leaf = ca.issue("leaf", valid_for=-DAY)
    files = TlsFiles(str(leaf.cert), str(leaf.key), None, LISTENER_OPTIONS)
    assert load_material(files).validity is not None  # a worker's first load
    with pytest.raises(MaterialError, match=r"^--tls-cert '.*': the certificate expired"):
        load_material(files, now=at(leaf) + 1)


def test_a_reload_refuses_an_expired_version_once_and_takes_a_good_one(
    ca: CertificateAuthority, tmp_path: Path,
) -> None:
    now = [0.0]
    first = ca.issue("first", client=True)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"

    def install(issued: Issued) -> None:
        """Links to a new directory per version, as a secret volume's: seen however close
        two versions come."""
        version = tmp_path / issued.cert.stem
        version.mkdir()
        for source, path in ((issued.cert, cert), (issued.key, key)):
            (version / path.name).write_bytes(source.read_bytes())
            (tmp_path / "link").symlink_to(version / path.name)
            (tmp_path / "link").replace(path)

    install(first)
    stats = CallStats()
    files = TlsFiles(str(cert), str(key), None, BACKEND_OPTIONS)
    credentials = BackendCredentials(files, stats=stats, wall_clock=lambda: now[0])
    assert stats.certificates == {TlsSide.BACKEND: at(first)}
    expired = ca.issue("expired", client=True, valid_for=-DAY)
    now[0] = at(expired) + 60
    install(expired)
    for _ in range(3):  # looked at again each time, counted once
        assert credentials.changed() is None
    assert stats.tls_refused == {(TlsSide.BACKEND, TlsRefusal.EXPIRED): 1}
    assert stats.certificates == {TlsSide.BACKEND: at(first)}  # still the one in use
    later = ca.issue("later", client=True, starts_in=DAY)
    install(later)
    assert credentials.changed() is None  # not yet valid: refused, counted
    assert stats.tls_refused[TlsSide.BACKEND, TlsRefusal.NOT_YET_VALID] == 1
    now[0] = at(later) - 60  # its time has come: the same version is taken
    assert credentials.changed() is not None
    assert stats.certificates == {TlsSide.BACKEND: at(later)}
