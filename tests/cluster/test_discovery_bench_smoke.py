"""`python -m bench discovery-cluster --smoke` runs end to end and writes a sane JSON report.

The benchmark brings up a cluster of its own (another network namespace, named after its pid),
so this test uses none of the tier's fixtures; it runs as a subprocess in its own session,
bounded by `CLUSTER_SMOKE_TIMEOUT` (`tests.support.smoke`); on a timeout it gets SIGINT, so its
cleanup stops what it started.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.smoke import run_cluster_smoke

pytestmark = pytest.mark.timeout(400)


def test_the_smoke_run_measures_a_rollout_through_the_proxy(tmp_path: Path) -> None:
    path, stdout, output = run_cluster_smoke("discovery-cluster", tmp_path)  # about 40 s here
    report: dict[str, Any] = json.loads(path.read_text())
    assert str(path) in stdout, output
    assert report["settings"]["smoke"] is True, output
    assert report["failed"] == 0 and report["calls"] > 0, output
    [rollout] = report["rollouts"]
    assert 0 < rollout["change_to_first_call_on_new_s"] < 60, output
    assert len(rollout["ready_to_first_call_s"]) == 3, output
    assert len(rollout["terminating_to_last_call_s"]) == 3, output
