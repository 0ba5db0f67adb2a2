"""Fixtures for the real-cluster tier: the real control plane, kwok nodes, pods as processes.

One cluster per session (:func:`harness.kube.realcluster.real_cluster`): etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok in a network namespace of this run, three
nodes in two zones, the tier's kubelet, and integration/kind/manifests applied (deploy/base as
shipped, plus the backend Deployment and Service). Each scenario starts by scaling the backend
Deployment to what it needs. When a test fails, the tails of the control plane's logs and the
kubelet's errors are attached to its report.

The DaemonSet's gproxy-mp pod runs the container image (built once per run, as for
tests/container) with podman where podman is installed, as deployed; elsewhere it runs from the
checkout as a process.

Requirements: root (``ip netns``), Go (to build the binaries once into .cache/testbin/);
without them the tier skips, which CI turns into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from harness import container
from harness.kube.binaries import GoMissingError
from harness.kube.realcluster import RealCluster, real_cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    if os.geteuid() != 0:
        pytest.skip("the real-cluster tier needs root to create a network namespace (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 not installed: cannot create a network namespace")
    images = {}
    if container.find_podman() is not None:
        try:
            images["gproxy-mp"] = container.build_image()
        except container.ContainerError as error:
            pytest.fail(f"the image did not build: {error}", pytrace=False)
    try:
        with real_cluster(tmp_path_factory.mktemp("cluster"), images=images) as running:
            yield running
    except GoMissingError as error:
        pytest.skip(str(error))


@pytest.fixture
def healthy(cluster: RealCluster) -> Iterator[RealCluster]:
    """The cluster, checked before and after the test: the kubelet met no error."""
    cluster.kubelet.check()
    yield cluster
    cluster.kubelet.check()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    running = getattr(item, "funcargs", {}).get("healthy")
    if report.failed and isinstance(running, RealCluster):
        for name, text in running.log_tails().items():
            report.sections.append((f"{name} log (tail)", text))
        report.sections.append(("kubelet", f"errors {running.kubelet.errors[:10]}\n"
                                           f"watch errors {running.kubelet.pods.errors[:5]}\n"
                                           f"unrunnable {running.kubelet.unrunnable}"))
