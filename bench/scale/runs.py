"""The three scale runs, each against the real `gproxy-mp` command started as a subprocess.

- `measure_memory`: one route, `--workers W`, over real grpcio test backends. Memory of the
  supervisor and each worker once ready and idle (no call made yet), at its peak during a
  bounded unary load, and right after it.
- `measure_endpoints`: one route whose `static:///` target lists N endpoints (one real backend
  and N-1 silent loopback addresses, see `bench.scale.endpoints`), one worker, debug logs in
  JSON: start-up time, the worker's own apply time, time to the first answered call, memory,
  and the bus message; then the in-process update timings, after the proxy has stopped.
- `measure_routes`: R routes of one worker each over the same backends: time until `/readyz`
  answers 200, memory of every process, CPU of the idle supervisor and workers over a window,
  and one Whoami call through every route.

Readiness is the admin port's `/readyz` (200 once every route has a serving worker), polled
with bounded HTTP requests; worker pids come from `/debug/endpoints`. Processes are started and
stopped by `harness.processes` (own session each; SIGTERM, then SIGKILL of the group and
of every descendant seen). Every wait has a deadline; pauses marked "measurement window" are
the intervals being measured, not waits for a condition.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bench.scale.endpoints import (
    endpoint_set,
    fake_hosts,
    measure_codec,
    measure_updates,
    parse_apply_lines,
    static_target,
)
from bench.scale.load import run_unary_load
from gproxy_mp.model import Endpoint, build_endpoint_set
from harness import client
from harness.admin import admin_get as admin_body
from harness.peers import Backend, Launcher, Proxy, proxy_args, route
from harness.processes import free_port
from harness.procfacts import Memory, cpu_seconds, read_memory

POLL_INTERVAL = 0.05
"""Seconds between two readiness polls: the resolution of the start-up times."""
CALL_DEADLINE = 30.0
"""Seconds a route may take to answer its first call once `/readyz` is 200."""


@dataclass(frozen=True)
class Sizes:
    workers: int  # per route, in the memory run
    endpoints: int
    routes: int
    load_seconds: float
    concurrency: int
    connections: int
    payload: int
    settle: float  # seconds of quiet before idle figures are read
    cpu_window: float
    start_timeout: float
    repeats: int  # proxy runs and in-process update rounds with many endpoints


def proxy_argv(routes: list[str], *, workers: int, admin: int, log_level: str) -> list[str]:
    """`harness.peers.proxy_args` with the admin port on loopback and JSON logs at
    `log_level` (a later option wins)."""
    return [*proxy_args(*routes, workers=workers, admin_address=f"127.0.0.1:{admin}"),
            "--log-level", log_level, "--log-format", "json"]


def admin_get(admin: int, path: str) -> tuple[int, bytes]:
    """Status and body of ``GET /PATH`` on the admin port (`harness.admin`), a 503 included."""
    try:
        return 200, admin_body(f"127.0.0.1:{admin}", path).encode()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def workers_ready(admin: int, expected: int) -> bool:
    """Whether `/debug/endpoints` lists `expected` workers, all in state "ready"."""
    status, body = admin_get(admin, "/debug/endpoints")
    if status != 200:
        return False
    states = [w["state"] for entry in json.loads(body)["routes"] for w in entry["workers"]]
    return len(states) == expected and all(state == "ready" for state in states)


def wait_ready(
    proxy: Proxy, admin: int, *, workers: int, started: float, timeout: float
) -> tuple[float, float]:
    """Seconds from `started` until `/readyz` answers 200 (every route has a serving worker),
    and until all `workers` report ready."""
    deadline = started + timeout
    readyz: float | None = None
    last = "no answer"
    while time.monotonic() < deadline:
        if proxy.process.poll() is not None:
            raise RuntimeError(f"gproxy-mp exited early\n{proxy.output()[-4000:]}")
        try:
            if readyz is None:
                status, body = admin_get(admin, "/readyz")
                last = body.decode(errors="replace").strip()
                if status == 200:
                    readyz = time.monotonic() - started
            if readyz is not None and workers_ready(admin, workers):
                return readyz, time.monotonic() - started
        except OSError as error:  # not listening yet, or a read timeout on a busy box
            last = repr(error)
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"not ready within {timeout}s ({last}, /readyz after {readyz})\n"
                       f"{proxy.output()[-4000:]}")


def worker_pids(admin: int) -> dict[str, int]:
    """Worker name (`<route>#<index>`) to pid, from `/debug/endpoints`."""
    status, body = admin_get(admin, "/debug/endpoints")
    if status != 200:
        raise RuntimeError(f"/debug/endpoints answered {status}")
    view = json.loads(body)
    return {
        worker["worker"]: worker["pid"]
        for entry in view["routes"]
        for worker in entry["workers"]
        if worker["pid"] is not None
    }


def first_answer(address: str, *, timeout: float) -> tuple[str | None, float]:
    """The backend a Whoami call through `address` reached (None: none answered in time), and
    the seconds it took until one did."""
    started = time.monotonic()
    deadline = started + timeout
    with client.open_channel(address) as channel:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                name = client.whoami(channel, timeout=min(remaining, 5.0))
                return name, time.monotonic() - started
            except grpc.RpcError:
                time.sleep(min(client.RETRY_INTERVAL, max(deadline - time.monotonic(), 0)))
    return None, time.monotonic() - started


def memory_json(pids: dict[str, int]) -> dict[str, dict[str, float | None] | None]:
    found: dict[str, Memory | None] = {name: read_memory(pid) for name, pid in pids.items()}
    return {name: None if m is None else m.as_json() for name, m in found.items()}


def start(launcher: Launcher, routes: list[str], *, workers: int, log_level: str = "info"
          ) -> tuple[Proxy, int, float]:
    admin = free_port()
    started = time.monotonic()
    proxy = launcher.start_proxy(
        *proxy_argv(routes, workers=workers, admin=admin, log_level=log_level))
    return proxy, admin, started


def measure_memory(launcher: Launcher, backends: list[Backend], sizes: Sizes) -> dict[str, Any]:
    port = free_port()
    listen = f"127.0.0.1:{port}"
    proxy, admin, started = start(launcher, [route(port, *backends)], workers=sizes.workers)
    try:
        ready_s = wait_ready(proxy, admin, workers=sizes.workers, started=started,
                             timeout=sizes.start_timeout)
        time.sleep(sizes.settle)  # measurement window: idle
        pids = {"supervisor": proxy.pid, **worker_pids(admin)}
        idle = memory_json(pids)
        answered, _ = first_answer(listen, timeout=CALL_DEADLINE)
        if answered is None:
            raise RuntimeError(f"{listen} answered no call\n{proxy.output()[-4000:]}")
        load, peak = run_unary_load(
            listen, connections=sizes.connections, concurrency=sizes.concurrency,
            payload=sizes.payload, seconds=sizes.load_seconds, pids=lambda: list(pids.values()))
        after = memory_json(pids)
    finally:
        proxy.stop()
    peaks = {name: m.as_json() if (m := peak.of(pid)) else None for name, pid in pids.items()}
    return {
        "workers": sizes.workers,
        "readyz_s": round(ready_s[0], 2),
        "all_workers_ready_s": round(ready_s[1], 2),
        "pids": pids,
        "idle": idle,
        "load_peak": peaks,
        "after_load": after,
        "load": {
            "seconds": round(load.seconds, 2), "calls": load.calls, "failed": load.failed,
            "errors": load.errors, "calls_per_s": round(load.rate, 1),
            "concurrency": sizes.concurrency, "connections": sizes.connections,
            "payload_bytes": sizes.payload,
        },
    }  # fmt: skip


def _endpoints_proxy_run(launcher: Launcher, target: str, sizes: Sizes) -> dict[str, Any]:
    listen = f"127.0.0.1:{free_port()}"
    proxy, admin, started = start(launcher, [f"{listen}-{target}"], workers=1, log_level="debug")
    try:
        ready_s = wait_ready(proxy, admin, workers=1, started=started,
                             timeout=sizes.start_timeout)
        answered, first_call_s = first_answer(listen, timeout=CALL_DEADLINE)
        time.sleep(sizes.settle)  # measurement window: channels connecting, then idle
        pids = {"supervisor": proxy.pid, **worker_pids(admin)}
        memory = memory_json(pids)
        applies = parse_apply_lines(proxy.stderr())
    finally:
        proxy.stop()
    return {
        "readyz_s": round(ready_s[0], 2),
        "all_workers_ready_s": round(ready_s[1], 2),
        "first_call": {"answered_by": answered, "after_ready_s": round(first_call_s, 2)},
        "worker_applies": applies,
        "memory": memory,
    }


def measure_endpoints(launcher: Launcher, backend: Backend, sizes: Sizes) -> dict[str, Any]:
    silent_port = free_port()  # nothing listens on it at 127.1.x.y: each connect gets a reset
    endpoints = build_endpoint_set(
        [*endpoint_set(fake_hosts(sizes.endpoints - 1), silent_port),
         Endpoint(backend.host, backend.port)])  # fmt: skip
    target = static_target(endpoints)
    runs = [_endpoints_proxy_run(launcher, target, sizes) for _ in range(sizes.repeats)]
    applies = [a["apply_ms"] for run in runs for a in run["worker_applies"]]
    updates = [measure_updates(sizes.endpoints, port=silent_port) for _ in range(sizes.repeats)]
    return {
        "endpoints": len(endpoints),
        "bus": measure_codec(endpoints, target=target),
        "proxy_runs": runs,
        "worker_apply_ms": {
            "samples": applies,
            "median": statistics.median(applies) if applies else None,
            "max": max(applies, default=None),
        },
        "in_process_updates_ms": {
            "samples": updates,
            "median": {key: statistics.median(u[key] for u in updates) for key in updates[0]},
        },
    }


def measure_routes(launcher: Launcher, backends: list[Backend], sizes: Sizes) -> dict[str, Any]:
    ports: set[int] = set()
    while len(ports) < sizes.routes:
        ports.add(free_port())
    listens = [f"127.0.0.1:{port}" for port in sorted(ports)]
    proxy, admin, started = start(
        launcher, [route(port, *backends) for port in sorted(ports)], workers=1)
    try:
        ready_s = wait_ready(proxy, admin, workers=sizes.routes, started=started,
                             timeout=sizes.start_timeout)
        time.sleep(sizes.settle)  # measurement window: idle
        workers = worker_pids(admin)
        memory = memory_json({"supervisor": proxy.pid, **workers})
        cpu_before = cpu_seconds([proxy.pid]), cpu_seconds(list(workers.values()))
        time.sleep(sizes.cpu_window)  # measurement window: idle CPU
        cpu_after = cpu_seconds([proxy.pid]), cpu_seconds(list(workers.values()))
        answers = {address: first_answer(address, timeout=CALL_DEADLINE)[0]
                   for address in listens}
    finally:
        proxy.stop()
    return {
        "routes": sizes.routes,
        "workers": len(workers),
        "readyz_s": round(ready_s[0], 2),
        "all_workers_ready_s": round(ready_s[1], 2),
        "memory": memory,
        "idle_cpu_window_s": sizes.cpu_window,
        "supervisor_idle_cpu_percent":
            round(100 * (cpu_after[0] - cpu_before[0]) / sizes.cpu_window, 1),
        "workers_idle_cpu_percent":
            round(100 * (cpu_after[1] - cpu_before[1]) / sizes.cpu_window, 1),
        "routes_answering": sum(1 for name in answers.values() if name is not None),
        "routes_silent": sorted(address for address, name in answers.items() if name is None),
    }  # fmt: skip


def start_backends(directory: Path, count: int) -> tuple[Launcher, list[Backend]]:
    launcher = Launcher(directory)
    try:
        return launcher, [launcher.start_backend(f"b{index}") for index in range(count)]
    except BaseException:
        launcher.close()
        raise
