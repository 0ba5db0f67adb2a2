"""The supervisor's lifecycle (design §1, §3).

    check addresses → bus up → resolvers → workers → serve
      first SIGTERM/SIGINT: not ready; workers serve for the shutdown delay, then drain
      second signal, or SIGQUIT: stop now (SIGQUIT to workers, SIGKILL after a grace); exit 1
      when that cut calls in flight short (a worker exited non-zero or was killed), else 0
      SIGHUP: workers re-read the TLS files now; other stray signals: logged once, ignored
      (`gproxy_mp.signals` decides every signal)
      a worker that cannot start at all: kill the rest, exit 1

Concurrency: one asyncio loop in the main thread. Signal handlers only set events or enqueue.
Tasks: the bus server, the signal answerer, one resolver per distinct target, one task per
worker slot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from gproxy_mp import __version__
from gproxy_mp.bus.schema import WorkerStatus
from gproxy_mp.bus.server import BusServer
from gproxy_mp.bus.sockets import BusAddresses, create_runtime_dir, remove_runtime_dir
from gproxy_mp.bus.table import EndpointTable
from gproxy_mp.config import KubernetesTarget, Route, Settings, Target, default_server_name
from gproxy_mp.descriptors import startup_summary
from gproxy_mp.errors import ExitCode, FatalError
from gproxy_mp.launch import WorkerConfig
from gproxy_mp.model import EndpointSet, diff_endpoints
from gproxy_mp.signals import SignalInbox, answer_signals, install_signal_handlers
from gproxy_mp.supervisor.admin import start_admin
from gproxy_mp.supervisor.introspection import SupervisorView, build_admin_state
from gproxy_mp.supervisor.metrics import RETIRE_DELAY, CallCounters
from gproxy_mp.supervisor.ports import reserve_listen_address
from gproxy_mp.supervisor.resolvers import build_resolver
from gproxy_mp.supervisor.resolvers.health import ResolverHealth
from gproxy_mp.supervisor.roots import run_restarting, watch_fatal
from gproxy_mp.supervisor.workers import WorkerPool
from gproxy_mp.tls import named_files

log = logging.getLogger(__name__)

STOP_MARGIN = 10.0
"""Seconds allowed beyond shutdown delay + drain timeout before workers are stopped hard."""


@dataclass
class SupervisorStops:
    """Set by signal handlers (or tests); the supervisor's loop only waits on these."""

    graceful: asyncio.Event = field(default_factory=asyncio.Event)
    immediate: asyncio.Event = field(default_factory=asyncio.Event)
    fatal: asyncio.Event = field(default_factory=asyncio.Event)
    fatal_reason: str = ""
    inbox: SignalInbox = field(default_factory=SignalInbox)  # SIGHUP and the stray signals

    def request(self) -> None:
        """A signal arrived: the first asks for a graceful stop, any later one for now."""
        if self.graceful.is_set():
            self.immediate.set()
        self.graceful.set()

    def now(self) -> None:
        """SIGQUIT: stop now, as a second SIGTERM would."""
        self.graceful.set()
        self.immediate.set()

    def fail(self, reason: str) -> None:
        self.fatal_reason = self.fatal_reason or reason
        self.fatal.set()


def build_worker_configs(settings: Settings, *, runtime_dir: Path) -> list[WorkerConfig]:
    return [
        WorkerConfig(
            worker=f"{route.id}#{index}", route=route.id, route_name=route.name,
            bind_address=route.listen.bind_address, target=str(route.target),
            runtime_dir=str(runtime_dir), supervisor_pid=os.getpid(), options=settings.worker,
            server_name=_server_name(route.target, settings),
        )
        for route in settings.routes
        for index in range(settings.workers)
    ]


def _server_name(target: Target, settings: Settings) -> str | None:
    """The backends' default TLS name, with --backend-tls only."""
    if not settings.worker.backend_tls:
        return None
    namespace = "default"
    if isinstance(target, KubernetesTarget) and target.namespace is None:
        from gproxy_mp.supervisor.resolvers.kubeapi import default_namespace  # noqa: PLC0415

        namespace = default_namespace()
    return default_server_name(target, namespace=namespace)


async def run_supervisor(settings: Settings, *, stops: SupervisorStops | None = None) -> int:
    """Run until shut down; the process exit code. Raises `GproxyError` for bad set-ups."""
    stops = stops or SupervisorStops()
    reservations: list[socket.socket] = []
    runtime_dir = create_runtime_dir()
    try:
        for route in settings.routes:
            reservations.append(reserve_listen_address(route.listen))
        return await _serve(settings, stops, runtime_dir)
    finally:
        for reservation in reservations:
            reservation.close()
        remove_runtime_dir(runtime_dir)


