"""A worker's lifecycle: bus → table → listen → serve → (signal) → delay → drain → exit.

1. Subscribe to the route and heartbeats, then ask for a snapshot (clone pattern).
2. Once it holds a snapshot: build the backend channels, bind the listen address with
   SO_REUSEPORT, start serving, report "ready".
3. Follow the bus: apply newer endpoint sets, re-ask for a snapshot when a heartbeat shows a
   missed update, report status every `STATUS_INTERVAL`.
4. SIGTERM/SIGINT (from the supervisor, or the whole process group): keep serving for the
   shutdown delay, then stop accepting (GOAWAY) and let in-flight calls finish for up to the
   drain timeout. Repeated SIGTERMs change nothing; SIGQUIT means stop now.
5. A dead supervisor (parent-death signal SIGQUIT, or no heartbeat for `SUPERVISOR_TIMEOUT`)
   means stop now: no orphan keeps the port.

Concurrency: one asyncio loop; signal handlers only set events.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc.aio

from gproxy_mp import loops
from gproxy_mp.bus.client import BusClient
from gproxy_mp.bus.schema import EndpointsMessage, Heartbeat, WorkerStatus
from gproxy_mp.bus.sockets import BusAddresses
from gproxy_mp.bus.table import RouteView
from gproxy_mp.errors import AddressInUseError, BusProtocolError, ExitCode
from gproxy_mp.launch import WorkerConfig
from gproxy_mp.logs import configure_logging
from gproxy_mp.model import Endpoint, EndpointSet, diff_endpoints
from gproxy_mp.worker.channels import BackendPool
from gproxy_mp.worker.proxy import ProxyHandler
from gproxy_mp.worker.reflection import UnaryLearner
from gproxy_mp.worker.server import build_server
from gproxy_mp.worker.stats import CallStats

log = logging.getLogger(__name__)

SUPERVISOR_TIMEOUT = 6.0
"""Seconds without a heartbeat (sent every second) after which the supervisor counts as dead."""
SNAPSHOT_RETRY_INTERVAL = 2.0
"""Seconds between snapshot requests while none has been answered."""
STATUS_INTERVAL = 1.0
"""Seconds between status reports to the supervisor."""
BUS_POLL_TIMEOUT = 0.5
"""Seconds one bus poll may wait: bounds how late a missing heartbeat is noticed."""
PR_SET_PDEATHSIG = 1


@dataclass
class Stops:
    """What the signal handlers and the bus follower set; the main flow only waits on these."""

    graceful: asyncio.Event = field(default_factory=asyncio.Event)
    immediate: asyncio.Event = field(default_factory=asyncio.Event)
    snapshot: asyncio.Event = field(default_factory=asyncio.Event)


async def run_worker(config: WorkerConfig, *, stops: Stops | None = None) -> int:
    stops = stops or Stops()
    bus = BusClient(BusAddresses(Path(config.runtime_dir)), route=config.route,
                    worker=config.worker)
    pool = BackendPool(close_grace=config.drain_timeout)
    handler = ProxyHandler(pool, target=config.target, access_log=config.access_log,
                           unary_methods=config.unary_methods,
                           stats=CallStats(method_label=config.metrics_method_label))
    learner = UnaryLearner(handler.learned_unary) if config.learn_unary_methods else None
    follower = _BusFollower(config, bus, pool, handler, stops, learner=learner)
    following = asyncio.create_task(follower.run(), name="bus")
    server: grpc.aio.Server | None = None
    try:
        if not await _first(stops.snapshot, stops.graceful, stops.immediate):
            return ExitCode.OK if not follower.lost else ExitCode.RUNTIME
        try:
            server = build_server(handler, bind_address=config.bind_address,
                                  max_connection_age=config.max_connection_age,
                                  max_connection_age_grace=config.max_connection_age_grace)
        except AddressInUseError as e:
            log.error("%s", e)
            return ExitCode.WORKER_BOOT
        await server.start()
        follower.state = "ready"
        log.info("serving on %s, forwarding to %s (%d endpoints, %s loop, gRPC on %s)",
                 config.bind_address, config.target, len(pool), loops.resolve(config.event_loop),
                 config.grpc_engine)
        await follower.report()
        await _first(stops.graceful, stops.immediate)
        await _shut_down(server, config, handler, stops, follower)
        server = None
        return ExitCode.RUNTIME if follower.lost else ExitCode.OK
    finally:
        if server is not None:
            await server.stop(None)
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        follower.state = "stopped"
        await follower.report()  # the final counts, so the supervisor's totals stay exact
        if learner is not None:
            await learner.close()
        await pool.close(0)
        bus.close()


async def _shut_down(server: grpc.aio.Server, config: WorkerConfig, handler: ProxyHandler,
                     stops: Stops, follower: _BusFollower) -> None:
    if not stops.immediate.is_set():
        follower.state = "stopping"
        log.info("shutdown: still serving for the shutdown delay (%.1fs)", config.shutdown_delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stops.immediate.wait(), config.shutdown_delay)
    if not stops.immediate.is_set():
        follower.state = "draining"
        log.info("shutdown: stopped accepting; draining %d in-flight calls for up to %.1fs",
                 handler.active_calls, config.drain_timeout)
        loop = asyncio.get_running_loop()
        started = loop.time()
        draining = asyncio.create_task(server.stop(config.drain_timeout))
        await _first_done(draining, stops.immediate)
        if draining.done():
            if loop.time() - started >= config.drain_timeout:
                log.warning("shutdown: drain timeout reached; calls still running were cancelled")
            else:
                log.info("shutdown: drained")
            return
    log.info("shutdown: stopping now, cancelling %d in-flight calls", handler.active_calls)
    await server.stop(None)


class _BusFollower:
    def __init__(self, config: WorkerConfig, bus: BusClient, pool: BackendPool,
                 handler: ProxyHandler, stops: Stops, *,
                 learner: UnaryLearner | None) -> None:
        self._config, self._bus, self._pool, self._handler = config, bus, pool, handler
        self._stops, self._learner = stops, learner
        self._view = RouteView(config.route)
        self.state = "starting"
        self.lost = False

    async def report(self) -> None:
        await self._bus.send_status(WorkerStatus(
            worker=self._config.worker, pid=os.getpid(), state=self.state, seq=self._view.seq,
            active_calls=self._handler.active_calls, stats=self._handler.stats.snapshot()))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await self._bus.request_snapshot()
        now = loop.time()
        last_beat, last_ask, last_report = now, now, now
        while True:
            for message in await self._bus.receive(BUS_POLL_TIMEOUT):
                if isinstance(message, EndpointsMessage):
                    self._apply(message)
                elif isinstance(message, Heartbeat):
                    last_beat = loop.time()
                    if self._view.apply_heartbeat(message):
                        log.info("missed an endpoint update (seq %d < %d): asking for a snapshot",
                                 self._view.seq, message.routes.get(self._config.route, 0))
                        await self._bus.request_snapshot()
            now = loop.time()
            if now - last_beat > SUPERVISOR_TIMEOUT:
                log.error("no heartbeat from the supervisor for %.0fs: stopping", now - last_beat)
                self.lost = True
                self._stops.immediate.set()
                return
            if not self._view.has_snapshot and now - last_ask > SNAPSHOT_RETRY_INTERVAL:
                await self._bus.request_snapshot()
                last_ask = now
            if self.state != "starting" and now - last_report >= STATUS_INTERVAL:
                await self.report()
                last_report = now

    def _apply(self, message: EndpointsMessage) -> None:
        started = time.perf_counter()
        before = self._view.endpoints
        endpoints = self._view.apply_message(message)
        if endpoints is None:
            return
        self._log_change(before, endpoints)
        added = self._pool.update(endpoints)
        if self._learner is not None:
            self._learner.backends_added(added)
        self._stops.snapshot.set()
        # Channels are created here, so a large set shows its cost (bench/scale.py reads this).
        log.debug("applied endpoints seq=%d count=%d in %.1f ms", self._view.seq,
                  len(endpoints), (time.perf_counter() - started) * 1000)

    def _log_change(self, before: EndpointSet | None, after: EndpointSet) -> None:
        if before is None:
            log.info("endpoints (seq %d): %s", self._view.seq, _addresses(after, ", ") or "none")
            return
        diff = diff_endpoints(before, after)
        log.info("endpoints %d -> %d (seq %d)%s%s", len(before), len(after), self._view.seq,
                 " +" + _addresses(diff.added, ",") if diff.added else "",
                 " -" + _addresses(diff.removed, ",") if diff.removed else "")


LOGGED_ADDRESSES = 20
"""Addresses an endpoint log line names; /debug/endpoints has the whole set."""


def _addresses(endpoints: Sequence[Endpoint], separator: str) -> str:
    named = separator.join(e.address for e in endpoints[:LOGGED_ADDRESSES])
    more = len(endpoints) - LOGGED_ADDRESSES
    return f"{named}{separator}... ({more} more)" if more > 0 else named


async def _first(*events: asyncio.Event) -> bool:
    """Wait until any event is set; True if it was the first one."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return events[0].is_set()


