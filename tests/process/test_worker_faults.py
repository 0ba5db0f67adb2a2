"""A worker's own faults through the real CLI: nothing ends silently, a pause is not a loss.

- A bus message with an unknown schema version ends the worker's bus follower; the worker must
  log it with its traceback and exit non-zero, so that the supervisor replaces it (before, it
  kept serving its last table, following nothing and reporting nothing).
- A worker paused for longer than SUPERVISOR_TIMEOUT (SIGSTOP/SIGCONT: a long GC or CPU
  starvation does the same) finds the heartbeats queued on its bus when it resumes: it must
  neither stop nor cancel its calls (before, it stopped on resuming with "no heartbeat from
  the supervisor" and cancelled every in-flight call).
- A worker whose supervisor really is silent (SIGSTOPped here) drains: it stops accepting, lets
  in-flight calls finish, and exits non-zero (before, it cancelled them).

How a message reaches one worker's SUB socket: only the supervisor binds ``updates`` and a PUB
only sends, so `UpdatesRelay` moves the supervisor's socket file aside and binds its own PUB at
the path. A worker started after that (the replacement of a worker this test SIGKILLs)
connects to the relay, which forwards everything the supervisor publishes and adds what the
test injects. Workers started before keep their connection to the supervisor itself.

Every test passes ``--worker-timeout 60s``, so the supervisor's watchdog never acts for the
worker within a test. Concurrency: the relay's ZeroMQ sockets live and die in its own thread;
the test thread only queues frames for it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import zmq

from harness import client, procfacts
from harness.admin import route_view
from harness.fixtures import both_planes
from harness.peers import Backend, Launcher, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = [pytest.mark.timeout(180), both_planes]

WORKER_TIMEOUT = ("--worker-timeout", "60s")
"""The supervisor's watchdog stays out of these tests (it SIGKILLs a worker silent that long)."""
START_TIMEOUT = 20.0
"""Seconds a (replacement) worker may take to report ready."""
EXIT_TIMEOUT = 10.0
"""Seconds a worker whose bus follower failed may take to exit: it drains for at most 5 s."""
BAD_VERSION = (b"heartbeat/", b'{"v": 99, "kind": "heartbeat", "epoch": "x", "seq": 1}')
INJECT_INTERVAL = 0.2
"""Seconds between two injections: a SUB's subscription reaches a PUB asynchronously, so one
message could be published before it; the worker must act on the first one it gets."""
PAUSE = 12.0
"""Seconds a worker stays SIGSTOPped: twice SUPERVISOR_TIMEOUT (6 s)."""
PAUSES = 2
"""Pauses in a row. Whether a worker that measured silence in wall time found a heartbeat in
its first poll after a pause was a race with ZeroMQ's I/O thread (it lost about half the
time), so the test pauses it more than once."""
LONG_CALLS = 6
LONG_CALL = PAUSES * PAUSE + 8.0
"""Seconds each long call sleeps in the backend: it outlasts the pauses."""
SUPERVISOR_SILENCE_CALL = 12.0
"""Seconds each call sleeps while the supervisor is stopped: the worker notices the silence
after 6 s of polling and must let these finish."""
CALL_TIMEOUT = 60.0


