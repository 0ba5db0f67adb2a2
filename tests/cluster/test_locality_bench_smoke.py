"""`python -m bench locality --smoke` runs end to end on a cluster of its own and shows the
shares each trafficDistribution gives (issue 15's locality run).

Asserted are properties, not timings: without a distribution calls reach every node; with
PreferClose none leaves the proxy's zone; with PreferSameNode all stay on its node.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.smoke import run_cluster_smoke

pytestmark = pytest.mark.timeout(400)


def test_the_smoke_run_shows_where_each_distribution_sends_calls(tmp_path: Path) -> None:
    path, _, output = run_cluster_smoke("locality", tmp_path)  # about 2 minutes here
    rows: dict[str, Any] = {r["distribution"]: r for r in json.loads(path.read_text())["rows"]}

    assert set(rows) == {"none", "PreferClose", "PreferSameNode"}, output
    assert all(r["failed"] == 0 for r in rows.values()), output
    assert all(share > 0 for share in rows["none"]["share"].values()), output
    assert rows["PreferClose"]["share"]["other_zone"] == 0, output
    assert rows["PreferClose"]["share"]["same_zone"] > 0, output
    assert rows["PreferSameNode"]["share"]["same_node"] == 1.0, output
