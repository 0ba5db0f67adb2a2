"""The native data plane: the Rust engine of `gproxy_mp._native`, driven from the worker.

The engine runs one tokio current_thread runtime on a thread of its own and serves h2c on a
duplicate of the listener this adapter binds (`listener.py`); the worker's asyncio loop keeps
the main thread and its signals. Nothing here runs per call: endpoint sets go in whole
(`Engine.set_endpoints`, swapped in lock-free), counts come out as atomics read at each status
report.

The engine closes a pipe's write end when its runtime thread ends; `watch` waits for that on
the loop (no thread, no polling). Ending when nobody asked it to (it failed to serve) is an
error: logged with the engine's reason, and the worker stops with a non-zero exit so that the
supervisor replaces it. A panic aborts the whole process (the crate's `panic = "abort"`): the
supervisor sees a crashed worker and replaces it.

TLS (`native_tls.py`): Python reads and checks the files and hands the engine PEM bytes; the
engine counts handshake failures per side, read here at each status report. That module
imports `cryptography` (the checks of the files), so it is imported only when TLS options are
given: a plaintext native worker stays without it (idle memory; an import-linter contract
with that one import excepted).

This module, and everything it imports, never imports grpc (an import-linter contract).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import TYPE_CHECKING

from gproxy_mp._native import Engine
from gproxy_mp.bus.schema import MAX_UNHEALTHY, BackendCondition, CallCounts, TlsSide
from gproxy_mp.launch import WorkerConfig
from gproxy_mp.model import EndpointSet
from gproxy_mp.tls import backend_tls, listener_tls
from gproxy_mp.worker.planes import Root
from gproxy_mp.worker.planes.listener import bind_listener
from gproxy_mp.worker.stats import CallStats

if TYPE_CHECKING:
    from gproxy_mp.worker.planes.native_tls import NativeTls

log = logging.getLogger(__name__)

STOP_MARGIN = 5.0
"""Seconds, beyond the drain timeout, to wait for the engine's runtime to end after a drain
(it cancels what is left, then gives cancelled calls 2 s to unwind)."""


class EngineError(RuntimeError):
    """The engine's runtime ended without being asked to."""


class NativePlane:
    def __init__(self, config: WorkerConfig) -> None:
        options = config.options
        self._address = config.bind_address
        self._engine = Engine(target=config.target,
                              max_concurrent_streams=options.max_concurrent_streams,
                              connect_timeout=options.connect_timeout,
                              max_connection_age=options.max_connection_age,
                              max_connection_age_grace=options.max_connection_age_grace,
                              balancer=options.balancer)
        self._tls_stats = CallStats()  # TLS refusals and certificates in use; calls: the engine
        self._tls: NativeTls | None = None
        if listener_tls(options) is not None or backend_tls(options) is not None:
            # MaterialError (either side): the files changed since the supervisor checked them.
            from gproxy_mp.worker.planes.native_tls import NativeTls  # noqa: PLC0415

            self._tls = NativeTls(self._engine, options=options, stats=self._tls_stats,
                                  server_name=options.backend_tls_server_name
                                  or config.server_name)
        self._listener: socket.socket | None = None
        self._wake_read, self._wake_write = os.pipe()
        self._ended: asyncio.Future[None] | None = None
        self._asked_to_end = False

    def roots(self) -> list[Root]:
        roots = [("native engine", self._watch())]
        if self._tls is not None:
            roots.append(("TLS watcher", self._tls.watch()))
        return roots

    async def _watch(self) -> None:
        """Wait for the engine's runtime thread to end; raise if nobody asked it to."""
        await self._wait_ended()
        outcome = self._engine.outcome()
        if not self._asked_to_end:
            why = outcome[1] if outcome is not None else "no reason recorded"
            raise EngineError(f"the native engine stopped serving: {why}")
        await asyncio.get_running_loop().create_future()  # ended as asked: wait to be cancelled

    def _wait_ended(self) -> asyncio.Future[None]:
        if self._ended is None:
            loop = asyncio.get_running_loop()
            self._ended = loop.create_future()
            ended = self._ended

            def readable() -> None:
                loop.remove_reader(self._wake_read)
                if not ended.done():
                    ended.set_result(None)

            loop.add_reader(self._wake_read, readable)
        return self._ended

    def update(self, endpoints: EndpointSet) -> None:
        self._engine.set_endpoints([(endpoint.address, endpoint.locality.value, endpoint.ring)
                                    for endpoint in endpoints])

    def __len__(self) -> int:
        return self._engine.endpoint_count()

    async def start(self) -> None:
        self._listener = bind_listener(self._address)
        listener_fd = os.dup(self._listener.fileno())
        wake_fd, self._wake_write = self._wake_write, -1
        self._engine.start(listener_fd, wake_fd)  # both descriptors are the engine's now

    def describe(self) -> str:
        return "native data plane"

    @property
    def active_calls(self) -> int:
        return self._engine.active_calls()

    def counts(self) -> CallCounts:
        calls, buckets, duration_sum, retries = self._engine.stats()
        listener_failures, backend_failures = self._engine.tls_failures()
        listener_tls = self._tls is not None and self._tls.listener is not None
        return CallCounts(calls={(backend, code, "", locality): n
                                 for backend, code, locality, n in calls},
                          buckets=buckets, duration_sum=duration_sum, retries=dict(retries),
                          tls_failures=backend_failures,
                          listener_tls_failures=listener_failures if listener_tls else None,
                          tls_refused=dict(self._tls_stats.tls_refused))

    def unhealthy(self) -> tuple[dict[str, BackendCondition], int]:
        found = sorted((address, BackendCondition(why))
                       for address, why in self._engine.unhealthy())
        return dict(found[:MAX_UNHEALTHY]), max(0, len(found) - MAX_UNHEALTHY)

    def panic(self) -> bool:
        return False  # the engine has no health checks yet (--health-check is refused)

    def certificates(self) -> dict[TlsSide, float]:
        return dict(self._tls_stats.certificates)

    def reread_tls(self) -> None:
        if self._tls is None:
            log.info("SIGHUP: no TLS files to re-read")
            return
        log.info("SIGHUP: re-read the TLS files: %s", self._tls.reload_now())

    def _close_listener(self) -> None:
        """The worker's copy of the socket: closed when serving ends, so the kernel stops
        queueing connections on it (SO_REUSEPORT sends new ones to the siblings)."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    async def drain(self, timeout: float) -> bool:
        self._asked_to_end = True
        self._close_listener()
        if self._wake_write != -1:  # never started
            return True
        self._engine.drain(timeout)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._wait_ended()), timeout + STOP_MARGIN)
        outcome = self._engine.outcome()
        self._engine.stop()
        if outcome is None:
            log.warning("the native engine did not end %.1fs after its drain timeout: stopped",
                        STOP_MARGIN)
            return False
        ok, what = outcome
        if not ok:  # it had failed before the drain (the watcher logged it): nothing drained
            log.error("the native engine had already stopped: %s", what)
            return False
        log.debug("native engine: %s", what)
        return what == "drained"

    async def stop(self) -> None:
        self._asked_to_end = True
        self._close_listener()
        self._engine.stop()

    async def close(self) -> None:
        self._asked_to_end = True
        self._close_listener()
        self._engine.stop()
        if self._ended is not None and not self._ended.done():
            with contextlib.suppress(ValueError, RuntimeError):
                asyncio.get_running_loop().remove_reader(self._wake_read)
        for fd in (self._wake_read, self._wake_write):
            if fd != -1:
                os.close(fd)
        self._wake_read = self._wake_write = -1
