"""The native data plane: the Rust engine of `gproxy_mp._native`, driven from the worker.

The engine runs one tokio current_thread runtime on a thread of its own and serves h2c on a
duplicate of each listener this adapter binds (`listener.py`); the worker's asyncio loop keeps
the main thread and its signals. Nothing here runs per call: endpoint sets go in whole
(`Engine.set_endpoints`, swapped in lock-free), counts come out as atomics read at each status
report.

The engine closes a pipe's write end when its runtime thread ends; `watch` waits for that on
the loop (no thread, no polling). Ending when nobody asked it to (it failed to serve) is an
error: logged with the engine's reason, and the worker stops with a non-zero exit so that the
supervisor replaces it. A panic aborts the whole process (the crate's `panic = "abort"`): the
supervisor sees a crashed worker and replaces it.

With `--health-check` the engine checks each backend itself (`native/src/health.rs`, with
`health.py`'s verdicts) and ranks those that fail after those that pass; it never logs. It
queues each change of a backend's verdict and writes a byte to a second pipe, which the
`health-check log` root watches on the loop: it reads the changes and logs each with
`health.py`'s words, once per change, as the grpcio plane's channels do. At each status
report `panic` steps the `PanicWatch` over the backends' current conditions, as the grpcio
plane's pool does.

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
from gproxy_mp.worker.access import log_call
from gproxy_mp.worker.health import Verdict, describe_change
from gproxy_mp.worker.panic import PanicWatch
from gproxy_mp.worker.planes import Root
from gproxy_mp.worker.planes.listener import bind_listeners
from gproxy_mp.worker.stats import CallStats

if TYPE_CHECKING:
    from gproxy_mp.worker.planes.native_tls import NativeTls

log = logging.getLogger(__name__)

ACCESS_LOG_PERIOD = 0.2
"""Seconds between two drains of the engine's access records (`--access-log`): lines come
this late at most, and the engine's queue holds more than that of a busy worker's calls."""

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
                              balancer=options.balancer,
                              method_label=options.metrics_method_label,
                              access_log=options.access_log,
                              health_check=options.health_check,
                              health_check_interval=options.health_check_interval)
        self._access_log = options.access_log
        self._health_checks = options.health_check is not None
        self._panic = PanicWatch()
        self._tls_stats = CallStats()  # TLS refusals and certificates in use; calls: the engine
        self._tls: NativeTls | None = None
        if listener_tls(options) is not None or backend_tls(options) is not None:
            # MaterialError (either side): the files changed since the supervisor checked them.
            from gproxy_mp.worker.planes.native_tls import NativeTls  # noqa: PLC0415

            self._tls = NativeTls(self._engine, options=options, stats=self._tls_stats,
                                  server_name=options.backend_tls_server_name
                                  or config.server_name)
        self._listeners: list[socket.socket] = []
        self._wake_read, self._wake_write = os.pipe()
        self._ended: asyncio.Future[None] | None = None
        self._asked_to_end = False

    def roots(self) -> list[Root]:
        roots: list[Root] = [("native engine", self._watch())]
        if self._access_log:
            roots.append(("access log", self._write_access_log()))
        if self._health_checks:
            roots.append(("health-check log", self._log_health()))
        if self._tls is not None:
            roots.append(("TLS watcher", self._tls.watch()))
        return roots

    async def _write_access_log(self) -> None:
        """Log the engine's access records every `ACCESS_LOG_PERIOD` seconds, for ever."""
        while True:
            await asyncio.sleep(ACCESS_LOG_PERIOD)
            self._flush_access_log()

    def _flush_access_log(self) -> None:
        if not self._access_log:
            return
        records, dropped = self._engine.access_records()
        for method, backend, code, seconds in records:
            log_call(method, backend, code, seconds)
        if dropped:
            log.warning("access log: %d records dropped: the engine queued more calls than "
                        "this worker could log", dropped)

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

    async def _log_health(self) -> None:
        """Log each health verdict change as the engine queues it: it writes a byte to a pipe
        this loop watches (no thread, no polling). Runs until cancelled."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                while os.read(read_fd, 4096):
                    pass
                loop.remove_reader(read_fd)  # EOF: the engine let go of its end
            except BlockingIOError:
                pass  # all read: the changes queued so far are there to take
            self._log_health_changes()

        self._engine.wake_on_health_changes(write_fd)  # the engine's from now on
        loop.add_reader(read_fd, readable)
        try:
            await loop.create_future()
        finally:
            loop.remove_reader(read_fd)
            os.close(read_fd)

    def update(self, endpoints: EndpointSet) -> None:
        self._engine.set_endpoints([(endpoint.address, endpoint.locality.value, endpoint.ring)
                                    for endpoint in endpoints])

    def __len__(self) -> int:
        return self._engine.endpoint_count()

    async def start(self) -> None:
        self._listeners = bind_listeners(self._address)
        listener_fds = [os.dup(listener.fileno()) for listener in self._listeners]
        wake_fd, self._wake_write = self._wake_write, -1
        self._engine.start(listener_fds, wake_fd)  # the descriptors are the engine's now

    def describe(self) -> str:
        return "native data plane"

    @property
    def active_calls(self) -> int:
        return self._engine.active_calls()

    def counts(self) -> CallCounts:
        calls, buckets, duration_sum, retries = self._engine.stats()
        listener_failures, backend_failures = self._engine.tls_failures()
        listener_tls = self._tls is not None and self._tls.listener is not None
        return CallCounts(calls={(backend, code, method, locality): n
                                 for backend, code, method, locality, n in calls},
                          buckets=buckets, duration_sum=duration_sum, retries=dict(retries),
                          tls_failures=backend_failures,
                          listener_tls_failures=listener_failures if listener_tls else None,
                          tls_refused=dict(self._tls_stats.tls_refused))

    def unhealthy(self) -> tuple[dict[str, BackendCondition], int]:
        found = sorted((address, BackendCondition(why))
                       for address, why in self._engine.unhealthy())
        return dict(found[:MAX_UNHEALTHY]), max(0, len(found) - MAX_UNHEALTHY)

    def panic(self) -> bool:
        if not self._health_checks:
            return False
        self._log_health_changes()
        line = self._panic.step(None if condition is None else BackendCondition(condition)
                                for condition in self._engine.health())
        if line is not None:
            (log.warning if self._panic.panic else log.info)("%s", line)
        return self._panic.panic

    def _log_health_changes(self) -> None:
        changes, dropped = self._engine.health_changes()
        for address, before, after in changes:
            change = describe_change(None if before is None else _verdict(*before),
                                     _verdict(*after))
            if change is not None:
                log.log(change[0], "backend %s: %s", address, change[1])
        if dropped:
            log.warning("%d health check changes came too fast to log", dropped)

    def certificates(self) -> dict[TlsSide, float]:
        return dict(self._tls_stats.certificates)

    def reread_tls(self) -> None:
        if self._tls is None:
            log.info("SIGHUP: no TLS files to re-read")
            return
        log.info("SIGHUP: re-read the TLS files: %s", self._tls.reload_now())

    def _close_listener(self) -> None:
        """The worker's copies of the sockets: closed when serving ends, so the kernel stops
        queueing connections on them (SO_REUSEPORT sends new ones to the siblings)."""
        for listener in self._listeners:
            listener.close()
        self._listeners = []

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
        self._flush_access_log()
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
        self._flush_access_log()

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


def _verdict(condition: str | None, why: str) -> Verdict:
    return Verdict(None if condition is None else BackendCondition(condition), why)
