"""`python -m bench locality --smoke` runs end to end on a cluster of its own and shows the
shares each trafficDistribution gives (issue 15's locality run).

Asserted are properties, not timings: without a distribution calls reach every node; with
PreferClose none leaves the proxy's zone; with PreferSameNode all stay on its node.
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
"""Seconds the smoke run may take (about 2 minutes here)."""


def test_the_smoke_run_shows_where_each_distribution_sends_calls(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the real-cluster tier needs root to create a network namespace (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 not installed: cannot create a network namespace")
    try:
        ensure_binaries()
        ensure_kwok()
    except GoMissingError as error:
        pytest.skip(str(error))
    done = run_smoke("locality", "--results-dir", str(tmp_path), timeout=SMOKE_TIMEOUT,
                     stop=signal.SIGINT, stop_timeout=60.0)
    output = f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
    assert done.returncode == 0, output
    [path] = tmp_path.glob("locality/*/result.json")
    rows: dict[str, Any] = {r["distribution"]: r for r in json.loads(path.read_text())["rows"]}

    assert set(rows) == {"none", "PreferClose", "PreferSameNode"}, output
    assert all(r["failed"] == 0 for r in rows.values()), output
    assert all(share > 0 for share in rows["none"]["share"].values()), output
    assert rows["PreferClose"]["share"]["other_zone"] == 0, output
    assert rows["PreferClose"]["share"]["same_zone"] > 0, output
    assert rows["PreferSameNode"]["share"]["same_node"] == 1.0, output