class UpdatesRelay:
    """Its own PUB at the bus's ``updates`` path, forwarding the supervisor's PUB (moved aside)
    and adding injected frames; `close` puts the supervisor's socket file back."""

    def __init__(self, runtime_dir: Path) -> None:
        self._path = runtime_dir / "updates"
        self._moved = runtime_dir / "u"  # short: a unix socket path has at most 107 bytes
        self._inject: queue.SimpleQueue[tuple[bytes, ...]] = queue.SimpleQueue()
        self._repeat: tuple[bytes, ...] | None = None
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._error: Exception | None = None
        os.rename(self._path, self._moved)
        self._thread = threading.Thread(target=self._run, name="updates-relay", daemon=True)
        self._thread.start()
        if not self._bound.wait(5.0) or self._error is not None:
            self.close()
            raise AssertionError(f"relay did not bind: {self._error!r}")

    def inject_repeatedly(self, frames: tuple[bytes, ...]) -> None:
        self._inject.put(frames)

    def _run(self) -> None:
        context = zmq.Context()
        upstream: zmq.Socket[bytes] = context.socket(zmq.SUB)
        downstream: zmq.Socket[bytes] = context.socket(zmq.PUB)
        try:
            upstream.setsockopt(zmq.LINGER, 0)
            downstream.setsockopt(zmq.LINGER, 0)
            upstream.setsockopt(zmq.SUBSCRIBE, b"")
            upstream.connect(f"ipc://{self._moved}")
            downstream.bind(f"ipc://{self._path}")
            self._bound.set()
            last_injected = 0.0
            while not self._stop.is_set():
                if upstream.poll(int(INJECT_INTERVAL * 1000 / 4)):
                    downstream.send_multipart(upstream.recv_multipart(), flags=zmq.NOBLOCK)
                with contextlib.suppress(queue.Empty):
                    self._repeat = self._inject.get_nowait()
                if self._repeat is not None and time.monotonic() - last_injected > INJECT_INTERVAL:
                    downstream.send_multipart(list(self._repeat), flags=zmq.NOBLOCK)
                    last_injected = time.monotonic()
        except Exception as error:  # the thread's guard: reported by the constructor or close
            self._error = error
            self._bound.set()
        finally:
            upstream.close(linger=0)
            downstream.close(linger=0)  # unlinks its socket file at self._path
            context.term()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()  # only if the relay thread could not
        os.rename(self._moved, self._path)
        assert self._error is None, f"relay failed: {self._error!r}"


def start_proxy(launcher: Launcher, runtime_base: Path, *backends: Backend, workers: int,
                admin: str, drain_timeout: str = "2s") -> tuple[Proxy, str]:
    """gproxy-mp over ``backends`` with its bus under ``runtime_base``; (proxy, address) once a
    call through it succeeds."""
    port = free_port()
    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime_base)  # the proxy inherits the environment
    try:
        proxy = launcher.start_proxy(
            *proxy_args(route(port, *backends), workers=workers, admin_address=admin,
                        drain_timeout=drain_timeout),
            *WORKER_TIMEOUT)
    finally:
        if previous is None:
            del os.environ["XDG_RUNTIME_DIR"]
        else:
            os.environ["XDG_RUNTIME_DIR"] = previous
    address = f"127.0.0.1:{port}"
    proxy.wait_serving(address)
    return proxy, address


def ready_pid(admin: str, worker: str, *, not_in: set[int]) -> int | None:
    """The pid of ``worker`` once the supervisor reports it ready, unless it is in ``not_in``."""
    for entry in route_view(admin)["workers"]:
        pid = entry["pid"]  # None once the process has exited
        if entry["worker"] == worker and entry["state"] == "ready" and pid not in (None, *not_in):
            return int(pid)
    return None


@pytest.fixture
def runtime_base(tmp_path: Path) -> Path:
    base = tmp_path / "xdg-runtime"
    base.mkdir(mode=0o700)
    return base


def test_a_bus_message_of_unknown_version_makes_the_worker_exit_non_zero_and_be_replaced(
    launcher: Launcher, runtime_base: Path
) -> None:
    admin = f"127.0.0.1:{free_port()}"
    proxy, address = start_proxy(launcher, runtime_base, launcher.start_backend("a"),
                                 workers=2, admin=admin)
    [runtime_dir] = runtime_base.glob("gproxy-mp-*")
    victim = wait_until(lambda: ready_pid(admin, "0#0", not_in=set()), timeout=START_TIMEOUT)
    sibling = wait_until(lambda: ready_pid(admin, "0#1", not_in=set()), timeout=START_TIMEOUT)
    assert victim and sibling, proxy.output()

    relay = UpdatesRelay(runtime_dir)
    try:
        os.kill(victim, signal.SIGKILL)  # its replacement connects to the relay
        replacement = wait_until(lambda: ready_pid(admin, "0#0", not_in={victim}),
                                 timeout=START_TIMEOUT)
        assert replacement, proxy.output()
        replacement_id = procfacts.identify(replacement)
        assert replacement_id is not None, proxy.output()
        relay.inject_repeatedly(BAD_VERSION)
        exited = wait_until(lambda: not procfacts.is_running(replacement_id), timeout=EXIT_TIMEOUT)
    finally:
        relay.close()
    assert exited, f"worker {replacement} still running after a bus protocol error\n" + (
        proxy.output())

    third = wait_until(lambda: ready_pid(admin, "0#0", not_in={victim, replacement}),
                       timeout=START_TIMEOUT)
    output = proxy.output()
    assert third, output
    assert f"worker 0#0 (pid {replacement}) exited with code 1" in output, output
    assert "schema version 99, this build speaks 1" in output, output
    assert "Traceback" in output, output  # logged with its traceback
    assert ready_pid(admin, "0#1", not_in=set()) == sibling, output
    with client.open_channel(address) as channel:
        assert client.whoami_counts([channel], calls=10) == {"a": 10}


