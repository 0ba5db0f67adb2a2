"""The resolver's core/v1 Endpoints fallback, against a real kube-apiserver that does not serve
EndpointSlices.

A second kube-apiserver runs on the tier's etcd, on its own port, with
``--runtime-config=discovery.k8s.io/v1=false``: listing EndpointSlices there answers 404, which
is what makes the resolver fall back. The test talks to that apiserver only (namespace, a
selectorless headless Service, and a hand-made Endpoints object: no controller-manager runs
here), runs the real CLI against it, and checks where calls go, that an Endpoints change
reaches them, what the proxy logged, and the provenance ``/debug/endpoints`` reports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from harness.kube import pki
from harness.kube.cluster import Kube, service_port
from harness.kube.controlplane import ApiServer, ControlPlane
from harness.kube.netns import NetworkNamespace
from harness.kube.routes import (
    ADMIN_ADDRESS,
    BACKEND_PORT,
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
from harness.kube.workloads import Workloads
from harness.remote_traffic import RemoteLoad
from harness.waiting import wait_until

NO_SLICES_PORT = 6444
"""Port of the apiserver without EndpointSlices (the tier's own apiserver has 6443)."""
NO_SLICES = ("--runtime-config=discovery.k8s.io/v1=false",)
UNSYNCABLE = ("informer-sync",)
"""The apiserver's own EndpointSlice informer never syncs with the group off (its log repeats
"failed to list *v1.EndpointSlice"), so this /readyz check never passes; the server serves
everything else, and readiness is taken without it."""
SPREAD_CALLS = 60
"""Calls (at ~100/s) over which both backends must each have answered at least a third."""
SPREAD_TIMEOUT = 10.0
"""Seconds the caller may take to make SPREAD_CALLS calls (under a second when healthy)."""
FALLBACK_WARNING = "EndpointSlices are not served"


@pytest.fixture(scope="module")
def no_slices_apiserver(control_plane: ControlPlane) -> Iterator[ApiServer]:
    with control_plane.extra_apiserver(
        "kube-apiserver-no-slices",
        port=NO_SLICES_PORT,
        extra_args=NO_SLICES,
        readyz_excludes=UNSYNCABLE,
    ) as apiserver:
        yield apiserver


@pytest.fixture(scope="module")
def no_slices_kube(
    no_slices_apiserver: ApiServer,
    network_namespace: NetworkNamespace,
    credentials: pki.Credentials,
) -> Iterator[Kube]:
    """The admin identity on the apiserver without EndpointSlices."""
    with Kube.admin(network_namespace, credentials, url=no_slices_apiserver.url,
                    thread_name="k8s-no-slices") as kube:
        yield kube


def spread(caller: RemoteLoad, *, since: float) -> dict[str, int]:
    """Answers per backend over the first SPREAD_CALLS calls at or after ``since``."""
    if not wait_until(
        lambda: len(caller.outcomes(since)) >= SPREAD_CALLS, timeout=SPREAD_TIMEOUT
    ):
        pytest.fail(f"under {SPREAD_CALLS} calls in {SPREAD_TIMEOUT}s: {caller.summary(since)}")
    counts: dict[str, int] = {}
    for outcome in caller.outcomes(since)[:SPREAD_CALLS]:
        key = outcome.backend or f"FAILED {outcome.error}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_the_apiserver_under_test_does_not_serve_endpointslices(no_slices_kube: Kube) -> None:
    """The premise of the fallback test: the list the resolver makes first answers 404."""
    namespace = no_slices_kube.create_namespace("noslices")
    with pytest.raises(ApiException) as raised:
        no_slices_kube.call(
            lambda a: a.discovery.list_namespaced_endpoint_slice(
                namespace, _preload_content=False, _request_timeout=(5.0, 30.0)
            )
        )
    assert raised.value.status == 404


def test_without_endpointslices_calls_follow_the_services_core_v1_endpoints(
    no_slices_kube: Kube, workloads: Workloads, tmp_path: Path
) -> None:
    kube = no_slices_kube
    namespace = kube.create_namespace("noslices")
    kube.create_service(namespace, "echo", [service_port(BACKEND_PORT, name="grpc")])
    a, b, c = start_backends(workloads, "abc")
    stored = kube.create_endpoints(namespace, "echo", addresses=[a.host, b.host], ports=GRPC)
    kubeconfig = kube.write_kubeconfig(tmp_path / "no-slices.kubeconfig", user=pki.ADMIN_USER)

    proxy = start_proxy(workloads, kubeconfig, f"kubernetes:///echo.{namespace}:grpc")
    wait_resolved(workloads, proxy, {a.address, b.address}, timeout=START_TIMEOUT)

    # (1) Calls are spread over the Endpoints' addresses (round robin: about half each).
    caller = start_caller(workloads, expect="a")
    counts = spread(caller, since=wait_answers(caller, "b", since=0.0, timeout=START_TIMEOUT))
    assert set(counts) == {"a", "b"}, counts
    assert min(counts.values()) >= SPREAD_CALLS // 3, counts

    # (2) An update (c added, a removed) reaches calls.
    changed = time.monotonic()
    updated = kube.replace_endpoints(namespace, stored, addresses=[b.host, c.host], ports=GRPC)
    wait_answers(caller, "c", since=changed, timeout=PROPAGATION_TIMEOUT)
    assert wait_unused(caller, "a", timeout=PROPAGATION_TIMEOUT) - changed < PROPAGATION_TIMEOUT
    wait_resolved(workloads, proxy, {b.address, c.address})
    assert caller.backends(since=time.monotonic() - QUIET) == {"b", "c"}
    assert_no_failures(caller)

    # (3) The fallback was logged, once, naming core/v1 Endpoints.
    warnings = [line for line in proxy.stderr().splitlines() if FALLBACK_WARNING in line]
    assert len(warnings) == 1, f"expected one fallback warning\n{proxy.output()}"
    assert "core/v1 Endpoints" in warnings[0]
    assert f"kubernetes://{namespace}/echo:grpc" in warnings[0], warnings

    # (4) /debug/endpoints names the Endpoints object as the source of the set.
    route = workloads.routes(ADMIN_ADDRESS)[listen()]
    source = route["resolver"]["source"]
    assert source["resource"] == "endpoints", source
    assert source["namespace"] == namespace, source
    assert source["objects"] == {"echo": updated["metadata"]["resourceVersion"]}, source
