"""The real-cluster scenarios (harness/scenarios.py) in the kind cluster.

The same bodies run in tests/cluster against the real control plane with kwok nodes; here the
cluster is kind's (integration/kind/cluster.py). Runs only with GPROXY_KIND=1 (conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import scenarios
from integration.kind.cluster import KindCluster
from integration.kind.kube import check_context
from integration.kind.test_kind import CLUSTER

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def kind_cluster(tmp_path: Path) -> KindCluster:
    check_context(CLUSTER)
    return KindCluster(log_dir=tmp_path)


def test_calls_spread_over_every_ready_pod(kind_cluster: KindCluster) -> None:
    scenarios.calls_spread_over_every_ready_pod(kind_cluster)


def test_scaling_3_10_1_3_fails_no_call(kind_cluster: KindCluster) -> None:
    scenarios.scale_3_10_1_3(kind_cluster)


def test_a_rolling_update_fails_none_of_20000_calls(kind_cluster: KindCluster) -> None:
    scenarios.rolling_update(kind_cluster)


def test_a_deleted_pod_drains_and_gets_no_new_calls(kind_cluster: KindCluster) -> None:
    scenarios.graceful_deletion(kind_cluster)