def start_long_calls(channel: grpc.Channel, *, calls: int,
                     seconds: float) -> list[grpc.Future[bytes]]:
    return [client.sleep_future(channel, seconds, timeout=CALL_TIMEOUT) for _ in range(calls)]


def outcomes(calls: list[grpc.Future[bytes]]) -> list[str]:
    """Each call's reply, or its status code and details."""
    results = []
    for call in calls:
        try:
            results.append(call.result(timeout=CALL_TIMEOUT).decode())
        except grpc.RpcError as error:
            results.append(client.describe(error))
    return results


def test_a_paused_worker_resumes_serving_without_cancelling_its_calls(
    launcher: Launcher, runtime_base: Path
) -> None:
    backend = launcher.start_backend("a")
    admin = f"127.0.0.1:{free_port()}"
    proxy, address = start_proxy(launcher, runtime_base, backend, workers=1, admin=admin)
    [worker] = proxy.workers()
    worker_id = procfacts.identify(worker)
    assert worker_id is not None
    with client.open_channel(address) as channel:
        calls = start_long_calls(channel, calls=LONG_CALLS, seconds=LONG_CALL)
        assert wait_until(lambda: backend.counter("sleeping") == LONG_CALLS, timeout=10), (
            proxy.output())
        for _ in range(PAUSES):
            if not procfacts.is_running(worker_id):
                break  # it stopped itself: the assertions below show how
            os.kill(worker, signal.SIGSTOP)
            try:
                time.sleep(PAUSE)  # the fault itself: the worker is stopped this long
            finally:
                os.kill(worker, signal.SIGCONT)
            time.sleep(1.0)  # serving again: a heartbeat and a status report in between
        results = outcomes(calls)
    output = proxy.output()
    assert results == ["slept"] * LONG_CALLS, output
    assert backend.counter("cancelled") == 0, output
    assert procfacts.is_running(worker_id), output
    with client.open_channel(address) as channel:
        assert client.whoami(channel) == "a"
    assert proxy.workers() == [worker], output


def test_a_worker_whose_supervisor_is_silent_drains_its_calls_then_exits_non_zero(
    launcher: Launcher, runtime_base: Path
) -> None:
    backend = launcher.start_backend("a")
    admin = f"127.0.0.1:{free_port()}"
    proxy, address = start_proxy(launcher, runtime_base, backend, workers=1, admin=admin,
                                 drain_timeout="30s")
    [worker] = proxy.workers()
    worker_id = procfacts.identify(worker)
    assert worker_id is not None
    with client.open_channel(address) as channel:
        calls = start_long_calls(channel, calls=LONG_CALLS, seconds=SUPERVISOR_SILENCE_CALL)
        assert wait_until(lambda: backend.counter("sleeping") == LONG_CALLS, timeout=10), (
            proxy.output())
        proxy.send(signal.SIGSTOP)
        try:
            with futures.ThreadPoolExecutor(1) as pool:
                results = pool.submit(outcomes, calls)
                # The worker exits once its calls have finished (or at the drain timeout).
                exited = wait_until(lambda: not procfacts.is_running(worker_id),
                                    timeout=SUPERVISOR_SILENCE_CALL + 15)
                drained = results.result(timeout=CALL_TIMEOUT)
        finally:
            proxy.send(signal.SIGCONT)
    replacement = wait_until(lambda: ready_pid(admin, "0#0", not_in={worker}),
                             timeout=START_TIMEOUT)
    output = proxy.output()
    assert drained == ["slept"] * LONG_CALLS, output
    assert backend.counter("cancelled") == 0, output
    assert exited, output
    assert f"worker 0#0 (pid {worker}) exited with code 1" in output, output
    assert replacement, output
    with client.open_channel(address) as channel:
        assert client.whoami(channel) == "a"

