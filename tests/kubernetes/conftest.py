"""Fixtures for the Kubernetes tier: a real etcd and kube-apiserver inside a network namespace.

Why a namespace: the API server refuses loopback endpoint addresses (127.0.0.0/8, ::1), so
slices must name addresses such as 10.213.7.11, and these must be reachable without ever
leaving the machine. The session creates ``gpx-k8s-<pid>`` with ``lo`` up and:

================  ==================================
10.213.7.1/32     kube-apiserver (:6443)
10.213.7.11-19    backends
fd00:213:7::11    an IPv6 backend
127.0.0.1         etcd (:2379), inside the namespace
================  ==================================

How pytest reaches into it (design decision): pytest itself stays in the root namespace, so
the other tiers of the same ``pytest`` session are unaffected, and

* every process of this tier (etcd, kube-apiserver, backends, the proxy, gRPC traffic clients)
  is started with ``ip netns exec``;
* every request pytest makes itself (kube API calls, /readyz, etcd compaction) runs on a
  *pinned thread* that entered the namespace with ``setns(CLONE_NEWNET)``. The network
  namespace is a per-thread attribute on Linux, so only that thread moves.
* gRPC calls are never made from pytest's process: grpcio connects from its own threads, which
  are not in the namespace (in the root namespace 10.213.7.x goes to the default gateway, which
  may even answer). They are made by client subprocesses started with ``ip netns exec``.

Alternatives rejected: running this tier's pytest under ``ip netns exec`` would need a second
pytest session (``make test`` is one plain ``pytest``); moving the whole pytest process with
setns would silently move every later tier, and must happen before any thread exists.

Lifecycle: one namespace, etcd and apiserver per session, started on first use; a fresh
Kubernetes namespace per test (namespaces never finish deleting without a controller-manager).
A test may kill or restart the apiserver; the ``kube`` fixture starts it again if a previous
test left it down. When a test fails, the tails of the etcd and apiserver logs are attached to
its report. Requirements: root (``ip netns``), Go (to build the binaries once into
.cache/testbin/); without them the tier skips, which CI turns into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.kube import netns, pki, sandbox
from harness.kube.binaries import GoMissingError
from harness.kube.cluster import Kube, service_port
from harness.kube.controlplane import ControlPlane
from harness.kube.routes import BACKEND_PORT
from harness.kube.workloads import Workloads


@pytest.fixture(scope="session")
def network_namespace() -> Iterator[netns.NetworkNamespace]:
    if os.geteuid() != 0:
        pytest.skip("the Kubernetes tier needs root to create a network namespace (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 not installed: cannot create a network namespace")
    with sandbox.network_namespace() as namespace:
        yield namespace


@pytest.fixture(scope="session")
def k8s_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session directory for credentials, etcd data and logs."""
    return tmp_path_factory.mktemp("k8s")


@pytest.fixture(scope="session")
def credentials(k8s_dir: Path) -> pki.Credentials:
    return sandbox.build_credentials(k8s_dir / "pki")


@pytest.fixture(scope="session")
def control_plane(
    network_namespace: netns.NetworkNamespace, credentials: pki.Credentials, k8s_dir: Path
) -> Iterator[ControlPlane]:
    try:
        with sandbox.control_plane(network_namespace, credentials, k8s_dir) as plane:
            yield plane
    except GoMissingError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def admin_kube(
    control_plane: ControlPlane,
    network_namespace: netns.NetworkNamespace,
    credentials: pki.Credentials,
) -> Iterator[Kube]:
    with sandbox.admin_client(control_plane, network_namespace, credentials) as kube:
        yield kube


@pytest.fixture
def kube(admin_kube: Kube, control_plane: ControlPlane) -> Kube:
    """The admin client, with the apiserver running (a previous test may have stopped it)."""
    if not control_plane.apiserver.peer.running():
        control_plane.apiserver.start(control_plane.probe_thread)
    return admin_kube


@pytest.fixture
def kube_namespace(kube: Kube) -> str:
    """A fresh Kubernetes namespace for this test."""
    return kube.create_namespace()


@pytest.fixture
def echo(kube: Kube, kube_namespace: str) -> str:
    """A headless Service ``echo`` with one port named ``grpc``; returns its namespace."""
    kube.create_service(kube_namespace, "echo", [service_port(BACKEND_PORT, name="grpc")])
    return kube_namespace


@pytest.fixture(scope="session")
def admin_kubeconfig(admin_kube: Kube, k8s_dir: Path) -> Path:
    """``--kubeconfig`` file for the admin (system:masters) identity."""
    return admin_kube.write_kubeconfig(k8s_dir / "admin.kubeconfig", user=pki.ADMIN_USER)


@pytest.fixture
def workloads(network_namespace: netns.NetworkNamespace, tmp_path: Path) -> Iterator[Workloads]:
    """Backends, proxies and callers in the namespace; all stopped at teardown."""
    started = Workloads(network_namespace, log_dir=tmp_path)
    try:
        yield started
    finally:
        started.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    plane = getattr(item, "funcargs", {}).get("control_plane")
    if report.failed and isinstance(plane, ControlPlane):
        for name, text in plane.log_tails().items():
            report.sections.append((f"{name} log (tail)", text))
    started = getattr(item, "funcargs", {}).get("workloads")
    if report.failed and isinstance(started, Workloads):
        for index, proxy in enumerate(started.proxies):
            report.sections.append((f"gproxy-mp #{index}", proxy.output()))
