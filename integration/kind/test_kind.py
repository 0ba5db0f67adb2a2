"""gproxy-mp as deployed by deploy/base, in a real kind cluster (set up by run.sh).

The proxy is the DaemonSet pod on the only node, reached from this machine as a node-local
client reaches it: through its hostPort (kind-config.yaml publishes the node's port 5000 as
127.0.0.1:15000). Its target is Service "backend" in namespace "default", port "grpc": a
Deployment of servers that answer with their pod's name (manifests/backend_server.py), so every
call says which pod served it.

Each test starts from 3 ready backends that the proxy is sending calls to (the `three_backends`
fixture), and leaves the cluster that way. Runs only with GPROXY_KIND=1 (conftest.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from harness.waiting import wait_until
from integration.kind.kube import check_context, kubectl, ready_pods, rollout_status
from integration.kind.traffic import Traffic, summarize, whoami_counts

CLUSTER = os.environ.get("GPROXY_KIND_CLUSTER", "gproxy-e2e")
PROXY_ADDRESS = os.environ.get("GPROXY_KIND_PROXY_ADDRESS", "127.0.0.1:15000")
BACKEND_NAMESPACE = "default"
BACKEND_SELECTOR = "app.kubernetes.io/name=backend"
PROXY_NAMESPACE = "gproxy-mp"
PROXY_SELECTOR = "app.kubernetes.io/name=gproxy-mp"
ROLLOUT_TIMEOUT = 180.0
"""Seconds a Deployment or DaemonSet rollout may take (image already on the node)."""
CONVERGE_TIMEOUT = 60.0
"""Seconds for the proxy's endpoint set to follow a change of ready pods (watch latency)."""
POLL_INTERVAL = 1.0
"""Seconds between two looks at the cluster."""
BATCH = 60
"""Calls per batch: 20 per backend for 3, 12 for 5, under per-call round robin."""

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module", autouse=True)
def cluster() -> None:
    check_context(CLUSTER)
    rollout_status("deployment/backend", namespace=BACKEND_NAMESPACE, timeout=ROLLOUT_TIMEOUT)
    rollout_status("daemonset/gproxy-mp", namespace=PROXY_NAMESPACE, timeout=ROLLOUT_TIMEOUT)


def backends() -> set[str]:
    return ready_pods(namespace=BACKEND_NAMESPACE, selector=BACKEND_SELECTOR)


def proxies() -> set[str]:
    return ready_pods(namespace=PROXY_NAMESPACE, selector=PROXY_SELECTOR)


def exactly(count: int, pods: set[str]) -> set[str]:
    """`pods` if there are `count` of them, else nothing (for wait_until)."""
    return pods if len(pods) == count else set()


def all_new(pods: set[str], old: set[str]) -> set[str]:
    """`pods` if there are some and none of them is in `old`, else nothing (for wait_until)."""
    return pods if pods and not pods & old else set()


def scale_backends(replicas: int) -> set[str]:
    """Scale the backend Deployment; the ready pods once there are exactly `replicas`."""
    kubectl("scale", "deployment/backend", "-n", BACKEND_NAMESPACE, f"--replicas={replicas}")
    rollout_status("deployment/backend", namespace=BACKEND_NAMESPACE, timeout=ROLLOUT_TIMEOUT)
    pods = wait_until(lambda: exactly(replicas, backends()), timeout=ROLLOUT_TIMEOUT,
                      interval=POLL_INTERVAL)
    assert len(pods) == replicas, f"expected {replicas} ready backend pods, have {backends()}"
    return pods


def wait_answered_by_exactly(pods: set[str]) -> set[str]:
    """Batches of calls until one batch is answered by exactly `pods`; the last batch's pods."""
    def answered() -> set[str]:
        seen = set(whoami_counts(PROXY_ADDRESS, calls=BATCH))
        return seen if seen == pods else set()

    seen = wait_until(answered, timeout=CONVERGE_TIMEOUT, interval=POLL_INTERVAL)
    assert seen == pods, (f"calls through the proxy never reached exactly {sorted(pods)}; "
                          f"last batch: {dict(whoami_counts(PROXY_ADDRESS, calls=BATCH))}")
    return seen


@pytest.fixture(autouse=True)
def three_backends() -> Iterator[set[str]]:
    pods = scale_backends(3)
    wait_answered_by_exactly(pods)
    yield pods
    scale_backends(3)


