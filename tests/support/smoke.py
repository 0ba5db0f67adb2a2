"""Running a benchmark's ``--smoke`` mode as a bounded subprocess, for the bench tiers."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from harness.processes import run_bounded

STOP_TIMEOUT = 30.0
"""Seconds a benchmark gets after its stop signal to stop the processes it started."""


def run_smoke(question: str, *args: str, timeout: float,
              stop: signal.Signals | None = signal.SIGTERM,
              stop_timeout: float = STOP_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``python -m bench QUESTION --smoke ARGS...`` in its own session, bounded by ``timeout``.
    On timeout it gets ``stop`` (the signal on which it stops every peer it started; None: none
    is waited for), then its group SIGKILL, and the test fails with its output."""
    command = [sys.executable, "-m", "bench", question, "--smoke", *args]
    try:
        return run_bounded(command, timeout=timeout, stop=stop, stop_timeout=stop_timeout)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"bench {question} smoke run over {timeout}s\n{error.output}\n{error.stderr}")
