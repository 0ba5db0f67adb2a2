"""The listener's TLS credentials, re-read when their files change (`--tls-cert` and co.).

gRPC asks the certificate fetcher at every TLS handshake, from its own threads. `fetch` looks
at the files at most once per `RELOAD_CHECK_INTERVAL` (`tls.signature`: a symlink swap is
seen) and hands gRPC new material only when they changed and the new files pass the checks of
the start (`tls.load_material`). New connections then use it; existing connections keep theirs.
New files that do not parse, or a key that does not match, are logged once each and the old
material kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import grpc

from gproxy_mp.tls import ListenerTls, Material, MaterialError, load_material, signature

log = logging.getLogger(__name__)

RELOAD_CHECK_INTERVAL = 1.0
"""Seconds between two looks at the files; a handshake in between uses what was loaded."""


def _configuration(material: Material) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(material.key, material.cert)], root_certificates=material.client_ca)


class ReloadingServerCredentials:
    """The listener's TLS credentials; `fetch` is gRPC's certificate fetcher."""

    def __init__(self, files: ListenerTls, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._files = files
        self._clock = clock
        self._lock = threading.Lock()
        self._material = load_material(files)
        self._signature = signature(files)
        self._looked = clock()
        self._failed: str | None = None  # the last error logged, so each is logged once
        self.reloads = 0

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            _configuration(self._material),
            self.fetch,  # type: ignore[arg-type]  # None means "unchanged" (grpc's docs)
            require_client_authentication=self._files.client_ca is not None)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """New material if the files changed and are usable; None: keep the current one.
        Called by gRPC at every handshake, on its threads: never raises."""
        with self._lock:
            now = self._clock()
            if now - self._looked < RELOAD_CHECK_INTERVAL:
                return None
            self._looked = now
            try:
                return self._reload()
            except Exception:  # a fetcher that raises fails the handshake: keep serving
                log.exception("TLS: checking the listener's certificate files failed")
                return None

    def _reload(self) -> grpc.ServerCertificateConfiguration | None:
        now_signature = signature(self._files)
        if now_signature == self._signature:
            return None
        try:
            material = load_material(self._files)
        except MaterialError as e:
            if str(e) != self._failed:
                log.error("TLS: new listener certificate files are not usable, keeping the "
                          "current ones: %s", e)
                self._failed = str(e)
            return None
        self._signature, self._failed = now_signature, None
        if material == self._material:
            return None
        self._material = material
        self.reloads += 1
        log.info("TLS: listener certificate files reloaded (%s)", self._files.cert)
        return _configuration(material)
