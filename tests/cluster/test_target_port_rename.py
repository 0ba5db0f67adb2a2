"""The Service's targetPort renamed under load, the way that keeps every pod reachable: first to
the port's number, then the pods' port renamed by a rolling update, then targetPort to the new
name. The EndpointSlice controller rewrites the slices at each step; the proxy's route (keyed by
the Service port's name, ``grpc``) follows, with 0 failed calls.

A copy of the shipped backend in a namespace of its own, and a second gproxy-mp in front of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import AppsV1Api

from harness import scenarios
from harness.kube.cluster import REQUEST_TIMEOUT, raw
from harness.kube.realcluster import RealCluster
from harness.kube.workloads import NetProxy
from harness.remote_traffic import RemoteLoad
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(300)

LISTEN = "10.213.7.1:5003"
ADMIN = "10.213.7.1:9904"
SETTLE = 60.0


def ready_pods(cluster: RealCluster, namespace: str) -> set[str]:
    listed = cluster.kube.call(lambda a: raw(a.core.list_namespaced_pod(
        namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)))
    return {p["metadata"]["name"] for p in listed["items"] if scenarios.is_ready(p)}


def slice_ports(cluster: RealCluster, namespace: str) -> list[Any]:
    """The ports of every slice that has endpoints. While old pods that lack the new port name
    drain, the controller lists them in a slice of their own with ``ports: null``; a resolver
    must take such a slice as giving no endpoint for the port (the proxy does: no call failed)."""
    return [item.get("ports") for item in cluster.kube.list_slices(namespace, "backend")["items"]
            if item.get("endpoints")]


@pytest.fixture
def renamed(healthy: RealCluster) -> str:
    name = healthy.backend_namespace("rename")
    assert wait_until(lambda: len(ready_pods(healthy, name)) == 3, timeout=SETTLE)
    return name


@pytest.fixture
def proxy(healthy: RealCluster, renamed: str, tmp_path: Path) -> Iterator[NetProxy]:
    with healthy.shipped_proxy(tmp_path, f"{LISTEN}-kubernetes:///backend.{renamed}:grpc",
                               "--admin-address", ADMIN) as started:
        yield started


def test_renaming_the_target_port_fails_no_call(
    healthy: RealCluster, renamed: str, proxy: NetProxy, tmp_path: Path
) -> None:
    def service_target(target: int | str) -> None:
        body = {"spec": {"ports": [{"name": "grpc", "port": 50051, "targetPort": target}]}}
        healthy.kube.call(lambda a: a.core.patch_namespaced_service(
            "backend", renamed, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))

    def pods_port_name(name: str) -> None:
        body = {"spec": {"template": {"spec": {"containers": [{
            "name": "backend", "ports": [{"containerPort": 50051, "name": name}]}]}}}}
        healthy.kube.call(lambda a: AppsV1Api(a.api_client).patch_namespaced_deployment(
            "backend", renamed, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))

    caller = RemoteLoad(LISTEN, command_prefix=healthy.command_prefix,
                        log_path=tmp_path / "load.log", threads=2, channels_per_thread=1,
                        interval=0.005, max_seconds=240)
    try:
        old = ready_pods(healthy, renamed)
        start = scenarios.wait_only(caller, old)
        service_target(50051)
        time.sleep(2.0)
        pods_port_name("grpc-v2")
        assert wait_until(lambda: len(new := ready_pods(healthy, renamed)) == 3
                          and not new & old, timeout=SETTLE), ready_pods(healthy, renamed)
        new = ready_pods(healthy, renamed)
        scenarios.wait_only(caller, new)
        service_target("grpc-v2")
        time.sleep(2.0)
        scenarios.wait_only(caller, new)
        outcomes = caller.outcomes(start)
    finally:
        caller.stop()
    scenarios.no_failures(outcomes, "targetPort grpc -> 50051 -> grpc-v2", caller.summary(start))
    expected = [{"name": "grpc", "port": 50051, "protocol": "TCP"}]
    assert wait_until(lambda: all(p == expected for p in slice_ports(healthy, renamed)),
                      timeout=SETTLE), slice_ports(healthy, renamed)