async def _first_done(task: asyncio.Task[None], event: asyncio.Event) -> None:
    waiter = asyncio.create_task(event.wait())
    try:
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter


def _die_with_parent(supervisor_pid: int) -> None:
    """Ask Linux to send SIGQUIT when the supervisor dies; exit if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGQUIT)
    if os.getppid() != supervisor_pid:
        sys.exit(ExitCode.RUNTIME)


def _install_signal_handlers(stops: Stops) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stops.graceful.set)
    loop.add_signal_handler(signal.SIGINT, stops.graceful.set)
    loop.add_signal_handler(signal.SIGQUIT, stops.immediate.set)


async def _main_async(config: WorkerConfig) -> int:
    stops = Stops()
    _install_signal_handlers(stops)
    return await run_worker(config, stops=stops)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gproxy_mp.worker",
                                     description="a gproxy-mp worker (started by the supervisor)")
    parser.add_argument("--worker", required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    config = WorkerConfig.from_json(args.config)
    configure_logging(role=f"worker {config.worker}", route=config.route_name,
                      fmt=config.log_format, level=config.log_level)
    _die_with_parent(config.supervisor_pid)
    try:
        code = loops.runner(config.event_loop)(_main_async(config))
    except BusProtocolError as e:
        log.error("%s", e)
        code = ExitCode.RUNTIME
    except Exception:
        log.exception("worker failed")
        code = ExitCode.RUNTIME
    sys.exit(code)