async def _serve(settings: Settings, stops: SupervisorStops, runtime_dir: Path) -> int:
    loop = asyncio.get_running_loop()
    counters = CallCounters()

    def on_exit(pid: int) -> None:
        loop.call_later(RETIRE_DELAY, counters.retire, pid)

    pool = WorkerPool(build_worker_configs(settings, runtime_dir=runtime_dir),
                      on_fatal=stops.fail, on_exit=on_exit, worker_timeout=settings.worker_timeout)
    table = EndpointTable(secrets.token_hex(4))
    route_names = {r.id: r.name for r in settings.routes}

    def on_status(status: WorkerStatus) -> None:
        pool.on_status(status)
        route = route_names.get(status.worker.partition("#")[0])
        if route is not None:
            counters.report(route, status.pid, status.stats, active=status.active_calls,
                            certificates=status.certificates)

    bus = BusServer(BusAddresses(runtime_dir), table, on_status=on_status)
    healths = {target: ResolverHealth(str(target)) for target in settings.targets}
    view = SupervisorView(settings=settings, stopping=stops.graceful, pool=pool, table=table,
                          bus=bus, counters=counters, healths=healths)
    admin = None
    tasks = [asyncio.create_task(bus.serve(), name="bus server"),
             asyncio.create_task(answer_signals(stops.inbox,
                                                reload=lambda: _reread_tls(settings, pool)),
                                 name="signal answerer")]
    for task in tasks:
        watch_fatal(task, on_fatal=stops.fail)
    try:
        if settings.admin is not None:
            admin = await start_admin(build_admin_state(view), host=settings.admin.host,
                                      port=settings.admin.port)
        for target in settings.targets:
            tasks.append(asyncio.create_task(
                _resolve(target, settings, bus, healths[target]), name=f"resolver {target}"))
        pool.start()
        log.info("gproxy-mp %s: %s, %d worker(s) per route",
                 __version__, ", ".join(f"{r.name} -> {r.target}" for r in settings.routes),
                 settings.workers)
        if settings.worker.data_plane == "grpcio":  # unary handlers exist on that plane only
            log.info("%s", startup_summary(settings.worker.unary_methods,
                                           settings.proto_descriptor_set,
                                           settings.worker.learn_unary_methods))
        await _wait_any(stops.graceful, stops.fatal)
        if stops.fatal.is_set():
            await pool.kill_all()
            raise FatalError(stops.fatal_reason)
        log.info("shutdown: signal received; serving for %.1fs more, then draining for up to "
                 "%.1fs", settings.worker.shutdown_delay, settings.worker.drain_timeout)
        unclean = await pool.stop(graceful_timeout=settings.worker.shutdown_delay
                                  + settings.worker.drain_timeout
                                  + STOP_MARGIN, force=stops.immediate)
        if unclean:  # calls in flight were cut short of the configured drain: say so
            log.warning("shutdown: all workers exited, calls in flight cut short (%s): exit 1",
                        ", ".join(unclean))
            return ExitCode.RUNTIME
        log.info("shutdown: all workers exited")
        return ExitCode.OK
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        bus.close()
        if admin is not None:
            admin.close()
            await admin.wait_closed()


async def _resolve(target: Target, settings: Settings, bus: BusServer,
                   health: ResolverHealth) -> None:
    """The target's resolver, rebuilt whenever it fails or ends (`roots.run_restarting`); its
    routes keep their last set meanwhile."""
    routes = [r for r in settings.routes if r.target == target]

    async def run() -> None:
        resolver = build_resolver(target, settings, health=health)
        try:
            await _publish(resolver, target, routes, bus, health)
        finally:
            if isinstance(resolver, AsyncGenerator):
                await resolver.aclose()

    await run_restarting(f"resolver for {target}", run, on_error=health.failed)


async def _publish(resolver: AsyncIterator[EndpointSet], target: Target, routes: list[Route],
                   bus: BusServer, health: ResolverHealth) -> None:
    """Forward every set the target's resolver yields to each route that uses the target."""
    async for endpoints in resolver:
        health.updates += 1
        for route in routes:
            before = bus.endpoints(route.id)
            if not await bus.publish(route.id, target=str(target), endpoints=endpoints):
                continue
            if before is None:
                log.info("%d endpoints from %s: %s", len(endpoints), target,
                         ", ".join(e.address for e in endpoints) or "none",
                         extra={"route": route.name})
                continue
            diff = diff_endpoints(before, endpoints)
            log.info("%d -> %d endpoints%s%s", len(before),
                     len(endpoints), _listing(" +", diff.added), _listing(" -", diff.removed),
                     extra={"route": route.name})


def _listing(sign: str, endpoints: EndpointSet) -> str:
    return sign + ",".join(e.address for e in endpoints) if endpoints else ""


async def _wait_any(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


def _reread_tls(settings: Settings, pool: WorkerPool) -> None:
    """SIGHUP: have every worker re-read its TLS files now (one still starting gets the signal
    once its handlers are installed: `signals.held_for_children`)."""
    files = named_files(settings.worker)
    if not files:
        log.info("SIGHUP: no TLS files to re-read")
        return
    told = pool.send_signal(signal.SIGHUP)
    log.info("SIGHUP: asked %d worker(s) to re-read the TLS files now (%s)", told,
             ", ".join(files))


async def main_async(settings: Settings) -> int:
    stops = SupervisorStops()
    install_signal_handlers({signal.SIGTERM: stops.request, signal.SIGINT: stops.request,
                             signal.SIGQUIT: stops.now}, stops.inbox)
    return await run_supervisor(settings, stops=stops)
