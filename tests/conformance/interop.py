"""The grpc-go interop peers: build (or find) them, run a server, run the client once per case.

The binaries come from ``scripts/build-interop.sh`` (grpc-go pinned by ``testbin/interop/go.mod``),
run by ``harness.testbin``, and live in the git-ignored ``.cache/testbin/``. A server listens on
port 0 and its port is read from its own log line ("interop server listening on [::]:PORT",
printed at grpc-go's info severity); it runs in its own session and is stopped with SIGTERM to
its group, a bounded wait, then SIGKILL. The client is one process per test case: it exits 0 on
success and 1 with a ``FATAL`` line naming the first failed check.

Concurrency: everything here is called from the test thread.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import testbin
from harness.processes import spawn, stop_group
from harness.waiting import wait_until

CLIENT_TIMEOUT = 60.0
"""Seconds one client run may take; the client's own per-case deadlines are at most 30 s."""
SERVER_START_TIMEOUT = 20.0
"""Seconds a server may take to log its port and then answer an ``empty_unary``."""
SERVER_STOP_TIMEOUT = 5.0
"""Seconds between SIGTERM and SIGKILL of a server's group (grpc-go stops at once)."""
READY_PROBE_INTERVAL = 0.1
"""Seconds between two readiness probes (each probe is a whole client run, ~20 ms)."""
TAIL_LINES = 40
"""Lines of a server log shown in a failure message."""

LISTENING = re.compile(rb"interop server listening on .*:(\d+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Peers:
    server: Path
    client: Path


def build_peers() -> Peers | None:
    """The binaries (``harness.testbin``'s peer ``interop``, normally built by ``make peers``).

    None when they are missing or stale and Go is not installed to rebuild them.
    """
    try:
        server, client = testbin.build("interop")
    except testbin.GoMissingError:
        return None
    return Peers(server=server, client=client)


@dataclass(frozen=True)
class ClientRun:
    """One finished client run; ``returncode`` is None when it was killed at its timeout."""

    args: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        return (
            f"--- {' '.join(self.args)} (rc {self.returncode})\n"
            f"--- client stdout\n{self.stdout}--- client stderr\n{self.stderr}"
        )


def run_client(
    client: Path, *, port: int, case: str, extra: Sequence[str] = (),
    timeout: float = CLIENT_TIMEOUT,
) -> ClientRun:
    """Run one interop test case against ``127.0.0.1:port``."""
    args = (
        str(client), "--server_host=127.0.0.1", f"--server_port={port}", f"--test_case={case}",
        *extra,
    )
    try:
        done = subprocess.run(
            args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:  # subprocess.run has killed the client
        return ClientRun(
            args, None, _text(expired.stdout), f"{_text(expired.stderr)}[killed after {timeout}s]\n"
        )
    return ClientRun(args, done.returncode, done.stdout, done.stderr)


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def wait_serving(
    client: Path, *, port: int, process: subprocess.Popen[bytes], context: Callable[[], str],
    timeout: float, extra: Sequence[str] = (),
) -> None:
    """Until an ``empty_unary`` through ``port`` succeeds (client flags ``extra``, e.g. TLS).

    AssertionError (with the last client run and ``context()``, e.g. the peer's log) if
    ``process`` exits first or ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before serving\n{context()}")
        remaining = deadline - time.monotonic()
        run = run_client(client, port=port, case="empty_unary", extra=extra,
                         timeout=max(remaining, 1.0))
        if run.ok:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"127.0.0.1:{port} not serving after {timeout}s\n{run.describe()}{context()}"
            )
        time.sleep(min(READY_PROBE_INTERVAL, max(deadline - time.monotonic(), 0)))


class InteropServer:
    """A running ``interop-server --port=0`` (plaintext, all interfaces)."""

    def __init__(self, executable: Path, *, log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = spawn(
                [str(executable), "--port=0"],
                env={**os.environ, "GRPC_GO_LOG_SEVERITY_LEVEL": "info"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        found = wait_until(self._logged_port, timeout=SERVER_START_TIMEOUT)
        if found is None:
            self.stop()
            raise AssertionError(
                f"interop server logged no port within {SERVER_START_TIMEOUT}s\n{self.output()}"
            )
        self.port = found
        self.address = f"127.0.0.1:{found}"

    def _logged_port(self) -> int | None:
        match = LISTENING.search(self.log_path.read_bytes())
        if match is None and self.process.poll() is not None:
            raise AssertionError(f"interop server exited early\n{self.output()}")
        return int(match.group(1)) if match else None

    def output(self, *, tail: int = TAIL_LINES) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()[-tail:]
        return (
            f"--- interop-server pid {self.process.pid} (rc {self.process.poll()}), "
            f"last {tail} log lines\n" + "".join(f"{line}\n" for line in lines)
        )

    def stop(self) -> None:
        """SIGTERM the group, wait, then SIGKILL it and reap the server (`stop_group`)."""
        stop_group(self.process, timeout=SERVER_STOP_TIMEOUT)
