"""A worker's lifecycle: bus → table → listen → serve → (signal) → delay → drain → exit.

1. Subscribe to the route and heartbeats, then ask for a snapshot (clone pattern).
2. Once it holds a snapshot: start the data plane (`planes/`: grpcio or native, driven through
   one interface and never asked which) on the listen address with SO_REUSEPORT, report
   "ready".
3. Follow the bus (`follower.step`, run by `_BusFollower`): apply newer endpoint sets, re-ask
   for a snapshot when a heartbeat shows a missed update, report status every second.
4. SIGTERM/SIGINT (from the supervisor, or the whole process group): keep serving for the
   shutdown delay, then stop accepting (GOAWAY) and let in-flight calls finish for up to the
   drain timeout. Repeated SIGTERMs change nothing; SIGQUIT means stop now.
   SIGHUP: re-read the TLS files now; other stray signals are logged once and ignored
   (`gproxy_mp.signals`).
5. Something is wrong: the worker stops serving and exits non-zero, so that the supervisor
   starts a fresh one (siblings serve meanwhile).
   - The supervisor is silent for `follower.SUPERVISOR_TIMEOUT` of polling the bus: stop
     accepting and drain for up to the drain timeout. It may only be hung, and the calls in
     flight are healthy; cancelling them would add an outage to the control-plane fault.
   - A root task (the bus follower, the signal answerer, the memory trimmer (`memory.py`),
     or one of the plane's: the unary-method learner, the backend TLS watcher, the native
     engine's watcher) ends or raises: logged with its
     traceback, then stop accepting and drain for up to `FAILED_ROOT_DRAIN_TIMEOUT`. Calls in
     flight are healthy, but the worker's table may be frozen and it no longer reports, so the
     drain is brief.
   - The parent-death signal (SIGQUIT once the supervisor process is gone) stays immediate:
     nobody will replace this worker, and its port must be free for whatever replaces the
     whole proxy ("no orphans holding the port").

Concurrency: one asyncio loop. Signal handlers, the bus follower and the root-task guard only
set events; `run_worker` alone waits on them and acts.
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
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gproxy_mp import loops
from gproxy_mp.bus.client import BusClient
from gproxy_mp.bus.schema import WorkerState, WorkerStatus
from gproxy_mp.bus.sockets import BusAddresses
from gproxy_mp.errors import AddressInUseError, ExitCode
from gproxy_mp.launch import WorkerConfig
from gproxy_mp.logs import configure_logging
from gproxy_mp.model import Endpoint, EndpointSet, diff_endpoints
from gproxy_mp.signals import SignalInbox, answer_signals, install_signal_handlers
from gproxy_mp.tls import MaterialError
from gproxy_mp.worker import follower, memory
from gproxy_mp.worker.planes import DataPlane, build_plane

log = logging.getLogger(__name__)

FAILED_ROOT_DRAIN_TIMEOUT = 5.0
"""Seconds in-flight calls may finish after a root task failed (at most the drain timeout).
Half the supervisor's default --worker-timeout (10 s): a worker whose bus follower died sends
no status, and the supervisor's watchdog SIGKILLs a worker silent that long."""
PR_SET_PDEATHSIG = 1


@dataclass
class Stops:
    """What the signal handlers, the bus follower and the root-task guard set; the main flow
    only waits on these."""

    graceful: asyncio.Event = field(default_factory=asyncio.Event)  # SIGTERM, SIGINT
    immediate: asyncio.Event = field(default_factory=asyncio.Event)  # SIGQUIT
    lost: asyncio.Event = field(default_factory=asyncio.Event)  # the supervisor is silent
    failed: asyncio.Event = field(default_factory=asyncio.Event)  # a root task ended
    snapshot: asyncio.Event = field(default_factory=asyncio.Event)  # not a stop: serve now
    inbox: SignalInbox = field(default_factory=SignalInbox)  # SIGHUP and the stray signals

    @property
    def faulted(self) -> bool:
        """Stopping because something is wrong: the exit code is non-zero."""
        return self.lost.is_set() or self.failed.is_set()


