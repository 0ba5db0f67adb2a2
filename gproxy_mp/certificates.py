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
    """A chain's window, Unix seconds; `subject` names the certificate that closes it (the
    leaf's `CN=...` unless an intermediate expires first), `opener` the one that opens it."""

    not_before: float
    not_after: float
    opener: str
    subject: str


class OutOfValidityError(ValueError):
    """A chain used before its notBefore or after its notAfter; `reason` says which."""

    def __init__(self, message: str, *, reason: TlsRefusal) -> None:
        super().__init__(message)
        self.reason = reason


def chain_validity(pem: bytes) -> Validity:
    """The window of the chain in `pem`; ValueError when it holds no PEM certificate."""
    certificates = x509.load_pem_x509_certificates(pem)
    opener = max(certificates, key=lambda c: c.not_valid_before_utc)
    closer = min(certificates, key=lambda c: c.not_valid_after_utc)
    return Validity(not_before=opener.not_valid_before_utc.timestamp(),
                    not_after=closer.not_valid_after_utc.timestamp(),
                    opener="" if opener is certificates[0] else opener.subject.rfc4514_string(),
                    subject="" if closer is certificates[0] else closer.subject.rfc4514_string())


def iso(timestamp: float) -> str:
    """`2026-12-07T13:00:00Z`: how notBefore and notAfter are written in messages."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def check(validity: Validity, *, now: float) -> None:
    """`OutOfValidityError` when `now` is outside the window: the message (to follow
    `--option 'file': `) says what and names notAfter."""
    if now > validity.not_after:
        which = (f"its chain's certificate '{validity.subject}'" if validity.subject
                 else "the certificate")
        raise OutOfValidityError(f"{which} expired at {iso(validity.not_after)} (notAfter)",
                                 reason=TlsRefusal.EXPIRED)
    if now < validity.not_before:
        which = (f"its chain's certificate '{validity.opener}'" if validity.opener
                 else "the certificate")
        raise OutOfValidityError(
            f"{which} is not valid before {iso(validity.not_before)} (notBefore; notAfter "
            f"{iso(validity.not_after)}): is this machine's clock behind?",
            reason=TlsRefusal.NOT_YET_VALID)
