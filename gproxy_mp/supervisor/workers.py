"""The worker pool: start `--workers` processes per route, watch them, replace the dead.

Each worker slot has one asyncio task (`_keep_running`) that starts the process with
`asyncio.create_subprocess_exec` (fork+exec of a fresh interpreter: gRPC and ZeroMQ objects
are created only in the worker), waits for its exit, and restarts it after a backoff while its
siblings keep serving. A worker that could not start at all calls `on_fatal` instead, and the
supervisor halts with exit 1. Workers report "ready" over the bus status socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from gproxy_mp.bus.schema import WorkerStatus
from gproxy_mp.grpc_engine import worker_environment
from gproxy_mp.launch import WorkerConfig, worker_argv
from gproxy_mp.supervisor.policy import (
    RestartBackoff,
    describe_exit,
    exit_reason,
    is_boot_failure,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WorkerSlot:
    config: WorkerConfig
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    ever_ready: bool = False
    state: str = "stopped"  # starting, ready, stopping, draining, stopped
    restarts: int = 0
    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    last_status: WorkerStatus | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.returncode is None else None


class WorkerPool:
    def __init__(self, configs: list[WorkerConfig], *, on_fatal: Callable[[str], None],
                 on_exit: Callable[[int], None] = lambda pid: None) -> None:
        self.slots = {c.worker: WorkerSlot(c) for c in configs}
        self._on_fatal = on_fatal
        self._on_exit = on_exit
        self.restarts: dict[tuple[str, str], int] = {}  # (route name, exit reason) → count
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._keep_running(slot), name=f"worker {wid}")
                       for wid, slot in self.slots.items()]

    def on_status(self, status: WorkerStatus) -> None:
        slot = self.slots.get(status.worker)
        if slot is None or slot.pid != status.pid:
            return  # a report from a worker that has since been replaced
        if status.state == "ready" and not slot.ever_ready:
            log.info("worker %s (pid %d) is serving", status.worker, status.pid,
                     extra={"route": slot.config.route_name})
        slot.ever_ready = slot.ever_ready or status.state == "ready"
        slot.state, slot.last_status = status.state, status

    def routes_serving(self) -> dict[str, int]:
        """Per route name, how many of its workers are serving."""
        serving: dict[str, int] = {}
        for slot in self.slots.values():
            name = slot.config.route_name
            up = slot.pid is not None and slot.state in ("ready", "stopping")
            serving[name] = serving.get(name, 0) + int(up)
        return serving

    def send_signal(self, signum: signal.Signals) -> None:
        for slot in self.slots.values():
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)

    async def stop(self, *, graceful_timeout: float, force: asyncio.Event) -> None:
        """SIGTERM every worker, wait `graceful_timeout` (or until `force`), then SIGQUIT,
        then SIGKILL whatever is left. Returns when every worker process has exited."""
        self._stopping.set()
        self.send_signal(signal.SIGTERM)
        if not await self._wait_exited(graceful_timeout, force):
            log.warning("shutdown: stopping workers now")
            self.send_signal(signal.SIGQUIT)
            if not await self._wait_exited(3.0, None):
                log.warning("shutdown: killing workers that did not stop")
                self.send_signal(signal.SIGKILL)
                await self._wait_exited(5.0, None)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def kill_all(self) -> None:
        self._stopping.set()
        self.send_signal(signal.SIGKILL)
        await self._wait_exited(5.0, None)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _wait_exited(self, timeout: float, force: asyncio.Event | None) -> bool:
        """Wait until every worker has exited, `timeout` passed, or `force` is set."""
        processes = [s.process for s in self.slots.values()
                     if s.process is not None and s.process.returncode is None]

        async def all_exited() -> None:
            await asyncio.gather(*(p.wait() for p in processes))

        waits: list[asyncio.Task[object]] = [asyncio.create_task(all_exited())]
        if force is not None:
            waits.append(asyncio.create_task(force.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return all(p.returncode is not None for p in processes)

    async def _keep_running(self, slot: WorkerSlot) -> None:
        loop = asyncio.get_running_loop()
        config = slot.config
        extra = {"route": config.route_name}
        while not self._stopping.is_set():
            slot.process = await asyncio.create_subprocess_exec(
                *worker_argv(config), stdin=asyncio.subprocess.DEVNULL,
                env=worker_environment(config.grpc_engine, os.environ))
            slot.started_at, slot.state = loop.time(), "starting"
            log.info("worker %s started (pid %d)", config.worker, slot.process.pid, extra=extra)
            returncode = await slot.process.wait()
            slot.state = "stopped"
            self._on_exit(slot.process.pid)
            uptime = loop.time() - slot.started_at
            if self._stopping.is_set():
                log.info("worker %s (pid %d) %s", config.worker, slot.process.pid,
                         describe_exit(returncode, expected=True), extra=extra)
                return
            if is_boot_failure(returncode, ever_ready=slot.ever_ready):
                reason = (f"worker {config.worker} for {config.route_name} "
                          f"{describe_exit(returncode)} before it ever served")
                log.error("%s", reason, extra=extra)
                self._on_fatal(reason)
                return
            delay = slot.backoff.next_delay(uptime=uptime)
            slot.restarts += 1
            key = (config.route_name, exit_reason(returncode))
            self.restarts[key] = self.restarts.get(key, 0) + 1
            log.warning("worker %s (pid %d) %s after %.1fs; restarting in %.1fs", config.worker,
                        slot.process.pid, describe_exit(returncode), uptime, delay, extra=extra)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
