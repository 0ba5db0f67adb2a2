"""A test certificate authority: real X.509 certificates and keys, written as PEM files.

`CertificateAuthority(directory, name)` makes a self-signed CA (EC P-256); `issue` signs a leaf
for a server (SANs: DNS names and IP addresses) or a client, valid from five minutes ago for a
day unless told otherwise (an expired one: `valid_for` negative; a not yet valid one:
`starts_in` positive). Every file is PEM, in `directory`, named after the CA and the leaf.

Key identifiers as RFC 5280 asks of a conforming CA (the CA's subject key identifier; each
leaf's own and its authority key identifier): Python 3.13's default TLS context verifies with
VERIFY_X509_STRICT, which refuses a leaf without an authority key identifier ("Missing
Authority Key Identifier"), as the kubernetes client in the image (Debian's Python 3.13 on a
local base) met the test API server's certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=1)
BACKDATE = datetime.timedelta(minutes=5)
"""Certificates start this long before now, so a clock a little behind still accepts them."""


@dataclass(frozen=True, slots=True)
class Issued:
    """A leaf's files: its certificate (chain of one) and its private key."""

    cert: Path
    key: Path
    not_after: datetime.datetime | None = None


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, key_cert_sign=cert_sign, crl_sign=cert_sign,
        content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, encipher_only=False, decipher_only=False)


class CertificateAuthority:
    def __init__(self, directory: Path, name: str = "gproxy-mp-tests-ca") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        start = datetime.datetime.now(datetime.UTC) - BACKDATE
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                           critical=False)
            .sign(self._key, hashes.SHA256()))
        self.cert = directory / f"{name}.pem"
        self.cert.write_bytes(self.pem())

    def pem(self) -> bytes:
        """The CA certificate, PEM: what a peer trusts."""
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, name: str, *, dns: Sequence[str] = (), ips: Sequence[str] = (),
              client: bool = False, valid_for: datetime.timedelta = VALIDITY,
              starts_in: datetime.timedelta | None = None) -> Issued:
        """A leaf `name` for a server (with `dns` and `ips` as SANs) or, with `client`, a
        client; `valid_for` from BACKDATE ago (negative: already expired), or from
        `starts_in` from now (positive: not yet valid)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        start = now - BACKDATE
        if starts_in is not None:
            start = now + starts_in
        elif valid_for < datetime.timedelta(0):
            start += valid_for - datetime.timedelta(hours=1)
            valid_for = datetime.timedelta(hours=1)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name)).issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + valid_for)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False))
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = Issued(cert=self.directory / f"{self.name}-{name}.pem",
                        key=self.directory / f"{self.name}-{name}-key.pem",
                        not_after=start + valid_for)
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(_pem_key(key))
        issued.key.chmod(0o600)
        return issued
