"""The backend namespace deleted: the route goes empty and calls fail fast, naming the target.

A second gproxy-mp (the DaemonSet's arguments, another route) targets a copy of the backend
Deployment and Service in a namespace of its own, authenticated as the shipped service account
(TokenRequest, RBAC as shipped). Deleting that namespace makes the namespace controller delete
the Service, its EndpointSlices and the pods (each draining as the kubelet stops it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.kube.cluster import REQUEST_TIMEOUT
from harness.kube.realcluster import RealCluster
from harness.kube.workloads import NetProxy
from harness.remote_traffic import RemoteLoad
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(300)

LISTEN = "10.213.7.1:5001"
ADMIN = "10.213.7.1:9902"
EMPTY_TIMEOUT = 60.0
"""Seconds from the namespace's deletion to calls failing (its pods drain meanwhile)."""
FAST = 0.5
"""Seconds a call may take to fail once the route is empty."""


@pytest.fixture
def doomed(healthy: RealCluster) -> str:
    """A namespace with its own backend Deployment (3 pods) and Service, all Ready."""
    return healthy.backend_namespace("doomed")


@pytest.fixture
def second_proxy(healthy: RealCluster, doomed: str, tmp_path: Path) -> Iterator[NetProxy]:
    with healthy.shipped_proxy(tmp_path, f"{LISTEN}-kubernetes:///backend.{doomed}:grpc",
                       "--admin-address", ADMIN) as proxy:
        yield proxy


def test_deleting_the_backend_namespace_empties_the_route(
    healthy: RealCluster, doomed: str, second_proxy: NetProxy, tmp_path: Path
) -> None:
    caller = RemoteLoad(LISTEN, command_prefix=healthy.command_prefix,
                        log_path=tmp_path / "load.log", threads=1, channels_per_thread=1,
                        interval=0.01, max_seconds=240)
    try:
        assert wait_until(lambda: len(caller.backends()) == 3, timeout=120), (
            f"{caller.summary()}\n{second_proxy.output()}")
        healthy.kube.call(lambda a: a.core.delete_namespace(doomed,
                                                            _request_timeout=REQUEST_TIMEOUT))
        deleted_at = time.monotonic()

        def fails_naming_the_target() -> bool:
            recent = caller.outcomes(time.monotonic() - 1.0)
            return bool(recent) and all(o.backend is None for o in recent)

        assert wait_until(fails_naming_the_target, timeout=EMPTY_TIMEOUT), caller.summary()
        failing = caller.outcomes(time.monotonic() - 1.0)
    finally:
        caller.stop()
    target = f"kubernetes://{doomed}/backend:grpc"
    assert all(o.code == "UNAVAILABLE" and target in o.error for o in failing), failing[:3]
    assert all(o.ended - o.started < FAST for o in failing), failing[:3]
    answered_after = [o for o in caller.outcomes(deleted_at) if o.backend is not None]
    print(f"namespace deletion: {len(answered_after)} calls answered after the delete, then "
          f"the route was empty")
