"""`python -m bench scale --smoke` runs end to end and writes a sane JSON report.

The benchmark starts two grpcio test backends and, three times over, the real gproxy-mp: one
route with two workers under load, one route of 200 endpoints, three routes. Here it runs as a
subprocess in its own session, bounded by `SMOKE_TIMEOUT`; on timeout it gets SIGTERM (it then
stops every process it started), then its group gets SIGKILL. Its output goes into the failure
message. Targets (80 MiB, 200 ms) are not asserted: they are the full run's to report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.smoke import run_smoke

SMOKE_TIMEOUT = 120.0
"""Seconds the smoke run may take (it normally needs about 10)."""


def positive(memory: dict[str, Any] | None) -> bool:
    return memory is not None and memory["rss_mib"] > 0 and (
        memory["pss_mib"] is None or 0 < memory["pss_mib"] <= memory["rss_mib"])


def test_the_smoke_run_measures_memory_endpoints_and_routes(tmp_path: Path) -> None:
    done = run_smoke("scale", "--results-dir", str(tmp_path), timeout=SMOKE_TIMEOUT)
    output = f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
    assert done.returncode == 0, output
    [path] = tmp_path.glob("scale/*/result.json")
    report: dict[str, Any] = json.loads(path.read_text())
    assert str(path) in done.stdout, output
    assert report["failures"] == [], output

    memory = report["memory"]
    assert sorted(memory["idle"]) == ["0#0", "0#1", "supervisor"], output
    for phase in ("idle", "load_peak", "after_load"):
        assert all(positive(m) for m in memory[phase].values()), (phase, output)
    assert memory["load"]["calls"] > 0, output
    assert memory["load"]["failed"] == 0, output

    endpoints = report["endpoints"]
    assert endpoints["endpoints"] == 200, output
    assert endpoints["bus"]["message_bytes"] > endpoints["bus"]["target_bytes"] > 200 * 10
    [proxy] = endpoints["proxy_runs"]
    assert proxy["first_call"]["answered_by"] == "b0", output
    assert [(a["seq"], a["count"]) for a in proxy["worker_applies"]] == [(1, 200)], output
    assert endpoints["worker_apply_ms"]["median"] > 0, output
    assert sorted(endpoints["in_process_updates_ms"]["median"]) == [
        "all_replaced", "first_set", "one_replaced"], output

    routes = report["routes"]
    assert routes["routes"] == routes["workers"] == routes["routes_answering"] == 3, output
    assert len(routes["memory"]) == 4 and all(positive(m) for m in routes["memory"].values())
    assert routes["supervisor_idle_cpu_percent"] >= 0, output
    assert 0 < routes["readyz_s"] <= routes["all_workers_ready_s"], output

    assert set(report["targets"]) == {"worker_idle_rss_mib", "apply_ms"}, output
