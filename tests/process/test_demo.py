"""`make demo`'s command, `gproxy-mp-demo`, runs end to end: every call answered, spread over
every backend, and the proxy stopped cleanly by SIGTERM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.processes import run_bounded

pytestmark = pytest.mark.timeout(150)

DEMO_TIMEOUT = 120.0
"""Seconds the demo may take (a few normally: start, 120 calls, a 1 s shutdown delay)."""


def test_the_demo_balances_every_call_and_stops_cleanly() -> None:
    demo = Path(sys.executable).with_name("gproxy-mp-demo")
    if not demo.exists():  # not installed as a script: the same entry point through Python
        argv = [sys.executable, "-c", "from gproxy_mp.demo import main; main()"]
    else:
        argv = [str(demo)]
    try:  # on timeout, SIGKILL of its group: the demo and the gproxy-mp it started
        demo_run = run_bounded([*argv, "--connections", "3", "--calls", "30"],
                               timeout=DEMO_TIMEOUT)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the demo took over {DEMO_TIMEOUT}s\n{error.output}{error.stderr}")
    stdout, stderr = demo_run.stdout, demo_run.stderr
    output = f"--- stdout\n{stdout}--- stderr\n{stderr}"
    assert demo_run.returncode == 0, output
    [total] = [line.split() for line in stdout.splitlines() if line.startswith("total")]
    counts = [int(count) for count in total[1:]]
    # 3 x 30 calls, round robin over 3 backends (a backend still connecting when the first
    # calls come is passed over, so not always exactly 30 each).
    assert len(counts) == 3 and sum(counts) == 90 and min(counts) >= 20, output
    assert "proxy exited with code 0" in stdout, output
