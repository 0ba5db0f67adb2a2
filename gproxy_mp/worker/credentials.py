"""TLS credentials of a worker, re-read when their files change (`tls.py` reads and checks).

- Listener (`ReloadingServerCredentials`): gRPC asks the certificate fetcher at every TLS
  handshake, from its own threads. `fetch` looks at the files at most once per
  `RELOAD_CHECK_INTERVAL` and hands gRPC new material only when they changed and pass the
  checks of the start. New connections then use it; existing connections keep theirs.
- Backends (`BackendCredentials`): gRPC's Python channels cannot change their credentials, so
  `changed()`, asked every `RELOAD_CHECK_INTERVAL` by the worker's TLS watcher root, returns
  new channel credentials when the files changed and are usable; the backend pool then opens
  new channels with them and lets the old ones finish their calls (`BackendPool.renew`).

New files that do not parse, or a key that does not match, are logged once each and the old
material kept. SIGHUP (`reload_now`) looks at the files at once instead of at the next check;
the listener hands what it found to gRPC at the next handshake.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import grpc

from gproxy_mp.tls import Material, MaterialError, TlsFiles, load_material, signature

log = logging.getLogger(__name__)

RELOAD_CHECK_INTERVAL = 1.0
"""Seconds between two looks at the files."""


class _Watched:
    """Files, their last usable material, and whether they changed since."""

    def __init__(self, files: TlsFiles, what: str) -> None:
        self.files = files
        self.material = load_material(files)
        self._what = what
        self._signature = signature(files)
        self._failed: str | None = None  # the last error logged, so each is logged once
        self.reloads = 0

    def reload(self) -> Material | None:
        """New material if the files changed and are usable, else None."""
        now = signature(self.files)
        if now == self._signature:
            return None
        try:
            material = load_material(self.files)
        except MaterialError as e:
            if str(e) != self._failed:
                log.error("TLS: new %s files are not usable, keeping the current ones: %s",
                          self._what, e)
                self._failed = str(e)
            return None
        self._signature, self._failed = now, None
        if material == self.material:
            return None
        self.material = material
        self.reloads += 1
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

    def __init__(self, files: TlsFiles, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._watched = _Watched(files, "listener certificate")
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

    def __init__(self, files: TlsFiles) -> None:
        self._watched = _Watched(files, "backend TLS")

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
