"""gproxy-mp as deployed (deploy/base) in front of a Deployment that the real controllers roll.

The scenario bodies are :mod:`harness.scenarios`, shared with integration/kind; only the
cluster differs (see conftest.py).
"""

from __future__ import annotations

import pytest

from harness import scenarios
from harness.kube.realcluster import RealCluster

pytestmark = pytest.mark.timeout(600)


def test_calls_spread_over_every_ready_pod(healthy: RealCluster) -> None:
    scenarios.calls_spread_over_every_ready_pod(healthy)


def test_scaling_3_10_1_3_fails_no_call(healthy: RealCluster) -> None:
    scenarios.scale_3_10_1_3(healthy)


def test_a_rolling_update_fails_none_of_20000_calls(healthy: RealCluster) -> None:
    scenarios.rolling_update(healthy)


def test_a_deleted_pod_drains_and_gets_no_new_calls(healthy: RealCluster) -> None:
    scenarios.graceful_deletion(healthy)


def test_one_pod_flapping_readiness_fails_no_call(healthy: RealCluster) -> None:
    """Only here, not in kind: the tier's kubelet fails the pod's readiness probe on request."""
    scenarios.readiness_flap(healthy)
