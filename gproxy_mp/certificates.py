"""When a certificate chain is valid: its notBefore and notAfter, and a check against a clock.

Pure: PEM bytes in, a `Validity` out (`cryptography` parses the X.509 structures; nothing is
verified here, gRPC's TLS does that per handshake). A chain is usable while every certificate
in it is, so its window runs from the latest notBefore to the earliest notAfter; an expired
intermediate makes peers refuse the chain as surely as an expired leaf. `check` says why a
chain is out of its window in words a person acts on, naming notAfter either way, and
`Refusal` (the bus's label value) says which case it is.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509

from gproxy_mp.bus.schema import TlsRefusal


@dataclass(frozen=True, slots=True)
class Validity:
    """A chain's window, Unix seconds, and the subjects (`CN=...`) of the certificates whose
    notBefore and notAfter bound it: "" when that is the leaf."""

    not_before: float
    not_after: float
    not_before_of: str
    not_after_of: str


class OutOfValidityError(ValueError):
    """A chain used before its notBefore or after its notAfter; `reason` says which."""

    def __init__(self, message: str, *, reason: TlsRefusal) -> None:
        super().__init__(message)
        self.reason = reason


def chain_validity(pem: bytes) -> Validity:
    """The window of the chain in `pem`; ValueError when it holds no PEM certificate."""
    certificates = x509.load_pem_x509_certificates(pem)
    starts = max(certificates, key=lambda c: c.not_valid_before_utc)
    ends = min(certificates, key=lambda c: c.not_valid_after_utc)
    return Validity(not_before=starts.not_valid_before_utc.timestamp(),
                    not_after=ends.not_valid_after_utc.timestamp(),
                    not_before_of=_subject(starts, leaf=certificates[0]),
                    not_after_of=_subject(ends, leaf=certificates[0]))


def _subject(certificate: x509.Certificate, *, leaf: x509.Certificate) -> str:
    return "" if certificate is leaf else certificate.subject.rfc4514_string()


def _which(subject: str) -> str:
    return f"its chain's certificate '{subject}'" if subject else "the certificate"


def iso(timestamp: float) -> str:
    """`2026-12-07T13:00:00Z`: how notBefore and notAfter are written in messages."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def check(validity: Validity, *, now: float) -> None:
    """`OutOfValidityError` when `now` is outside the window: the message (to follow
    `--option 'file': `) says what and names notAfter."""
    if now > validity.not_after:
        raise OutOfValidityError(f"{_which(validity.not_after_of)} expired at "
                                 f"{iso(validity.not_after)} (notAfter)",
                                 reason=TlsRefusal.EXPIRED)
    if now < validity.not_before:
        raise OutOfValidityError(
            f"{_which(validity.not_before_of)} is not valid before "
            f"{iso(validity.not_before)} (notBefore; notAfter {iso(validity.not_after)}): "
            "is this machine's clock behind?",
            reason=TlsRefusal.NOT_YET_VALID)
