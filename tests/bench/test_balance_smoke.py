"""`python -m bench balance --smoke` runs end to end: both balancers measured over the same
backends, one of them ten times slower.

Only the benchmark's working is asserted, plus one property that is not a timing: least-request
sends the slow backend a smaller share of the calls than round robin, which gives every backend
about the same share.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.test_bench_smoke import SMOKE_TIMEOUT
from tests.support.smoke import run_smoke


def test_the_smoke_run_measures_both_balancers(tmp_path: Path) -> None:
    done = run_smoke("balance", "--results-dir", str(tmp_path), timeout=SMOKE_TIMEOUT)
    output = f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
    assert done.returncode == 0, output
    [path] = tmp_path.glob("balance/*/result.json")
    assert str(path) in done.stdout, output
    summary = json.loads(path.read_text())["summary"]

    assert set(summary) == {"round-robin", "least-request"}, output
    for measured in summary.values():
        assert measured["failed"] == 0 and measured["calls_per_s"] > 0, output
        assert measured["p99_ms"] >= measured["p50_ms"] > 0, output
    round_robin, least_request = (summary[b]["share"]["slow"]
                                  for b in ("round-robin", "least-request"))
    assert round_robin > 0.2, output  # about a quarter: every backend in turn
    assert least_request < round_robin, output
