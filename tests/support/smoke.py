"""Running a benchmark's ``--smoke`` mode as a bounded subprocess, for the bench tiers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.kube.binaries import GoMissingError, ensure_binaries, ensure_kwok
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


CLUSTER_SMOKE_TIMEOUT = 300.0
"""Seconds a real-cluster benchmark's smoke run may take (each brings up a cluster of its own)."""
CLUSTER_STOP_TIMEOUT = 60.0
"""Seconds it gets after SIGINT to tear its cluster down."""


def run_cluster_smoke(question: str, results_dir: Path) -> tuple[Path, str, str]:
    """``python -m bench QUESTION --smoke`` for a benchmark that brings up a real cluster of its
    own (root, ip netns, the Go-built control plane and kwok; skips with the reason where one
    is missing). Asserts exit 0; returns its one ``result.json``, its stdout, and its output
    for failure messages. On a timeout it gets SIGINT, so its cleanup stops what it started."""
    if os.geteuid() != 0:
        pytest.skip("the real-cluster tier needs root to create a network namespace (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 not installed: cannot create a network namespace")
    try:
        ensure_binaries()
        ensure_kwok()
    except GoMissingError as error:
        pytest.skip(str(error))
    done = run_smoke(question, "--results-dir", str(results_dir), timeout=CLUSTER_SMOKE_TIMEOUT,
                     stop=signal.SIGINT, stop_timeout=CLUSTER_STOP_TIMEOUT)
    output = f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
    assert done.returncode == 0, output
    [path] = results_dir.glob(f"{question}/*/result.json")
    return path, done.stdout, output
