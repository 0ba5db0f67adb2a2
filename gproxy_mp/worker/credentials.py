"""TLS credentials of a worker, re-read when their files change (`tls_material.py` reads and
checks them).

- Listener (`ReloadingServerCredentials`): gRPC asks the certificate fetcher at every TLS
  handshake, from its own threads. `fetch` looks at the files at most once per
  `RELOAD_CHECK_INTERVAL` and hands gRPC new material only when they changed and pass the
  checks of the start. New connections then use it; existing connections keep theirs.
- Backends (`BackendCredentials`): gRPC's Python channels cannot change their credentials, so
  `changed()`, asked every `RELOAD_CHECK_INTERVAL` by the worker's TLS watcher root, returns
  new channel credentials when the files changed and are usable; the backend pool then opens
  new channels with them and lets the old ones finish their calls (`BackendPool.renew`).

New files that are not usable (unreadable, too large, not PEM, a key of another certificate, a
certificate chain before its notBefore or past its notAfter: what `tls_material.check_tls`
refuses at start) are logged once per version of the files (their `signature`), counted in the
stats' `tls_refused` by side and reason, and the old material kept. A refused version is looked
at again at each check, so a certificate that was not yet valid is taken once it is.

A worker's first load does not refuse a certificate out of its validity: the supervisor refused
it at start, so it expired since, and a replacement worker that refused it would take a serving
route down; it logs a warning instead, and the expiry gauge (`stats.certificates`, the chain
in use) shows it.

SIGHUP (`reload_now`) looks at the files at once instead of at the next check; the listener
hands what it found to gRPC at the next handshake.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import grpc

from gproxy_mp import certificates
from gproxy_mp.bus.schema import TlsSide
from gproxy_mp.tls import MaterialError, TlsFiles, signature
from gproxy_mp.tls_material import Material, load_material
from gproxy_mp.worker.stats import CallStats

log = logging.getLogger(__name__)

RELOAD_CHECK_INTERVAL = 1.0
"""Seconds between two looks at the files."""


class _Watched:
    """Files, their last usable material, and whether they changed since."""

    def __init__(self, files: TlsFiles, what: str, *, side: TlsSide, stats: CallStats,
                 wall_clock: Callable[[], float]) -> None:
        self.files = files
        self._what, self._side, self._stats, self._wall_clock = what, side, stats, wall_clock
        self._signature = signature(files)
        self.material = load_material(files)
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


def _server_configuration(material: Material) -> grpc.ServerCertificateConfiguration:
    assert material.key is not None and material.cert is not None
    return grpc.ssl_server_certificate_configuration(
        [(material.key, material.cert)], root_certificates=material.ca)


class ReloadingServerCredentials:
    """The listener's TLS credentials; `fetch` is gRPC's certificate fetcher."""

    def __init__(self, files: TlsFiles, *, stats: CallStats,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._watched = _Watched(files, "listener certificate", side=TlsSide.LISTENER,
                                 stats=stats, wall_clock=wall_clock)
        self._clock = clock
        self._lock = threading.Lock()
        self._looked = clock()
        self._pending: grpc.ServerCertificateConfiguration | None = None  # found by reload_now

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            _server_configuration(self._watched.material),
            self.fetch,  # type: ignore[arg-type]  # None means "unchanged" (grpc's docs)
            require_client_authentication=self._watched.files.ca is not None)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """New material if the files changed and are usable; None: keep the current one.
        Called by gRPC at every handshake, on its threads: never raises."""
        with self._lock:
            if self._pending is not None:
                pending, self._pending = self._pending, None
                return pending
            now = self._clock()
            if now - self._looked < RELOAD_CHECK_INTERVAL:
                return None
            self._looked = now
            try:
                material = self._watched.reload()
            except Exception:  # a fetcher that raises fails the handshake: keep serving
                log.exception("TLS: checking the listener's certificate files failed")
                return None
            return None if material is None else _server_configuration(material)

    def reload_now(self) -> str:
        """Look at the files now (SIGHUP); new usable material goes to gRPC at the next
        handshake. What happened, for the log line."""
        with self._lock:
            before = self._watched.reloads
            material = self._watched.reload()
            self._looked = self._clock()
            if material is not None:
                self._pending = _server_configuration(material)
            return self._watched.outcome(before)


def _channel_credentials(material: Material) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=material.ca,
                                        private_key=material.key,
                                        certificate_chain=material.cert)


class BackendCredentials:
    """Channel credentials towards the backends, renewed when their files change."""

    def __init__(self, files: TlsFiles, *, stats: CallStats,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._watched = _Watched(files, "backend TLS", side=TlsSide.BACKEND, stats=stats,
                                 wall_clock=wall_clock)

    def credentials(self) -> grpc.ChannelCredentials:
        return _channel_credentials(self._watched.material)

    def changed(self) -> grpc.ChannelCredentials | None:
        material = self._watched.reload()
        return None if material is None else _channel_credentials(material)

    def reload_now(self, renew: Callable[[grpc.ChannelCredentials], None]) -> str:
        """Look at the files now (SIGHUP), as `watch` would; what happened, for the log line."""
        before = self._watched.reloads
        credentials = self.changed()
        if credentials is not None:
            renew(credentials)
        return self._watched.outcome(before)

    async def watch(self, renew: Callable[[grpc.ChannelCredentials], None]) -> None:
        """Hand `renew` new credentials whenever the files change; runs until cancelled
        (a worker root)."""
        while True:
            await asyncio.sleep(RELOAD_CHECK_INTERVAL)
            credentials = self.changed()
            if credentials is not None:
                renew(credentials)
