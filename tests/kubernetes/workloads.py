"""Backends, the proxy and gRPC callers of the Kubernetes tier, each a process in the namespace.

The same processes as the other tiers (``harness.backend``, ``python -m gproxy_mp``), but
started with ``ip netns exec`` (``ip`` execs the program, so the pid we hold is the program's;
backends are ``harness.processes.Backend`` with that ``command_prefix``)
in a session of their own, and stopped with SIGTERM to the group, a bounded wait, then SIGKILL.
Their output goes to files in the test's tmp dir and into assertion messages.

Since pytest cannot reach the namespace with gRPC, traffic comes from :class:`Caller`
(``tests.kubernetes.caller``), whose outcomes arrive as JSON lines on a reader thread.

Concurrency: one reader thread per Caller appends outcomes under a lock; everything else runs
on the test's thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness.peers import Backend
from harness.processes import REPO
from tests.kubernetes.netns import NetworkNamespace

STOP_TIMEOUT = 10.0
"""Seconds between SIGTERM and SIGKILL of a process group."""
ONCE_TIMEOUT = 30.0
"""Seconds a one-shot caller may take (interpreter and grpc import, one bounded call)."""


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM to the group, a bounded wait, then SIGKILL of the group; reaps it."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if signum == signal.SIGKILL or process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
    process.wait(timeout=timeout)


class NetProxy:
    """``python -m gproxy_mp ARGS`` inside the namespace."""

    def __init__(
        self, *args: str, namespace: NetworkNamespace, log_dir: Path, index: int = 0
    ) -> None:
        self.args = args
        self.stdout_path = log_dir / f"proxy-{index}.stdout"
        self.stderr_path = log_dir / f"proxy-{index}.stderr"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                namespace.command([sys.executable, "-m", "gproxy_mp", *args]),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def output(self) -> str:
        stdout = self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""
        return (
            f"--- gproxy-mp {' '.join(self.args)} (pid {self.process.pid}, "
            f"rc {self.process.poll()})\n--- stdout\n{stdout}--- stderr\n{self.stderr()}"
        )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"proxy exited with {self.process.returncode}\n{self.output()}")

    def stop(self) -> None:
        stop_process(self.process)


@dataclass(frozen=True)
class Outcome:
    at: float  # time.monotonic() when the call returned
    name: str | None  # the backend that answered, None for a failed call
    error: str = ""


class Caller:
    """A running ``tests.kubernetes.caller`` loop and the outcomes it reported so far."""

    def __init__(self, address: str, *, namespace: NetworkNamespace, log_dir: Path) -> None:
        self.address = address
        self.log_path = log_dir / "caller.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                namespace.command(
                    [sys.executable, "-m", "tests.kubernetes.caller", "--address", address]
                ),
                cwd=REPO,
                stdin=subprocess.PIPE,  # closing it ends the loop
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        assert self.process.stdout is not None
        self._reader = threading.Thread(
            target=self._read, args=(self.process.stdout,), name="caller-reader", daemon=True
        )
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            data = json.loads(line)
            with self._lock:
                self._outcomes.append(Outcome(data["at"], data["name"], data["error"]))

    def stop(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT)
        stop_process(self.process)
        self._reader.join(timeout=STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def outcomes(self, since: float = 0.0) -> list[Outcome]:
        with self._lock:
            return [o for o in self._outcomes if o.at >= since]

    def failures(self, since: float = 0.0) -> list[Outcome]:
        return [o for o in self.outcomes(since) if o.name is None]

    def names(self, since: float = 0.0) -> set[str]:
        return {o.name for o in self.outcomes(since) if o.name is not None}

    def first_answer_from(self, name: str, since: float = 0.0) -> float | None:
        return next((o.at for o in self.outcomes(since) if o.name == name), None)

    def last_answer_from(self, name: str) -> float | None:
        return next((o.at for o in reversed(self.outcomes()) if o.name == name), None)

    def summary(self, since: float = 0.0) -> str:
        outcomes = self.outcomes(since)
        counts: dict[str, int] = {}
        for outcome in outcomes:
            key = outcome.name or f"FAILED {outcome.error}"
            counts[key] = counts.get(key, 0) + 1
        return f"caller {self.address}: {len(outcomes)} calls {counts}"


def call_once(address: str, *, namespace: NetworkNamespace) -> Outcome:
    """One Whoami call from a fresh process inside the namespace."""
    result = subprocess.run(
        namespace.command(
            [sys.executable, "-m", "tests.kubernetes.caller", "--address", address, "--once"]
        ),
        cwd=REPO,
        capture_output=True,
        timeout=ONCE_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"caller failed ({result.returncode}): {result.stderr.decode()}")
    data = json.loads(result.stdout)
    return Outcome(data["at"], data["name"], data["error"])


class Workloads:
    """Starts one test's backends, proxies and callers in the namespace, and stops them all.

    Also reads the proxies' admin endpoints, on a pinned thread of its own.
    """

    def __init__(self, namespace: NetworkNamespace, *, log_dir: Path) -> None:
        self.namespace = namespace
        self.log_dir = log_dir
        self.backends: dict[str, Backend] = {}
        self.proxies: list[NetProxy] = []
        self.callers: list[Caller] = []
        self._thread = namespace.pinned_thread("workloads-admin")

    def start_backend(self, name: str, host: str, port: int) -> Backend:
        backend = Backend(
            name,
            log_dir=self.log_dir,
            host=host,
            port=port,
            command_prefix=self.namespace.command([]),
            stop_timeout=STOP_TIMEOUT,
        )
        self.backends[name] = backend
        return backend

    def start_proxy(self, *args: str) -> NetProxy:
        proxy = NetProxy(
            *args, namespace=self.namespace, log_dir=self.log_dir, index=len(self.proxies)
        )
        self.proxies.append(proxy)
        return proxy

    def start_caller(self, address: str) -> Caller:
        caller = Caller(address, namespace=self.namespace, log_dir=self.log_dir)
        self.callers.append(caller)
        return caller

    def call_once(self, address: str) -> Outcome:
        return call_once(address, namespace=self.namespace)

    def admin(self, address: str, path: str) -> tuple[int, str]:
        """(status, body) of ``GET http://address/path`` from inside the namespace."""

        def get() -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()
            except OSError as error:
                return 0, repr(error)

        return self._thread.run(get)

    def routes(self, admin_address: str) -> dict[str, dict[str, Any]]:
        """``/debug/endpoints`` keyed by route listen address ({} while unreachable)."""
        status, body = self.admin(admin_address, "/debug/endpoints")
        if status != 200:
            return {}
        return {route["route"]: route for route in json.loads(body)["routes"]}

    def close(self) -> None:
        for caller in self.callers:
            caller.stop()
        for proxy in self.proxies:
            proxy.stop()
        for backend in self.backends.values():
            backend.stop()
        self._thread.close()
