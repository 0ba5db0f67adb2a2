"""The worker pool: start `--workers` processes per route, watch them, replace the dead.

Each worker slot has one asyncio task (`_keep_running`) that starts the process with
`asyncio.create_subprocess_exec` (fork+exec of a fresh interpreter: gRPC and ZeroMQ objects
are created only in the worker), waits for its exit, and restarts it after a backoff while its
siblings keep serving. A worker that could not start at all calls `on_fatal` instead, and the
supervisor halts with exit 1. Workers report their state over the bus status socket every second.

The watchdog (gunicorn's timeout): every report is timed. A worker silent for `worker_timeout`
(a stopped or blocked event loop, a livelock) is logged, SIGKILLed and replaced, counted as
`reason="timeout"`; it is never taken for a boot failure. A worker counts as serving (for
/readyz, /debug/endpoints and `gproxy_workers_serving`) only while its last report is fresher
than half the timeout. A worker reports from its start, while it waits for its route's first
endpoint set too; before that first report (interpreter start, imports, the bus connection) it
has `START_TIMEOUT`.
Every task here is a fatal root (`roots.watch_fatal`): if one fails, gproxy-mp stops, exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gproxy_mp.bus.schema import WorkerState, WorkerStatus
from gproxy_mp.grpc_engine import worker_environment
from gproxy_mp.launch import WorkerConfig, worker_argv
from gproxy_mp.signals import held_for_children
from gproxy_mp.supervisor.policy import (
    RestartBackoff,
    describe_exit,
    exit_reason,
    is_boot_failure,
)
from gproxy_mp.supervisor.roots import watch_fatal

log = logging.getLogger(__name__)

WATCHDOG_INTERVAL = 0.5
"""Seconds between two looks of the watchdog at every worker's last report."""
START_TIMEOUT = 60.0
"""Seconds a new worker may take to send its first report (interpreter start, imports and the
bus connection; a loaded machine can take tens of seconds)."""


@dataclass(slots=True)
class WorkerSlot:
    config: WorkerConfig
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    ever_ready: bool = False
    state: WorkerState = WorkerState.STOPPED
    restarts: int = 0
    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    last_status: WorkerStatus | None = None
    last_report: float | None = None  # time.monotonic() of the process's last status report
    timed_out: bool = False  # the watchdog killed the current process

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.returncode is None else None