def test_calls_through_the_proxy_reach_all_three_backends(three_backends: set[str]) -> None:
    counts = whoami_counts(PROXY_ADDRESS, calls=BATCH * 2)

    assert set(counts) == three_backends
    # Per-call round robin over one client connection: an even split, give or take retries.
    assert min(counts.values()) >= BATCH * 2 // 3 // 2, counts


def test_scaling_the_backends_to_five_gives_the_new_pods_calls(
    three_backends: set[str],
) -> None:
    five = scale_backends(5)
    new = five - three_backends
    assert len(new) == 2, f"before {sorted(three_backends)}, after {sorted(five)}"

    wait_answered_by_exactly(five)
    counts = whoami_counts(PROXY_ADDRESS, calls=BATCH * 2)

    assert set(counts) == five
    assert all(counts[pod] >= BATCH * 2 // 5 // 2 for pod in new), counts


def test_deleting_a_backend_pod_fails_no_call(three_backends: set[str]) -> None:
    victim = sorted(three_backends)[0]

    with Traffic(PROXY_ADDRESS) as traffic:
        assert wait_until(lambda: len(traffic.answered_since(0.0)) == 3,
                          timeout=CONVERGE_TIMEOUT), summarize(traffic.outcomes)
        deleted_at = time.monotonic()
        kubectl("delete", "pod", victim, "-n", BACKEND_NAMESPACE, "--wait=false")
        replacement = wait_until(lambda: backends() - three_backends,
                                 timeout=ROLLOUT_TIMEOUT, interval=POLL_INTERVAL)
        assert replacement, f"no replacement for {victim}: ready pods {backends()}"
        wait_until(lambda: replacement <= set(traffic.answered_since(deleted_at)),
                   timeout=CONVERGE_TIMEOUT, interval=POLL_INTERVAL)
        # Until the victim is gone: its whole exit (delay, drain, stop) happens under traffic.
        assert wait_until(lambda: victim not in backends_and_terminating(),
                          timeout=ROLLOUT_TIMEOUT, interval=POLL_INTERVAL), f"{victim} still exists"
    outcomes = traffic.outcomes

    assert not [o for o in outcomes if o.error], summarize(outcomes)
    assert replacement <= set(traffic.answered_since(deleted_at)), summarize(outcomes)


def backends_and_terminating() -> set[str]:
    """Every backend pod that still exists, ready or not, terminating or not."""
    out = kubectl("get", "pods", "-n", BACKEND_NAMESPACE, "-l", BACKEND_SELECTOR,
                  "-o", "name")
    return {line.removeprefix("pod/") for line in out.split()}


def test_a_rolling_restart_of_the_proxy_fails_no_call(three_backends: set[str]) -> None:
    """With hostPort the DaemonSet cannot surge (deploy/base/daemonset.yaml): on the node, the
    old pod serves its 5s shutdown delay, drains, exits, and only then does the new pod start.
    The calls are wait-for-ready, as a client of a node-local proxy makes them, so a call made
    while nothing listens waits for the new pod instead of failing; calls in flight on the old
    pod finish there (drain)."""
    old = proxies()
    assert len(old) == 1, f"expected one proxy pod on the one node, have {sorted(old)}"

    with Traffic(PROXY_ADDRESS, wait_for_ready=True) as traffic:
        assert wait_until(lambda: sum(traffic.answered_since(0.0).values()) >= 20,
                          timeout=CONVERGE_TIMEOUT), summarize(traffic.outcomes)
        kubectl("rollout", "restart", "daemonset/gproxy-mp", "-n", PROXY_NAMESPACE)
        rollout_status("daemonset/gproxy-mp", namespace=PROXY_NAMESPACE,
                       timeout=ROLLOUT_TIMEOUT)
        new = wait_until(lambda: all_new(proxies(), old), timeout=ROLLOUT_TIMEOUT,
                         interval=POLL_INTERVAL)
        assert new, f"proxy pods after the restart: {sorted(proxies())} (before {sorted(old)})"
        restarted_at = time.monotonic()
        wait_until(lambda: set(traffic.answered_since(restarted_at)) == three_backends,
                   timeout=CONVERGE_TIMEOUT, interval=POLL_INTERVAL)
    outcomes = traffic.outcomes

    assert not [o for o in outcomes if o.error], summarize(outcomes)
    assert set(traffic.answered_since(restarted_at)) == three_backends, summarize(outcomes)
    # For the log: the longest wait is the node's gap between the old pod and the new one.
    print(f"rolling restart: {summarize(outcomes)}")
