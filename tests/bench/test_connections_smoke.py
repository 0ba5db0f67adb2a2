"""`python -m bench connections --smoke` runs end to end and reports every split it measured.

It starts nginx backends and three gproxy-mp set-ups (1 worker; 2 workers; 2 workers with
`--max-connection-age`) and drives each with the grpcio client over 1, 4 and 16 connections;
every call must succeed, GOAWAYs included, or the run exits non-zero. Whether the age evens
the split out is asserted by tests/process/test_connection_age.py; here only that the
benchmark works.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import SMOKE_TIMEOUT, tools_unavailable
from tests.support.smoke import run_smoke


def test_the_smoke_run_reports_a_split_for_every_setup_and_connection_count(
    tmp_path: Path,
) -> None:
    reason = tools_unavailable()
    if reason:
        pytest.skip(reason)
    done = run_smoke("connections", "--results-dir", str(tmp_path), timeout=SMOKE_TIMEOUT)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    [path] = tmp_path.glob("connections/*/result.json")
    result = json.loads(path.read_text())
    rows = {(row["setup"], row["connections"]): row for row in result["summary"]}
    assert set(rows) == {(setup, connections)
                         for setup in ("gproxy-w1", "gproxy-w2", "gproxy-w2-age-200ms")
                         for connections in (1, 4, 16)}, rows
    for sample in result["samples"]:
        assert sum(sample["split"]) >= sample["calls"], sample
    assert all(rows[("gproxy-w1", c)]["busiest_share_max"] == 1.0 for c in (1, 4, 16))
    assert all(row["calls_per_s"] > 0 for row in rows.values())
