"""One side's TLS files as a worker uses them, whichever plane serves: the material in use, and
new material when the files change and pass the start's checks (`tls_material.py`).

Plane-neutral: the grpcio plane (`credentials.py`) turns the material into gRPC credentials,
the native plane (`planes/native_tls.py`) hands the PEM bytes to the engine. A plane that can
still refuse material the checks passed (rustls, stricter than Python's `ssl` on a few key
types) gives `WatchedTls` an `accept` hook: it raises `MaterialError` to refuse, and the
refusal is handled like any other, before anything is replaced.

New files that are not usable (unreadable, too large, not PEM, a key of another certificate, a
certificate chain before its notBefore or past its notAfter, or refused by `accept`) are
logged once per version of the files (their `signature`), counted in the stats' `tls_refused`
by side and reason, and the old material kept. A refused version is looked at again at each
check, so a certificate that was not yet valid is taken once it is.

A worker's first load does not refuse a certificate out of its validity: the supervisor refused
it at start, so it expired since, and a replacement worker that refused it would take a serving
route down; it logs a warning instead, and the expiry gauge (`stats.certificates`, the chain
in use) shows it.

This module imports `cryptography` (through `tls_material`): a native-plane worker imports it
only when TLS options are given (see `planes/native.py`). No gRPC here. Not thread-safe: the
grpcio listener's fetcher calls it under its own lock, everything else on the worker's loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gproxy_mp import certificates
from gproxy_mp.bus.schema import TlsSide
from gproxy_mp.tls import MaterialError, TlsFiles, signature
from gproxy_mp.tls_material import Material, load_material
from gproxy_mp.worker.stats import CallStats

log = logging.getLogger(__name__)

RELOAD_CHECK_INTERVAL = 1.0
"""Seconds between two looks at the files."""


def _accept_all(material: Material) -> None:
    del material


class WatchedTls:
    """Files, their last usable material, and whether they changed since.

    `accept(material)`: called with the first material and with each new one before it is
    taken; raises `MaterialError` to refuse it (at the first load, the error propagates)."""

    def __init__(self, files: TlsFiles, what: str, *, side: TlsSide, stats: CallStats,
                 wall_clock: Callable[[], float],
                 accept: Callable[[Material], None] = _accept_all) -> None:
        self.files = files
        self._what, self._side, self._stats, self._wall_clock = what, side, stats, wall_clock
        self._accept = accept
        self._signature = signature(files)
        self.material = load_material(files)
        accept(self.material)
        self._failed: tuple[object, ...] | None = None  # the refused version last logged
        self.reloads = 0
        self._in_use()
        validity = self.material.validity
        if validity is not None:
            try:
                certificates.check(validity, now=wall_clock())
            except certificates.OutOfValidityError as e:
                log.warning("TLS: the %s certificate %r is used as it is, but TLS peers will "
                            "refuse it: %s", what, files.cert, e)

    def _in_use(self) -> None:
        if self.material.validity is not None:
            self._stats.record_certificate(self._side, self.material.validity.not_after)

    def reload(self) -> Material | None:
        """New material if the files changed and are usable, else None."""
        now = signature(self.files)
        if now == self._signature:
            return None
        try:
            material = load_material(self.files, now=self._wall_clock())
            if material != self.material:
                self._accept(material)
        except MaterialError as e:
            if now != self._failed:
                log.error("TLS: new %s files are not usable, keeping the current ones: %s",
                          self._what, e)
                self._stats.record_tls_refused(self._side, e.reason)
                self._failed = now
            return None
        self._signature, self._failed = now, None
        if material == self.material:
            return None
        self.material = material
        self.reloads += 1
        self._in_use()
        log.info("TLS: %s files reloaded", self._what)
        return material

    def outcome(self, reloads_before: int) -> str:
        """What the last `reload` did, for the SIGHUP log line."""
        if self.reloads > reloads_before:
            return f"{self._what} reloaded"
        if self._failed is not None:
            return f"{self._what} not usable, kept the current ones"
        return f"{self._what} unchanged"
