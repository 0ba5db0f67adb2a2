"""`python -m bench scaling --smoke` runs end to end: workers 1 and 2, gproxy-mp on each data
plane (grpcio: `gproxy`, native: `gproxy-native`) and nginx each measured at both (calls/s > 0,
CPU per call > 0), every proxy running on exactly the cores the plan gave its step, each
plane's workers all taking calls and running the engine of their plane (their memory maps),
and the output saying when the plan overlaps the roles.

A subprocess bounded by `SMOKE_TIMEOUT` (SIGTERM on timeout: it stops every peer it started).
nginx and h2load are installed by the harness when missing; the test skips only where that
cannot happen, or on a machine with a single usable CPU (no second worker count to measure).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.bench.test_bench_smoke import tools_unavailable
from tests.support.smoke import run_smoke

SMOKE_TIMEOUT = 180.0
"""Seconds the smoke run may take (about 30 here once the tools are installed)."""
GPROXY_PLANES = {"gproxy": "grpcio", "gproxy-native": "native"}


def test_the_smoke_run_measures_both_planes_and_nginx_at_one_and_two_workers(
        tmp_path: Path) -> None:
    reason = tools_unavailable()
    if reason:
        pytest.skip(reason)
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one usable CPU: no step with 2 workers")
    done = run_smoke("scaling", "--results-dir", str(tmp_path), timeout=SMOKE_TIMEOUT)
    output = f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
    assert done.returncode == 0, output
    [path] = tmp_path.glob("scaling/*/result.json")
    report: dict[str, Any] = json.loads(path.read_text())

    assert report["meta"]["failures"] == [], output
    rows = report["summary"]
    assert sorted((row["proxy"], row["workers"]) for row in rows) == [
        ("gproxy", 1), ("gproxy", 2), ("gproxy-native", 1), ("gproxy-native", 2),
        ("nginx", 1), ("nginx", 2)], output
    for row in rows:
        assert row["calls_per_s"] > 0, (row, output)
        assert row["proxy_cpu_us"] > 0, (row, output)
    plan = report["meta"]["plan"]
    for workers in ("1", "2"):  # taskset did pin each proxy's processes to its step's cores
        step = report["meta"]["steps"][workers]
        assert step["cores"] == plan["proxy"][:int(workers)], output
        assert step["affinity"] == {"gproxy": step["cores"], "gproxy-native": step["cores"],
                                    "nginx": step["cores"]}, output
        for proxy, plane in GPROXY_PLANES.items():  # every worker runs its plane's engine
            assert step["worker_planes"][proxy] == [plane] * int(workers), output
    for proxy in GPROXY_PLANES:  # both workers of each plane took calls at the 2-worker step
        split = report["meta"]["steps"]["2"]["calls_per_worker"][proxy]
        assert len(split) == 2 and min(split) > 0, (proxy, output)
    assert ("NOT scaling" in done.stdout) == plan["overlapped"], output


GO_GPROXY = os.environ.get("GO_GPROXY")
"""Path of a Go gproxy binary (kube-grpc-balancer's cmd/gproxy), an optional input: the test
below exists only when it is given (as in test_bench_smoke.py, since CI fails every skip)."""
if GO_GPROXY:

    def test_the_go_gproxy_is_measured_at_each_gomaxprocs(tmp_path: Path) -> None:
        assert GO_GPROXY is not None
        reason = tools_unavailable()
        if reason:
            pytest.skip(reason)
        done = run_smoke("scaling", "--results-dir", str(tmp_path), "--go-gproxy", GO_GPROXY,
                         "--max-workers", "1", timeout=SMOKE_TIMEOUT)
        output = f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
        assert done.returncode == 0, output
        [path] = tmp_path.glob("scaling/*/result.json")
        report: dict[str, Any] = json.loads(path.read_text())
        [row] = [row for row in report["summary"] if row["proxy"] == "go-gproxy"]
        assert row["workers"] == 1 and row["calls_per_s"] > 0 and row["proxy_cpu_us"] > 0, output
        assert report["meta"]["steps"]["1"]["affinity"]["go-gproxy"] == \
            report["meta"]["plan"]["proxy"][:1], output