class _Roots:
    """The worker's long-lived tasks. Each runs until the worker stops; one that ends, raises
    or is cancelled before is logged as an error, with its traceback, and sets `failed`."""

    def __init__(self, failed: asyncio.Event) -> None:
        self._failed = failed
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self, coroutine: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(self._ended)
        self._tasks.append(task)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._stopping:
            return
        if task.cancelled():
            log.error("root task %r was cancelled: stopping the worker", task.get_name())
        elif (error := task.exception()) is not None:
            log.error("root task %r failed: stopping the worker", task.get_name(),
                      exc_info=error)
        else:
            log.error("root task %r ended: stopping the worker", task.get_name())
        self._failed.set()

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def run_worker(config: WorkerConfig, *, stops: Stops | None = None) -> int:
    stops = stops or Stops()
    try:
        plane = build_plane(config)
    except MaterialError as e:  # the files changed since the supervisor checked them
        log.error("cannot use the TLS files: %s", e)
        return ExitCode.RUNTIME
    bus = BusClient(BusAddresses(Path(config.runtime_dir)), route=config.route,
                    worker=config.worker)
    following = _BusFollower(config, bus, plane, stops)
    roots = _Roots(stops.failed)
    roots.start(following.run(), name="bus follower")
    for name, coroutine in plane.roots():
        roots.start(coroutine, name=name)
    roots.start(answer_signals(stops.inbox, reload=plane.reread_tls), name="signal answerer")
    trim = memory.find_malloc_trim()
    if trim is None:
        log.info("no malloc_trim in this C library: memory freed after large messages and "
                 "closed connections stays with the worker until it is reused")
    else:
        roots.start(memory.run_trimmer(trim), name="memory trimmer")
    serving = False
    try:
        await _first(stops.snapshot, stops.graceful, stops.immediate, stops.lost, stops.failed)
        if not stops.snapshot.is_set() or stops.faulted or stops.immediate.is_set():
            return ExitCode.RUNTIME if stops.faulted else ExitCode.OK
        try:
            await plane.start()
        except AddressInUseError as e:
            log.error("%s", e)
            return ExitCode.WORKER_BOOT
        except MaterialError as e:  # the files changed since the supervisor checked them
            log.error("cannot serve TLS: %s", e)
            return ExitCode.RUNTIME
        serving = True
        log.info("serving on %s, forwarding to %s (%d endpoints, %s)",
                 config.bind_address, config.target, len(plane), plane.describe())
        await following.set_phase(WorkerState.READY)
        await _first(stops.graceful, stops.immediate, stops.lost, stops.failed)
        cut = await _shut_down(plane, config, stops, following)
        serving = False
        return ExitCode.RUNTIME if stops.faulted or cut else ExitCode.OK
    finally:
        if serving:
            await plane.stop()
        await roots.stop()
        await following.set_phase(WorkerState.STOPPED)  # final counts: the supervisor's stay exact
        await plane.close()
        bus.close()


async def _shut_down(plane: DataPlane, config: WorkerConfig, stops: Stops,
                     following: _BusFollower) -> bool:
    """The shutdown phases; True when a stop now (SIGQUIT) cut calls in flight short, which
    the exit code says (calls cancelled at the end of the drain timeout are not: that is the
    configured promise)."""
    interrupts = (stops.immediate, stops.lost, stops.failed)
    if not any(e.is_set() for e in interrupts):
        await following.set_phase(WorkerState.STOPPING)
        log.info("shutdown: still serving for the shutdown delay (%.1fs)",
                 config.options.shutdown_delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_first(*interrupts), config.options.shutdown_delay)
    if not stops.immediate.is_set():
        drain_timeout = config.options.drain_timeout
        if stops.failed.is_set():
            drain_timeout = min(drain_timeout, FAILED_ROOT_DRAIN_TIMEOUT)
        await following.set_phase(WorkerState.DRAINING)
        log.info("shutdown: stopped accepting; draining %d in-flight calls for up to %.1fs",
                 plane.active_calls, drain_timeout)
        draining = asyncio.create_task(plane.drain(drain_timeout))
        await _first_done(draining, stops.immediate)
        if draining.done():
            if draining.result():
                log.info("shutdown: drained")
            else:
                log.warning("shutdown: drain timeout reached; calls still running were cancelled")
            return False
        cut = plane.active_calls
        log.info("shutdown: stopping now, cancelling %d in-flight calls", cut)
        await plane.stop()
        await draining
        return cut > 0
    cut = plane.active_calls
    log.info("shutdown: stopping now, cancelling %d in-flight calls", cut)
    await plane.stop()
    return cut > 0


