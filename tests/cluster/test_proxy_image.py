"""The DaemonSet's gproxy-mp pod runs the container image itself, as deployed: the tier's
kubelet runs it with podman in the tier's network namespace (where podman is installed; the
scenarios then prove the image serves, follows EndpointSlices and drains)."""

from __future__ import annotations

import psutil
import pytest

from harness import container
from harness.kube.realcluster import HOST_NODE, RealCluster

pytestmark = pytest.mark.timeout(120)


def test_the_daemonsets_pod_is_the_image_run_as_uid_10001_on_a_read_only_root(
    healthy: RealCluster,
) -> None:
    if container.find_podman() is None:
        pytest.skip("podman not found: the proxy pod runs from the checkout")
    (pod,) = [p for p in healthy.kubelet.pods.snapshot().values()
              if p["metadata"]["namespace"] == "gproxy-mp"
              and p["spec"].get("nodeName") == HOST_NODE]
    running = healthy.kubelet.container("gproxy-mp", pod["metadata"]["name"])
    assert running is not None and running.podman_name is not None, running

    image = container.podman("inspect", "--format", "{{.ImageName}}", running.podman_name)
    pid = int(container.podman("inspect", "--format", "{{.State.Pid}}", running.podman_name))
    supervisor = psutil.Process(pid)

    assert image.strip() == f"localhost/{container.IMAGE}"
    assert supervisor.uids().real == 10001
    assert {p.uids().real for p in supervisor.children(recursive=True)} == {10001}
    assert container.root_is_read_only(pid)
