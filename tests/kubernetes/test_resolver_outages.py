"""The Kubernetes resolver when the API server goes away, expires history, or says no.

Same setup as ``test_resolver``: the real CLI in the tier's network namespace, real backends,
hand-made EndpointSlices; here the API server is killed, replaced behind its address, or the
proxy's identity is a real service account with too few permissions.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from harness.kube.cluster import Kube, endpoint
from harness.kube.controlplane import ControlPlane
from harness.kube.routes import (
    GRPC,
    PROPAGATION_TIMEOUT,
    RECOVERY_TIMEOUT,
    START_TIMEOUT,
    assert_no_failures,
    listen,
    start_backends,
    start_caller,
    start_proxy,
    wait_answers,
    wait_ready,
    wait_resolved,
)
from harness.kube.workloads import Workloads
from harness.waiting import wait_until
from tests.deploy.manifests import all_manifest_objects, find_object

# --- the API server goes away ----------------------------------------------------------------


def test_calls_continue_while_the_apiserver_restarts_and_a_later_change_arrives(
    kube: Kube,
    echo: str,
    workloads: Workloads,
    admin_kubeconfig: Path,
    control_plane: ControlPlane,
) -> None:
    a, b = start_backends(workloads, "ab")
    stored = kube.create_slice(echo, "echo", endpoints=[endpoint(a.host)], ports=GRPC)
    proxy = start_proxy(workloads, admin_kubeconfig, f"kubernetes:///echo.{echo}:grpc")
    wait_resolved(workloads, proxy, {a.address}, timeout=START_TIMEOUT)
    caller = start_caller(workloads, expect="a")

    control_plane.apiserver.peer.kill()  # mid-watch: the connection just dies
    killed = time.monotonic()
    # Down long enough for the resolver to fail and back off a few times.
    assert not wait_until(lambda: caller.failures(since=killed), timeout=3.0)
    control_plane.apiserver.start(control_plane.probe_thread)

    changed = time.monotonic()
    kube.replace_slice(echo, stored, endpoints=[endpoint(a.host), endpoint(b.host)])
    wait_answers(caller, "b", since=changed, timeout=RECOVERY_TIMEOUT)
    assert caller.backends(since=killed) == {"a", "b"}
    assert_no_failures(caller)
    assert "keeping the last 1 endpoints" in proxy.stderr()


# --- RBAC with a real service-account token ----------------------------------------------------

SLICE_READER = find_object(all_manifest_objects(), "ClusterRole", "gproxy-mp")["rules"]
"""The rules deploy/base/rbac.yaml ships (given here as a namespaced Role of the test's own)."""
SLICE_GETTER = [
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get"]},
]


def test_a_service_account_with_the_shipped_rbac_rules_resolves(
    kube: Kube, echo: str, workloads: Workloads, tmp_path: Path
) -> None:
    (a,) = start_backends(workloads, "a")
    kube.create_slice(echo, "echo", endpoints=[endpoint(a.host)], ports=GRPC)
    kubeconfig = kube.service_account_kubeconfig(
        echo, tmp_path / "sa.kubeconfig", rules=SLICE_READER
    )

    proxy = start_proxy(workloads, kubeconfig, f"kubernetes:///echo.{echo}:grpc")
    wait_resolved(workloads, proxy, {a.address}, timeout=START_TIMEOUT)
    wait_ready(workloads)
    assert workloads.call_once(listen()).backend == "a"


def test_without_list_permission_one_line_names_it_and_the_proxy_keeps_retrying(
    kube: Kube, echo: str, workloads: Workloads, tmp_path: Path
) -> None:
    (a,) = start_backends(workloads, "a")
    kube.create_slice(echo, "echo", endpoints=[endpoint(a.host)], ports=GRPC)
    kubeconfig = kube.service_account_kubeconfig(
        echo, tmp_path / "sa.kubeconfig", rules=SLICE_GETTER
    )
    proxy = start_proxy(workloads, kubeconfig, f"kubernetes:///echo.{echo}:grpc")

    def forbidden_lines() -> list[str]:
        return [line for line in proxy.stderr().splitlines() if "forbidden" in line.lower()]

    if not wait_until(forbidden_lines, timeout=START_TIMEOUT):
        pytest.fail(f"no line about the missing permission\n{proxy.output()}")
    time.sleep(3.0)  # several retries (0.5 s doubling) happen in this time; still one line
    lines = forbidden_lines()
    assert len(lines) == 1, lines
    assert "endpointslices.discovery.k8s.io" in lines[0]
    assert f"namespace {echo}" in lines[0]
    assert "list" in lines[0]
    proxy.check_alive()

    # Granting the permission later is enough: the proxy was retrying all along.
    kube.replace_role_rules(echo, "proxy", rules=SLICE_READER)
    wait_resolved(workloads, proxy, {a.address}, timeout=RECOVERY_TIMEOUT)


def test_an_expired_watch_relists_and_loses_no_change(
    kube: Kube,
    echo: str,
    workloads: Workloads,
    admin_kubeconfig: Path,
    control_plane: ControlPlane,
) -> None:
    """The classic production 410: behind one address, the apiserver holding the watch shuts
    down gracefully (the watch ends cleanly), the resolver re-watches from its last
    resourceVersion on another apiserver whose watch cache starts later, gets 410 Gone, and
    must relist, because a change happened in between that no watch will ever deliver.

    The supervisor is frozen (SIGSTOP, well under the workers' 6 s heartbeat timeout) from
    before the shutdown until the change is made, so the change lands exactly in that gap.
    """
    a, b = start_backends(workloads, "ab")
    stored = kube.create_slice(echo, "echo", endpoints=[endpoint(a.host)], ports=GRPC)
    proxy = start_proxy(workloads, admin_kubeconfig, f"kubernetes:///echo.{echo}:grpc")
    wait_resolved(workloads, proxy, {a.address}, timeout=START_TIMEOUT)
    caller = start_caller(workloads, expect="a")

    control_plane.probe_thread.run(control_plane.etcd.bump)  # the second cache starts later
    with control_plane.second_apiserver():
        os.kill(proxy.process.pid, signal.SIGSTOP)
        try:
            control_plane.apiserver.peer.stop()  # SIGTERM: graceful, watches end cleanly
            kube.replace_slice(echo, stored, endpoints=[endpoint(a.host), endpoint(b.host)])
            control_plane.probe_thread.run(control_plane.etcd.compact, control_plane.revision())
        finally:
            os.kill(proxy.process.pid, signal.SIGCONT)
        resumed = time.monotonic()
        wait_resolved(workloads, proxy, {a.address, b.address})
        wait_answers(caller, "b", since=resumed, timeout=PROPAGATION_TIMEOUT)

    relists = [line for line in proxy.stderr().splitlines() if "relisting" in line]
    assert relists, f"the resolver never saw 410 Gone\n{proxy.output()}"
    assert "too old resource version" in relists[0]
    assert_no_failures(caller)
