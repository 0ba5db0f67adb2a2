"""Start and always tear down real processes: the one implementation of a process's life for
tests and bench.

`spawn` starts a program in a session of its own (``start_new_session=True``), so a signal to
its process group reaches it and its children and nothing else; `read_line` is the bounded
readiness wait on its output; `stop_group` / `stop_groups` tear down (SIGTERM to the group, a
bounded wait, SIGKILL), signalling a group only while its leader is unreaped; `run_bounded`
runs a command to completion within a timeout. The running peers built on these are
`harness.peers` (`Backend`, `Proxy`, `Launcher`).

Concurrency: none of its own; every function blocks the calling thread for a bounded time.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def signal_group(pgid: int, signum: int) -> None:
    """Signal a process group; one that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def spawn(
    argv: Sequence[str],
    *,
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
    cwd: Path | None = REPO,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own: its pid is its process-group id, so a signal
    to the group reaches it and its children and nothing else."""
    return subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
        start_new_session=True,
    )


def wait_exited(process: subprocess.Popen[bytes], *, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``process`` to exit, *without* reaping it (a pidfd):
    while it is unreaped its pid, which is also its group's id, cannot be reused, so its group
    may still be signalled safely."""
    if process.returncode is not None:
        return True
    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return True
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(pidfd, selectors.EVENT_READ)
            return bool(selector.select(max(timeout, 0.0)))
    finally:
        os.close(pidfd)


def stop_groups(processes: Sequence[subprocess.Popen[bytes]], *, timeout: float) -> None:
    """SIGTERM each process's group, wait up to ``timeout`` seconds in all, then SIGKILL each
    group (whatever of it is left) and reap the process (another ``timeout`` at most).

    A group is signalled only while its leader is unreaped (`wait_exited`), so a group id is
    never signalled after it could have been reused; a leader already reaped elsewhere
    (``Popen.poll``) leaves any survivors of its group to the caller (`Proxy.stop` kills every
    descendant it saw)."""
    for process in processes:
        if process.returncode is None:
            signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        wait_exited(process, timeout=deadline - time.monotonic())
    for process in processes:
        if process.returncode is None:
            signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


def stop_group(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """`stop_groups` for one process."""
    stop_groups([process], timeout=timeout)


def run_bounded(
    argv: Sequence[str],
    *,
    timeout: float,
    stop: signal.Signals | None = None,
    stop_timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion in its own session, its output captured, bounded by
    ``timeout`` seconds. On timeout: ``stop`` to it (if given: the signal on which it stops
    whatever it started) with ``stop_timeout`` seconds to exit, then SIGKILL of its group, and
    ``subprocess.TimeoutExpired`` carrying all it wrote."""
    process = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stdout = stderr = b""
        if stop is not None:
            process.send_signal(stop)
            with contextlib.suppress(subprocess.TimeoutExpired):
                stdout, stderr = process.communicate(timeout=stop_timeout)
        signal_group(process.pid, signal.SIGKILL)  # its own session: only its tree
        more_out, more_err = process.communicate(timeout=10)
        raise subprocess.TimeoutExpired(
            list(argv), timeout, output=(stdout + more_out).decode(errors="replace"),
            stderr=(stderr + more_err).decode(errors="replace"),
        ) from None
    return subprocess.CompletedProcess(
        list(argv), process.returncode, stdout.decode(errors="replace"),
        stderr.decode(errors="replace"),
    )


def read_line(stream: IO[bytes], *, timeout: float) -> bytes:
    """One line from a pipe, or ``TimeoutError`` after ``timeout`` seconds (b"" at EOF)."""
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not buffer.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line within {timeout}s (got {buffer!r})")
            if not selector.select(remaining):
                continue
            chunk = os.read(stream.fileno(), 1)
            if not chunk:
                return buffer
            buffer += chunk
    return buffer


def authority(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