class _BusFollower:
    """The adapter of `follower.step`: owns the bus client and the clock, feeds every received
    message and a tick after each poll, and executes the actions."""

    def __init__(self, config: WorkerConfig, bus: BusClient, plane: DataPlane, stops: Stops, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._config, self._bus, self._plane = config, bus, plane
        self._stops, self._clock = stops, clock
        self._state, actions = follower.start(config.route, now=clock())
        self._pending = actions  # executed when `run` starts

    async def run(self) -> None:
        await self._execute(self._pending)
        while True:
            for message in await self._bus.receive(follower.BUS_POLL_TIMEOUT):
                await self._step(message)
            await self._step(follower.Tick(self._clock()))

    async def set_phase(self, state: WorkerState) -> None:
        await self._step(follower.Phase(state))

    async def _step(self, event: follower.Event) -> None:
        self._state, actions = follower.step(self._state, event)
        await self._execute(actions)

    async def _execute(self, actions: list[follower.Action]) -> None:
        for action in actions:
            match action:
                case follower.ApplyEndpoints():
                    self._apply(action)
                case follower.RequestSnapshot(missed=missed):
                    if missed is not None:
                        log.info("missed an endpoint update (seq %d < %d): asking for a "
                                 "snapshot", *missed)
                    await self._bus.request_snapshot()
                case follower.SendStatus():
                    unhealthy, unlisted = self._plane.unhealthy()
                    await self._bus.send_status(WorkerStatus(
                        worker=self._config.worker, pid=os.getpid(), state=action.state,
                        seq=action.seq, active_calls=self._plane.active_calls,
                        stats=self._plane.counts(), unhealthy=unhealthy,
                        unhealthy_unlisted=unlisted, panic=self._plane.panic(),
                        certificates=self._plane.certificates()))
                case follower.SupervisorLost():
                    log.error("nothing from the supervisor for %.1fs of polling the bus: "
                              "stopping, draining calls in flight, then exiting",
                              action.silence)
                    self._stops.lost.set()

    def _apply(self, action: follower.ApplyEndpoints) -> None:
        started = time.perf_counter()
        self._log_change(action.before, action.endpoints, action.seq)
        self._plane.update(action.endpoints)
        self._stops.snapshot.set()
        # Channels (grpcio plane) are created here, so a large set shows its cost (`bench scale`
        # reads this).
        log.debug("applied endpoints seq=%d count=%d in %.1f ms", action.seq,
                  len(action.endpoints), (time.perf_counter() - started) * 1000)

    @staticmethod
    def _log_change(before: EndpointSet | None, after: EndpointSet, seq: int) -> None:
        if before is None:
            log.info("endpoints (seq %d): %s", seq, _addresses(after, ", ") or "none")
            return
        diff = diff_endpoints(before, after)
        log.info("endpoints %d -> %d (seq %d)%s%s", len(before), len(after), seq,
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


async def _first_done(task: asyncio.Task[Any], event: asyncio.Event) -> None:
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
    install_signal_handlers({signal.SIGTERM: stops.graceful.set,
                             signal.SIGINT: stops.graceful.set,
                             signal.SIGQUIT: stops.immediate.set}, stops.inbox)


async def _main_async(config: WorkerConfig) -> int:
    stops = Stops()
    _install_signal_handlers(stops)
    return await run_worker(config, stops=stops)


def _event_loop(config: WorkerConfig) -> str:
    """`--event-loop`, for the grpcio plane, whose every call runs on the loop. A native-plane
    worker's loop only follows the bus, reports and answers signals: asyncio's own loop does
    that, without uvloop's libuv in the worker's memory."""
    return "asyncio" if config.options.data_plane == "native" else config.options.event_loop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gproxy_mp.worker",
                                     description="a gproxy-mp worker (started by the supervisor)")
    parser.add_argument("--worker", required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    config = WorkerConfig.from_json(args.config)
    configure_logging(role=f"worker {config.worker}", route=config.route_name,
                      fmt=config.options.log_format, level=config.options.log_level)
    _die_with_parent(config.supervisor_pid)
    try:
        code = loops.runner(_event_loop(config))(_main_async(config))
    except Exception:
        log.exception("worker failed")
        code = ExitCode.RUNTIME
    sys.exit(code)
