"""`python -m bench.discovery --smoke` runs end to end and writes a sane JSON report.

The benchmark itself starts dnsmasq, three backends and gproxy-mp; here it runs as a subprocess
in its own session, bounded by `SMOKE_TIMEOUT`, and its output goes into the failure message.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.dns.dnsmasq import find_dnsmasq
from tests.support.processes import REPO

SMOKE_TIMEOUT = 90.0
"""Seconds the smoke run may take (it normally needs about 15)."""


def run_smoke(results: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bench.discovery", "--smoke", "--results-dir", str(results)]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=SMOKE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: the group is only its tree
        stdout, stderr = process.communicate(timeout=10)
        pytest.fail(f"smoke run over {SMOKE_TIMEOUT}s\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_the_smoke_run_measures_every_change_through_the_proxy(tmp_path: Path) -> None:
    if find_dnsmasq() is None:
        pytest.skip("dnsmasq not installed (Debian: dnsmasq-base)")
    done = run_smoke(tmp_path)
    output = f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
    assert done.returncode == 0, output
    [path] = tmp_path.glob("discovery-*.json")
    report: dict[str, Any] = json.loads(path.read_text())

    proxy, reference = report["runs"]
    assert proxy["refresh_s"] == 0.5, output
    assert [c["kind"] for c in proxy["changes"]] == ["add", "remove"], output
    for change in proxy["changes"]:
        assert change["settled"], (change, output)
        assert 0 <= change["latency_s"] <= change["window_s"], (change, output)
        assert 0 <= change["dns_confirmed_after_s"] < change["window_s"], (change, output)
    assert proxy["failed_calls_during_changes"] == 0, output
    assert proxy["first_call_on_added"]["median_s"] is not None, output
    assert proxy["last_call_on_removed"]["median_s"] is not None, output

    assert [c["kind"] for c in reference["changes"]] == ["add", "remove"], output
    assert reference["calls"] > 0, output
    assert str(path) in done.stdout, output
