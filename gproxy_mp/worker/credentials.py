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

Watching the files, refusing unusable new ones and counting refusals is plane-neutral
(`tls_watch.py`, shared with the native plane); this module is the gRPC half.

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

from gproxy_mp.bus.schema import TlsSide
from gproxy_mp.tls import TlsFiles
from gproxy_mp.tls_material import Material
from gproxy_mp.worker.stats import CallStats
from gproxy_mp.worker.tls_watch import RELOAD_CHECK_INTERVAL, WatchedTls

log = logging.getLogger(__name__)


def _server_configuration(material: Material) -> grpc.ServerCertificateConfiguration:
    assert material.key is not None and material.cert is not None
    return grpc.ssl_server_certificate_configuration(
        [(material.key, material.cert)], root_certificates=material.ca)


class ReloadingServerCredentials:
    """The listener's TLS credentials; `fetch` is gRPC's certificate fetcher."""

    def __init__(self, files: TlsFiles, *, stats: CallStats,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._watched = WatchedTls(files, "listener certificate", side=TlsSide.LISTENER,
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
        self._watched = WatchedTls(files, "backend TLS", side=TlsSide.BACKEND, stats=stats,
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
