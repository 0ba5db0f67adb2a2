"""`python -m bench discovery-k8s --smoke` runs end to end and writes a sane JSON report.

The benchmark brings up its own namespace, etcd, kube-apiserver, backends and gproxy-mp (this
test uses none of the tier's fixtures, so it does not start the session's control plane); it runs
as a subprocess in its own session, bounded by `SMOKE_TIMEOUT`. On a timeout it gets SIGINT, so
its cleanup (bounded) stops what it started, then SIGKILL; whatever still ran is in a namespace
named after its dead pid, which the tier's next session removes as stale. It skips like the
tier's fixtures: without root or iproute2, or without the testbin and Go to build it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from harness.kube.binaries import GoMissingError, ensure_binaries
from tests.support.discovery_report import assert_changes_measured
from tests.support.smoke import run_smoke

SMOKE_TIMEOUT = 180.0
"""Seconds the smoke run may take (it normally needs about 10; the API server alone may take
up to 90 to start on 2 busy cores)."""
INTERRUPT_TIMEOUT = 60.0
"""Seconds the interrupted run may take to clean up before it is killed."""


def test_the_smoke_run_measures_every_slice_change_through_the_proxy(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the Kubernetes tier needs root to create a network namespace (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 not installed: cannot create a network namespace")
    try:
        ensure_binaries()
    except GoMissingError as error:
        pytest.skip(str(error))
    done = run_smoke("discovery-k8s", "--results-dir", str(tmp_path),
                     timeout=SMOKE_TIMEOUT, stop=signal.SIGINT, stop_timeout=INTERRUPT_TIMEOUT)
    output = f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
    assert done.returncode == 0, output
    [path] = tmp_path.glob("discovery-k8s/*/result.json")
    report: dict[str, Any] = json.loads(path.read_text())
    assert str(path) in done.stdout, output

    assert report["benchmark"] == "discovery-k8s", output
    assert report["settings"]["smoke"] is True, output
    [run] = report["runs"]
    assert run["target"].startswith("kubernetes:///echo."), output
    assert_changes_measured(run, confirmed_key="api_confirmed_after_s", output=output)
    assert isinstance(report["target_met"], bool), output
    workers = report["proxy_route_at_end"]["workers"]
    assert len(workers) == 2, output
    assert {w["applied_seq"] for w in workers} == {report["proxy_route_at_end"]["seq"]}, output
