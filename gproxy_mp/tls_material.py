"""TLS material: the files of a `TlsFiles` (`tls.py`), read and checked.

The files are read within their bounds (`files.py`) and checked with Python's `ssl` (a key
must match its certificate; a CA file must parse) and, given a clock, for the certificate
chain's validity (`certificates.py`: a chain before its notBefore or past its notAfter is
refused, naming notAfter): at start a bad one is one line naming the option and the file,
exit 2 (`check_tls`; for the native data plane also a key its rustls cannot sign with); a
worker re-reads them when they change (`worker/tls_watch.py`) and keeps the old material if
the new is bad. No gRPC here.

CA bundles (`--tls-client-ca`, `--backend-ca`) are not refused for expired CAs: a bundle
often holds an outgoing and an incoming CA during a rotation, and peers' verification skips a
CA that expired; an expired CA that is the only one trusted shows as failed handshakes.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from gproxy_mp import certificates
from gproxy_mp.errors import ConfigError
from gproxy_mp.files import CA_BUNDLE_LIMIT, TLS_FILE_LIMIT, FileReadError, read_bounded
from gproxy_mp.tls import MaterialError, TlsFiles


@dataclass(frozen=True, slots=True)
class Material:
    cert: bytes | None
    key: bytes | None
    ca: bytes | None
    validity: certificates.Validity | None = None  # the certificate chain's, when there is one


def load_material(files: TlsFiles, *, now: float | None = None) -> Material:
    """The files' contents, checked: the certificate chain and key parse and belong together,
    the CA file parses, and, when `now` (Unix seconds) is given, the chain is valid then.
    Raises `MaterialError` naming the option and file."""
    cert_option, key_option, ca_option = files.options
    cert = key = ca = None
    validity = None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if files.cert is not None and files.key is not None:
        cert = _read(cert_option, files.cert, limit=TLS_FILE_LIMIT)
        key = _read(key_option, files.key, limit=TLS_FILE_LIMIT)
        try:
            context.load_cert_chain(files.cert, files.key)
        except ssl.SSLError as e:
            reason = e.reason or str(e)
            if "KEY_VALUES_MISMATCH" in str(e).upper():
                raise MaterialError(f"{key_option} {files.key!r} does not belong to "
                                    f"{cert_option} {files.cert!r}") from None
            raise MaterialError(f"{cert_option} {files.cert!r} / {key_option} {files.key!r}: "
                                f"not a PEM certificate chain and private key ({reason})"
                                ) from None
        validity = _validity(cert_option, files.cert, cert, now=now)
    if files.ca is not None:
        ca = _read(ca_option, files.ca, limit=CA_BUNDLE_LIMIT)
        try:
            context.load_verify_locations(cadata=ca.decode("ascii", errors="replace"))
        except (ssl.SSLError, ValueError) as e:
            raise MaterialError(f"{ca_option} {files.ca!r}: not PEM CA certificates "
                                f"({getattr(e, 'reason', None) or e})") from None
    return Material(cert=cert, key=key, ca=ca, validity=validity)


def _validity(option: str, path: str, pem: bytes, *, now: float | None
              ) -> certificates.Validity:
    try:
        validity = certificates.chain_validity(pem)
    except ValueError as e:  # ssl accepted it, so this is rare: a certificate ssl skips
        raise MaterialError(f"{option} {path!r}: not a PEM certificate chain ({e})") from None
    if now is not None:
        try:
            certificates.check(validity, now=now)
        except certificates.OutOfValidityError as e:
            raise MaterialError(f"{option} {path!r}: {e}", reason=e.reason) from None
    return validity


def check_tls(files: TlsFiles | None, *, now: float | None = None,
              native: bool = False) -> None:
    """At start: every file of `files` is usable and the certificate valid at `now` (default:
    the time now), else `ConfigError` (exit 2). `native`: for the native data plane, whose
    rustls signs with fewer key types than `ssl` loads (`native_key_problem`)."""
    if files is not None:
        try:
            material = load_material(files, now=time.time() if now is None else now)
        except MaterialError as e:
            raise ConfigError(str(e)) from None
        if native and material.key is not None:
            problem = native_key_problem(material.key)
            if problem is not None:
                raise ConfigError(f"{files.options[1]} {files.key!r}: {problem}, which the "
                                  "native data plane's TLS (rustls with ring) cannot sign "
                                  "with: use an ECDSA P-256 or P-384, Ed25519 or RSA key of "
                                  "2048 bits or more, or --data-plane grpcio")


def native_key_problem(key: bytes) -> str | None:
    """What ring cannot sign with in a private key (PEM) `ssl` took: an RSA key under 2048
    bits, an EC key on another curve than P-256 or P-384, DSA, Ed448; None when it can."""
    loaded = serialization.load_pem_private_key(key, password=None)
    if isinstance(loaded, rsa.RSAPrivateKey):
        return None if loaded.key_size >= 2048 else f"an RSA key of {loaded.key_size} bits"
    if isinstance(loaded, ec.EllipticCurvePrivateKey):
        curve = loaded.curve.name
        return None if curve in ("secp256r1", "secp384r1") else f"an EC key on {curve}"
    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(loaded, dsa.DSAPrivateKey):
        return "a DSA key"
    return "an Ed448 key" if isinstance(loaded, ed448.Ed448PrivateKey) else "a key of its type"


def _read(option: str, path: str, *, limit: int) -> bytes:
    try:
        return read_bounded(path, option=option, limit=limit)
    except FileReadError as e:
        raise MaterialError(str(e)) from None
