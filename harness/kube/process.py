"""One control-plane program (etcd, kube-apiserver, ...) as a process in the network namespace.

A :class:`PeerProcess` is started with ``ip netns exec`` in its own session, appends to one log
file across restarts (each start opens with a ``=== start #n`` line), and is stopped with a
signal to its group, a bounded wait, then SIGKILL. :func:`wait_ready` polls a readiness probe on
the pinned thread that can reach the namespace. A new control-plane program (issue 14:
kube-controller-manager, kube-scheduler, kwok) is a small dataclass holding a ``PeerProcess``,
its ``argv`` and a ``start`` that spawns and waits on its probe; see ``controlplane.py``.

Concurrency: driven from one thread; probes run on the given pinned thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from harness.kube.netns import NetworkNamespace, PinnedThread

STOP_TIMEOUT = 15.0
"""Seconds between SIGTERM and SIGKILL (the apiserver drains for a few seconds)."""
PROBE_TIMEOUT = 2.0
"""Seconds one readiness request may take."""
PROBE_INTERVAL = 0.25
"""Seconds between readiness requests."""
LOG_TAIL = 60
"""Lines of a peer's log shown in an error or a failed test's report."""


def tail(path: Path, lines: int = LOG_TAIL) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class PeerProcess:
    """One long-running program in the namespace; may be started and stopped repeatedly."""

    def __init__(self, name: str, *, namespace: NetworkNamespace, log_path: Path) -> None:
        self.name = name
        self.namespace = namespace
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def spawn(self, argv: list[str]) -> None:
        if self.running():
            raise RuntimeError(f"{self.name} is already running")
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"=== start #{self.starts}: {' '.join(argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.namespace.command(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def current_log(self) -> str:
        """The log since the latest start."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text.rpartition("=== start #")[2]

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}\n{tail(self.log_path)}"
            )

    def stop(self, *, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> None:
        """``signum`` to the group, a bounded wait, then SIGKILL; a no-op when not running."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
        _signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the peer gets no chance to close its connections cleanly."""
        self.stop(signum=signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def wait_ready(
    peer: PeerProcess, probe_thread: PinnedThread, probe: Callable[[], str | None], timeout: float
) -> None:
    """Run ``probe`` on the pinned thread until it returns None (else: what is still wrong)."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        peer.check_alive()
        result = probe_thread.run(probe, timeout=PROBE_TIMEOUT * 3)
        if result is None:
            return
        last = str(result)
        time.sleep(PROBE_INTERVAL)
    raise TimeoutError(
        f"{peer.name} not ready after {timeout}s: {last}\n--- log tail\n{tail(peer.log_path)}"
    )
