"""The native plane's TLS: both sides' files watched (`tls_watch.py`, as the grpcio plane's) and
their PEM bytes handed to the engine, which builds rustls configurations from them.

Python stays in control of the files: reading them within bounds and the checks of the start
(key match, validity) are `tls_material`'s, in the same words on both planes; the engine only
builds and publishes. New connections take the new configuration, open ones keep theirs
(`native/src/tls.rs`). Material rustls refuses although `ssl` took it (an RSA key under 2048
bits, a P-521 key: ring does not sign with those) is a `MaterialError` like any other: on a
reload the old material stays, logged and counted (`gproxy_tls_reload_failures_total`); at
start the supervisor refuses such keys already (`tls_material.native_key_problem`, exit 2),
and anything else rustls refuses stops the worker with one line naming the files.

Without `--backend-ca` the backends are verified against the system's CAs: Python's `ssl`
says where they are (`ssl.get_default_verify_paths`), read once, bounded, at start. (grpcio's
own channels use the CA bundle shipped inside grpcio instead; a private CA is the common case
for backends, and `--backend-ca` names it on both planes.)

This module imports `cryptography` (through `tls_watch`): `planes/native.py` imports it only
when TLS options are given, so that an idle plaintext native worker does not load it.
Concurrency: everything on the worker's asyncio loop; the engine's setters swap a pointer.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from functools import partial
from typing import Protocol

from gproxy_mp.bus.schema import TlsSide
from gproxy_mp.config import WorkerOptions
from gproxy_mp.files import CA_BUNDLE_LIMIT, FileReadError, read_bounded
from gproxy_mp.tls import MaterialError, TlsFiles, backend_tls, listener_tls
from gproxy_mp.tls_material import Material
from gproxy_mp.worker.stats import CallStats
from gproxy_mp.worker.tls_watch import RELOAD_CHECK_INTERVAL, WatchedTls

log = logging.getLogger(__name__)


class TlsEngine(Protocol):
    """What this module uses of `gproxy_mp._native.Engine` (`native.py` stays its one
    importer)."""

    def set_listener_tls(self, cert: bytes, key: bytes, client_ca: bytes | None = None
                         ) -> None: ...
    def set_backend_tls(self, ca: bytes, cert: bytes | None = None, key: bytes | None = None,
                        server_name: str | None = None) -> None: ...


def system_ca() -> bytes:
    """The system's CA bundle (PEM), where Python's `ssl` looks for it; `MaterialError` when
    there is none."""
    paths = ssl.get_default_verify_paths()
    path = paths.cafile or paths.openssl_cafile
    try:
        return read_bounded(path, option="the system CA bundle", limit=CA_BUNDLE_LIMIT)
    except FileReadError as e:
        raise MaterialError(f"--backend-tls without --backend-ca verifies backends against "
                            f"the system's CAs, but: {e}; give --backend-ca") from None


def _named(files: TlsFiles) -> str:
    paths = (files.cert, files.key, files.ca)
    return " ".join(f"{option} {path!r}" for option, path in zip(files.options, paths, strict=True)
                    if path is not None)


class NativeTls:
    """Both sides' TLS files, watched, and the engine given what they hold."""

    def __init__(self, engine: TlsEngine, *, options: WorkerOptions, server_name: str | None,
                 stats: CallStats, wall_clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._server_name = server_name
        self.listener: WatchedTls | None = None
        self.backend: WatchedTls | None = None
        files = listener_tls(options)
        if files is not None:
            self.listener = WatchedTls(files, "listener certificate", side=TlsSide.LISTENER,
                                       stats=stats, wall_clock=wall_clock,
                                       accept=partial(self._listener_material, files))
        files = backend_tls(options)
        if files is not None:
            self._system_ca = system_ca() if files.ca is None else b""
            self.backend = WatchedTls(files, "backend TLS", side=TlsSide.BACKEND, stats=stats,
                                      wall_clock=wall_clock,
                                      accept=partial(self._backend_material, files))

    def _listener_material(self, files: TlsFiles, material: Material) -> None:
        assert material.cert is not None and material.key is not None  # a listener has both
        try:
            self._engine.set_listener_tls(material.cert, material.key, material.ca)
        except ValueError as e:
            raise MaterialError(f"{_named(files)}: the native engine's TLS refused them: {e}"
                                ) from None

    def _backend_material(self, files: TlsFiles, material: Material) -> None:
        try:
            self._engine.set_backend_tls(material.ca or self._system_ca, material.cert,
                                         material.key, self._server_name)
        except ValueError as e:
            named = _named(files) or "the system CA bundle"
            raise MaterialError(f"{named}: the native engine's TLS refused them: {e}") from None

    def _sides(self) -> list[WatchedTls]:
        return [watched for watched in (self.listener, self.backend) if watched is not None]

    def reload_now(self) -> str:
        """Look at the files now (SIGHUP); what happened, for the log line."""
        done = []
        for watched in self._sides():
            before = watched.reloads
            watched.reload()
            done.append(watched.outcome(before))
        return ", ".join(done)

    async def watch(self) -> None:
        """Hand the engine new material whenever the files change; runs until cancelled
        (a worker root)."""
        while True:
            await asyncio.sleep(RELOAD_CHECK_INTERVAL)
            for watched in self._sides():
                watched.reload()
