"""The backend's ``--delay-ms``: a real slow backend answers late,
and a negative delay is refused with one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from harness.peers import Backend
from harness.whoami import whoami

pytestmark = pytest.mark.timeout(60)

DELAY_MS = 400


def timed_whoami(backend: Backend) -> tuple[str, float]:
    with grpc.insecure_channel(backend.address) as channel:
        whoami(channel)  # connect first: the timed call measures the answer only
        started = time.monotonic()
        name = whoami(channel)
        return name, time.monotonic() - started


def test_a_delayed_backend_answers_late(tmp_path: Path) -> None:
    slow = Backend("slow", log_dir=tmp_path, extra_args=("--delay-ms", str(DELAY_MS)))
    try:
        name, took = timed_whoami(slow)
    finally:
        slow.stop()
    assert name == "slow"
    assert took >= DELAY_MS / 1000


def test_a_negative_delay_is_refused_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness.backend", "--name", "x", "--delay-ms", "-1"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 2
    assert "--delay-ms must be 0 or more" in done.stderr
    assert "Traceback" not in done.stderr
