"""Running a benchmark's ``--smoke`` mode as a bounded subprocess, for the bench tier."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.support.processes import REPO

STOP_TIMEOUT = 30.0
"""Seconds a benchmark gets after SIGTERM to stop the processes it started."""


def run_smoke(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE --smoke ARGS...`` in its own session, bounded by ``timeout``. On
    timeout it gets SIGTERM (benchmarks then stop every peer they started), then its group
    SIGKILL, and the test fails with its output."""
    command = [sys.executable, "-m", module, "--smoke", *args]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: only its tree
            stdout, stderr = process.communicate(timeout=10)
        pytest.fail(f"{module} smoke run over {timeout}s\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
