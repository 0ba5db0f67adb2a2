"""Backends, the proxy and gRPC callers of the Kubernetes tier, each a process in the namespace.

The same processes as the other tiers (``harness.backend``, ``python -m gproxy_mp``), but
started with ``ip netns exec`` (``ip`` execs the program, so the pid we hold is the program's;
backends are ``harness.processes.Backend`` with that ``command_prefix``)
in a session of their own, and stopped with SIGTERM to the group, a bounded wait, then SIGKILL.
Their output goes to files in the test's tmp dir and into assertion messages.

Since pytest cannot reach the namespace with gRPC, traffic comes from a
`harness.remote_traffic.RemoteLoad` child, whose outcomes arrive as JSON lines on a reader thread.

Concurrency: one reader thread per caller appends outcomes under a lock; everything else runs
on the test's thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from harness.kube.netns import NetworkNamespace
from harness.peers import Backend
from harness.processes import REPO
from harness.remote_traffic import RemoteLoad, call_once
from harness.traffic import Outcome

STOP_TIMEOUT = 10.0
"""Seconds between SIGTERM and SIGKILL of a process group."""
CALLER_INTERVAL = 0.01
"""Seconds between a caller's calls: about 100 calls/s leaves the 2 CPUs to the proxy and the API
server."""
CALLER_SECONDS = 120.0
"""Seconds a caller runs at most; a test stops it sooner by closing its stdin."""


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


class Workloads:
    """Starts one test's backends, proxies and callers in the namespace, and stops them all.

    Also reads the proxies' admin endpoints, on a pinned thread of its own.
    """

    def __init__(self, namespace: NetworkNamespace, *, log_dir: Path) -> None:
        self.namespace = namespace
        self.log_dir = log_dir
        self.backends: dict[str, Backend] = {}
        self.proxies: list[NetProxy] = []
        self.callers: list[RemoteLoad] = []
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

    def start_caller(self, address: str) -> RemoteLoad:
        """Whoami calls one after another, round robin over two channels, from the namespace."""
        caller = RemoteLoad(
            address,
            command_prefix=self.namespace.command([]),
            log_path=self.log_dir / "caller.log",
            threads=1,
            channels_per_thread=2,
            interval=CALLER_INTERVAL,
            max_seconds=CALLER_SECONDS,
        )
        self.callers.append(caller)
        return caller

    def call_once(self, address: str) -> Outcome:
        """One Whoami call from a fresh process inside the namespace."""
        return call_once(address, command_prefix=self.namespace.command([]))

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
