"""Locality against the real API server: the proxy's Node zone, the Service's
trafficDistribution, and spill-over when the preferred backends go.

Three backends stand for pods on three nodes in two zones (Node objects with the
`topology.kubernetes.io/zone` label; no kubelet is needed for the API server to keep them).
The proxy runs "on" node n1 (`--node-name n1`, its zone read from the Node). The calls' tests
run on both data planes: the supervisor places the endpoints, each plane ranks by the rings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.fixtures import both_planes
from harness.kube.cluster import JSON, Kube, endpoint
from harness.kube.routes import (
    ADMIN_ADDRESS,
    GRPC,
    PROPAGATION_TIMEOUT,
    QUIET,
    START_TIMEOUT,
    assert_no_failures,
    listen,
    start_backends,
    start_caller,
    start_proxy,
    wait_answers,
    wait_resolved,
    wait_unused,
)
from harness.kube.workloads import NetProxy, Workloads
from harness.peers import Backend
from harness.waiting import wait_until

ZONE_LABEL = "topology.kubernetes.io/zone"
PLACES = {"a": ("n1", "z1"), "b": ("n2", "z1"), "c": ("n3", "z2")}
"""Backend name → (node, zone) of its pod."""
HERE = ["--node-name", "n1"]


@pytest.fixture
def nodes(kube: Kube) -> Iterator[dict[str, str]]:
    """Nodes n1..n3 (unique names per test) in zones z1, z1, z2; deleted afterwards."""
    suffix = f"{time.monotonic_ns() % 10**8}"
    names = {node: f"{node}-{suffix}" for node, _ in PLACES.values()}
    for node, zone in PLACES.values():
        body = {"metadata": {"name": names[node], "labels": {ZONE_LABEL: zone}}}
        kube.call(lambda a, body=body: a.core.create_node(body, _request_timeout=10))
    yield names
    for name in names.values():
        kube.call(lambda a, name=name: a.core.delete_node(name, _request_timeout=10))


def placed_endpoint(host: str, name: str, nodes: dict[str, str]) -> dict[str, Any]:
    node, zone = PLACES[name]
    return endpoint(host) | {"nodeName": nodes[node], "zone": zone}


def set_distribution(kube: Kube, namespace: str, value: str | None) -> None:
    patch = {"spec": {"trafficDistribution": value}}
    kube.call(lambda a: a.core.patch_namespaced_service("echo", namespace, patch,
                                                         _request_timeout=10))


def endpoint_details(workloads: Workloads) -> dict[str, dict[str, Any]]:
    status, body = workloads.admin(ADMIN_ADDRESS, "/debug/endpoints")
    if status != 200:
        return {}
    (route,) = [r for r in json.loads(body)["routes"] if r["route"] == listen()]
    details = ((route.get("resolver") or {}).get("source") or {}).get("endpoints") or {}
    return dict(details)


def three_pods_and_a_proxy(
    kube: Kube, echo: str, workloads: Workloads, kubeconfig: Path, nodes: dict[str, str], *,
    distribution: str, node: str, data_plane: str | None = None,
) -> tuple[dict[str, Backend], JSON, NetProxy]:
    """Backends a, b, c placed as `PLACES` in one slice of a Service with `distribution`, and
    a proxy on `node` (with `data_plane`, else the default) that has resolved them."""
    set_distribution(kube, echo, distribution)
    pods = dict(zip("abc", start_backends(workloads, "abc"), strict=True))
    stored = kube.create_slice(echo, "echo", ports=GRPC, endpoints=[
        placed_endpoint(pod.host, name, nodes) for name, pod in pods.items()])
    proxy = start_proxy(workloads, kubeconfig, f"kubernetes:///echo.{echo}:grpc",
                        extra_args=["--node-name", nodes[node],
                                    *(["--data-plane", data_plane] if data_plane else [])])
    wait_resolved(workloads, proxy, {pod.address for pod in pods.values()},
                  timeout=START_TIMEOUT)
    return pods, stored, proxy


@both_planes
def test_calls_stay_on_the_proxys_node_and_spill_to_its_zone_then_anywhere(
    kube: Kube, echo: str, workloads: Workloads, admin_kubeconfig: Path, nodes: dict[str, str],
    *, data_plane: str,
) -> None:
    pods, stored, proxy = three_pods_and_a_proxy(kube, echo, workloads, admin_kubeconfig, nodes,
                                                 distribution="PreferSameNode", node="n1",
                                                 data_plane=data_plane)
    a, b, c = pods.values()
    details = wait_until(lambda: endpoint_details(workloads).get(a.address, {}).get("ring")
                         is not None and endpoint_details(workloads), timeout=START_TIMEOUT)
    assert {address: (d["locality"], d["ring"]) for address, d in details.items()} == {
        a.address: ("same_node", 0), b.address: ("same_zone", 1), c.address: ("other", 2),
    }, f"{details}\n{proxy.output()}"
    assert f"runs on node {nodes['n1']} in zone z1" in proxy.stderr()

    caller = start_caller(workloads, expect="a")
    time.sleep(2 * QUIET)
    assert caller.backends(since=time.monotonic() - QUIET) == {"a"}, caller.summary()
    counted = f'backend="{a.address}",code="OK",locality="same_node"'
    assert wait_until(lambda: counted in workloads.admin(ADMIN_ADDRESS, "/metrics")[1],
                      timeout=PROPAGATION_TIMEOUT), proxy.output()

    changed = time.monotonic()  # the pod on this node goes: its zone's pod takes the calls
    stored = kube.replace_slice(echo, stored, endpoints=[
        placed_endpoint(pod.host, name, nodes) for name, pod in pods.items() if name != "a"])
    wait_answers(caller, "b", since=changed, timeout=PROPAGATION_TIMEOUT)
    wait_unused(caller, "a", timeout=PROPAGATION_TIMEOUT)
    assert caller.backends(since=time.monotonic() - QUIET) == {"b"}, caller.summary()

    changed = time.monotonic()  # and the zone's: the rest of the cluster
    kube.replace_slice(echo, stored, endpoints=[placed_endpoint(c.host, "c", nodes)])
    wait_answers(caller, "c", since=changed, timeout=PROPAGATION_TIMEOUT)
    wait_unused(caller, "b", timeout=PROPAGATION_TIMEOUT)
    assert_no_failures(caller)


@both_planes
def test_a_backend_of_the_preferred_ring_that_stops_answering_is_spilled_over_without_failures(
    kube: Kube, echo: str, workloads: Workloads, admin_kubeconfig: Path, nodes: dict[str, str],
    *, data_plane: str,
) -> None:
    pods, _, _ = three_pods_and_a_proxy(kube, echo, workloads, admin_kubeconfig, nodes,
                                        distribution="PreferClose", node="n3",
                                        data_plane=data_plane)
    c = pods["c"]
    caller = start_caller(workloads, expect="c")
    time.sleep(2 * QUIET)
    assert caller.backends(since=time.monotonic() - QUIET) == {"c"}, caller.summary()
    killed = time.monotonic()  # the only pod of this zone dies before its endpoint is removed
    c.kill()
    wait_answers(caller, "a", since=killed, timeout=PROPAGATION_TIMEOUT)
    wait_answers(caller, "b", since=killed, timeout=PROPAGATION_TIMEOUT)
    assert_no_failures(caller)  # retried on another ring, never failed


def test_without_permission_to_get_nodes_locality_is_off_with_one_line(
    kube: Kube, echo: str, workloads: Workloads, tmp_path: Path, nodes: dict[str, str]
) -> None:
    from tests.kubernetes.test_resolver_outages import SLICE_READER  # noqa: PLC0415

    set_distribution(kube, echo, "PreferSameNode")
    a, b = start_backends(workloads, "ab")
    kube.create_slice(echo, "echo", ports=GRPC, endpoints=[
        placed_endpoint(a.host, "a", nodes), placed_endpoint(b.host, "b", nodes)])
    # A namespaced Role cannot grant get on nodes (cluster-scoped): the sidecar example's case.
    kubeconfig = kube.service_account_kubeconfig(echo, tmp_path / "sa.kubeconfig",
                                                 rules=SLICE_READER)
    proxy = start_proxy(workloads, kubeconfig, f"kubernetes:///echo.{echo}:grpc",
                        extra_args=["--node-name", nodes["n1"]])
    wait_resolved(workloads, proxy, {a.address, b.address}, timeout=START_TIMEOUT)
    caller = start_caller(workloads, expect="a")
    wait_answers(caller, "b", since=0.0, timeout=PROPAGATION_TIMEOUT)  # no preference: both
    lines = [line for line in proxy.stderr().splitlines() if "get node" in line]
    assert len(lines) == 1 and "locality is off" in lines[0], proxy.output()
    details = endpoint_details(workloads)
    assert {d["locality"] for d in details.values()} == {"none"}, details
    assert_no_failures(caller)