class WorkerPool:
    def __init__(self, configs: list[WorkerConfig], *, on_fatal: Callable[[str], None],
                 on_exit: Callable[[int], None] = lambda pid: None,
                 worker_timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slots = {c.worker: WorkerSlot(c) for c in configs}
        self._on_fatal = on_fatal
        self._on_exit = on_exit
        self._worker_timeout = worker_timeout
        self._clock = clock
        self.restarts: dict[tuple[str, str], int] = {}  # (route name, exit reason) → count
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._keep_running(slot), name=f"keeper of worker {wid}")
                       for wid, slot in self.slots.items()]
        self._tasks.append(asyncio.create_task(self._watch(), name="worker watchdog"))
        for task in self._tasks:
            watch_fatal(task, on_fatal=self._on_fatal, ending_ok=self._stopping.is_set)

    def on_status(self, status: WorkerStatus) -> None:
        slot = self.slots.get(status.worker)
        if slot is None or slot.pid != status.pid:
            return  # a report from a worker that has since been replaced
        ready = status.state == WorkerState.READY
        if ready and not slot.ever_ready:
            log.info("worker %s (pid %d) is serving", status.worker, status.pid,
                     extra={"route": slot.config.route_name})
        slot.ever_ready = slot.ever_ready or ready
        slot.state, slot.last_status = status.state, status
        slot.last_report = self._clock()

    def is_serving(self, slot: WorkerSlot) -> bool:
        """Alive, accepting connections, and heard from within half the worker timeout."""
        return (slot.pid is not None and slot.state in (WorkerState.READY, WorkerState.STOPPING)
                and slot.last_report is not None
                and self._clock() - slot.last_report <= self._worker_timeout / 2)

    def routes_serving(self) -> dict[str, int]:
        """Per route name, how many of its workers are serving."""
        serving: dict[str, int] = {}
        for slot in self.slots.values():
            name = slot.config.route_name
            serving[name] = serving.get(name, 0) + int(self.is_serving(slot))
        return serving

    def send_signal(self, signum: signal.Signals) -> int:
        """Signal every live worker; how many."""
        told = 0
        for slot in self.slots.values():
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)
                    told += 1
        return told

    async def stop(self, *, graceful_timeout: float, force: asyncio.Event) -> list[str]:
        """SIGTERM every worker, wait `graceful_timeout` (or until `force`), then SIGQUIT,
        then SIGKILL whatever is left. Returns when every worker process has exited: how each
        worker that did not exit 0 ended (it cut calls short: `exit 1`, or was killed)."""
        self._stopping.set()
        # Only workers that have reported can hold calls (they listen after their first
        # report); one still starting may die of the SIGTERM before its handlers exist.
        running = {wid: slot.process for wid, slot in self.slots.items()
                   if slot.process is not None and slot.pid is not None
                   and slot.last_report is not None}
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
        return [f"{wid} " + ("did not exit" if process.returncode is None
                             else describe_exit(process.returncode, expected=True))
                for wid, process in running.items() if process.returncode != 0]

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

    def _silence(self, slot: WorkerSlot) -> float | None:
        """Seconds past its deadline that a live worker has been silent; None if within it."""
        if slot.pid is None or slot.timed_out:
            return None
        if slot.last_report is None:
            silent, allowed = self._clock() - slot.started_at, START_TIMEOUT
        else:
            silent, allowed = self._clock() - slot.last_report, self._worker_timeout
        return silent if silent > allowed else None

    async def _watch(self) -> None:
        """SIGKILL every worker silent past its deadline; `_keep_running` replaces it."""
        while not self._stopping.is_set():
            for slot in self.slots.values():
                silent = self._silence(slot)
                if silent is None or slot.process is None:
                    continue
                log.error("worker %s (pid %d) sent no status for %.1fs (%s): killing it",
                          slot.config.worker, slot.process.pid, silent,
                          "never reported" if slot.last_report is None else "hung?",
                          extra={"route": slot.config.route_name})
                slot.timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signal.SIGKILL)
            await asyncio.sleep(WATCHDOG_INTERVAL)

    async def _keep_running(self, slot: WorkerSlot) -> None:
        config = slot.config
        extra = {"route": config.route_name}
        while not self._stopping.is_set():
            with held_for_children():  # until the worker's own handlers take SIGHUP
                slot.process = await asyncio.create_subprocess_exec(
                    *worker_argv(config), stdin=asyncio.subprocess.DEVNULL,
                    env=worker_environment(config.options.grpc_engine, os.environ))
            slot.started_at, slot.state = self._clock(), WorkerState.STARTING
            slot.last_report, slot.timed_out = None, False
            log.info("worker %s started (pid %d)", config.worker, slot.process.pid, extra=extra)
            returncode = await slot.process.wait()
            slot.state = WorkerState.STOPPED
            self._on_exit(slot.process.pid)
            uptime = self._clock() - slot.started_at
            if self._stopping.is_set():
                log.info("worker %s (pid %d) %s", config.worker, slot.process.pid,
                         describe_exit(returncode, expected=True), extra=extra)
                return
            if not slot.timed_out and is_boot_failure(returncode, ever_ready=slot.ever_ready):
                reason = (f"worker {config.worker} for {config.route_name} "
                          f"{describe_exit(returncode)} before it ever served")
                log.error("%s", reason, extra=extra)
                self._stopping.set()  # the supervisor stops every worker now
                self._on_fatal(reason)
                return
            delay = slot.backoff.next_delay(uptime=uptime)
            slot.restarts += 1
            key = (config.route_name, "timeout" if slot.timed_out else exit_reason(returncode))
            self.restarts[key] = self.restarts.get(key, 0) + 1
            log.warning("worker %s (pid %d) %s after %.1fs; restarting in %.1fs", config.worker,
                        slot.process.pid, describe_exit(returncode), uptime, delay, extra=extra)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
