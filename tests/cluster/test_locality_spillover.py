"""Locality with the real controllers (issue 15): 3 nodes in 2 zones, a proxy on the first node,
a Service with ``trafficDistribution: PreferSameNode``; the local pod deleted → calls spill over
to the other pods and come back to the local replacement, with 0 failed calls.

The backend is a copy of the shipped one in a namespace of its own, with one pod per node (a
topology spread constraint), and a second gproxy-mp that knows its node (``--node-name``, what
deploy/base sets from the downward API) and reads its zone from the Node.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import scenarios
from harness.kube.cluster import REQUEST_TIMEOUT
from harness.kube.realcluster import HOST_NODE, NODES, RealCluster, spread_over_nodes
from harness.kube.workloads import NetProxy
from harness.remote_traffic import RemoteLoad
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(300)

LISTEN = "10.213.7.1:5002"
ADMIN = "10.213.7.1:9903"
SETTLE = 60.0


def one_pod_per_node(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return spread_over_nodes(items, distribution="PreferSameNode")


def pods_by_node(cluster: RealCluster, namespace: str) -> dict[str, str]:
    """node → name of its ready backend pod."""
    return {node: pod for pod, node in cluster.ready_pod_nodes(namespace).items()}


@pytest.fixture
def local_backends(healthy: RealCluster) -> str:
    name = healthy.backend_namespace("local", one_pod_per_node)
    assert wait_until(lambda: len(pods_by_node(healthy, name)) == 3, timeout=SETTLE), (
        pods_by_node(healthy, name))
    return name


@pytest.fixture
def local_proxy(healthy: RealCluster, local_backends: str, tmp_path: Path) -> Iterator[NetProxy]:
    with healthy.shipped_proxy(tmp_path, f"{LISTEN}-kubernetes:///backend.{local_backends}:grpc",
                               "--admin-address", ADMIN, "--node-name", HOST_NODE) as proxy:
        yield proxy


def test_the_local_pod_deleted_spills_over_with_no_failed_call(
    healthy: RealCluster, local_backends: str, local_proxy: NetProxy, tmp_path: Path
) -> None:
    placed = pods_by_node(healthy, local_backends)
    local = placed[HOST_NODE]
    caller = RemoteLoad(LISTEN, command_prefix=healthy.command_prefix,
                        log_path=tmp_path / "load.log", threads=2, channels_per_thread=1,
                        interval=0.005, max_seconds=240)
    try:
        start = scenarios.wait_only(caller, {local})
        healthy.kube.call(lambda a: a.core.delete_namespaced_pod(
            local, local_backends, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))

        def replaced() -> str | None:
            now = pods_by_node(healthy, local_backends).get(HOST_NODE)
            return now if now not in (None, local) else None

        assert wait_until(replaced, timeout=SETTLE), pods_by_node(healthy, local_backends)
        replacement = replaced()
        assert replacement is not None
        scenarios.wait_only(caller, {replacement})
        outcomes = caller.outcomes(start)
    finally:
        caller.stop()
    failed = [o for o in outcomes if o.backend is None]
    assert not failed, f"{len(failed)} failed: {failed[:3]}; {caller.summary(start)}"
    spilled = {o.backend for o in outcomes if o.backend not in (local, replacement)}
    zone = {n.name: n.zone for n in NODES}
    same_zone = {pod for node, pod in placed.items()
                 if node != HOST_NODE and zone[node] == zone[HOST_NODE]}
    assert spilled, f"no call went elsewhere while {local} was gone: {caller.summary(start)}"
    assert spilled <= same_zone, (
        f"spill-over reached {spilled}, not only the same-zone pod {same_zone}")
    print(f"spill-over: {caller.summary(start)}")
