"""`python -m bench discovery-cluster --smoke` runs end to end and writes a sane JSON report.

The benchmark brings up a cluster of its own (another network namespace, named after its pid),
so this test uses none of the tier's fixtures; it runs as a subprocess in its own session,
bounded by `SMOKE_TIMEOUT`; on a timeout it gets SIGINT, so its cleanup stops what it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from harness.kube.binaries import GoMissingError, ensure_binaries, ensure_kwok
from tests.support.smoke import run_smoke

pytestmark = pytest.mark.timeout(400)

SMOKE_TIMEOUT = 300.0
"""Seconds the smoke run may take (about 40 here)."""
INTERRUPT_TIMEOUT = 60.0


def test_the_smoke_run_measures_a_rollout_through_the_proxy(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the real-cluster tier needs root to create a network namespace (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 not installed: cannot create a network namespace")
    try:
        ensure_binaries()
        ensure_kwok()
    except GoMissingError as error:
        pytest.skip(str(error))
    done = run_smoke("discovery-cluster", "--results-dir", str(tmp_path),
                     timeout=SMOKE_TIMEOUT, stop=signal.SIGINT, stop_timeout=INTERRUPT_TIMEOUT)
    output = f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
    assert done.returncode == 0, output
    [path] = tmp_path.glob("discovery-cluster/*/result.json")
    report: dict[str, Any] = json.loads(path.read_text())
    assert str(path) in done.stdout, output
    assert report["settings"]["smoke"] is True, output
    assert report["failed"] == 0 and report["calls"] > 0, output
    [rollout] = report["rollouts"]
    assert 0 < rollout["change_to_first_call_on_new_s"] < 60, output
    assert len(rollout["ready_to_first_call_s"]) == 3, output
    assert len(rollout["terminating_to_last_call_s"]) == 3, output
