"""Running a benchmark's ``--smoke`` mode as a bounded subprocess, for the bench tiers."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys

import pytest

from harness.processes import signal_group, spawn

STOP_TIMEOUT = 30.0
"""Seconds a benchmark gets after its stop signal to stop the processes it started."""


def run_smoke(module: str, *args: str, timeout: float,
              stop: signal.Signals | None = signal.SIGTERM,
              stop_timeout: float = STOP_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE --smoke ARGS...`` in its own session, bounded by ``timeout``. On
    timeout it gets ``stop`` (the signal on which it stops every peer it started; None: none
    is waited for), then its group SIGKILL, and the test fails with its output."""
    command = [sys.executable, "-m", module, "--smoke", *args]
    process = spawn(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
        pytest.fail(f"{module} smoke run over {timeout}s\n{(stdout + more_out).decode()}\n"
                    f"{(stderr + more_err).decode()}")
    return subprocess.CompletedProcess(command, process.returncode, stdout.decode(),
                                       stderr.decode())
