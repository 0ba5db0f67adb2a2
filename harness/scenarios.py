"""Scenarios of gproxy-mp in a real cluster, shared by two suites that differ only in the cluster.

* ``tests/cluster`` (in ``make test``): the real control plane with kwok nodes whose pods are
  processes (:mod:`harness.kube.realcluster`);
* ``integration/kind`` (where Docker and kind exist): a kind cluster.

Both apply integration/kind/manifests: deploy/base as shipped (the DaemonSet's proxy targets
Service ``backend`` in ``default``, port ``grpc``) and a Deployment of backends that answer Whoami
with their pod's name. A scenario gets a :class:`Cluster` (how to read and change that
Deployment, and where the proxy listens) and runs continuous bounded client load through the
proxy (``harness.remote_traffic``, a child process: inside the tier's network namespace, or on
the kind host), counting every call's outcome.

Every wait is bounded; every failure message carries what was observed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from harness.remote_traffic import RemoteLoad
from harness.traffic import Outcome
from harness.waiting import wait_until

JSON = dict[str, Any]
BACKEND_NAMESPACE = "default"
BACKEND = "backend"
ROLLOUT_TIMEOUT = 180.0
"""Seconds a scale or rollout of the backend Deployment may take."""
CONVERGE_TIMEOUT = 30.0
"""Seconds for calls to follow a change of ready pods."""
ROLLING_UPDATE_CALLS = 20_000
"""Calls a rolling update must carry without a failure (the issue's bound)."""
LOAD_SECONDS = 600.0
"""Seconds one load runs at most, should a scenario never stop it."""


class Cluster(Protocol):
    """What a scenario needs of a cluster that runs integration/kind/manifests."""

    @property
    def proxy_address(self) -> str:
        """Where a client reaches the proxy (its hostPort)."""
        ...

    @property
    def command_prefix(self) -> Sequence[str]:
        """Prefix of a client process's argv (``ip netns exec NS``, or nothing)."""
        ...

    @property
    def log_dir(self) -> Path: ...

    def backend_pods(self) -> list[JSON]:
        """Every pod of the backend Deployment, terminating ones included, as API JSON."""
        ...

    def backend_slices(self) -> list[JSON]:
        """The EndpointSlices of Service backend, as API JSON."""
        ...

    def scale(self, replicas: int) -> None: ...

    def restart(self) -> None:
        """``kubectl rollout restart deployment/backend``: a rolling update of every pod."""
        ...

    def delete_pod(self, name: str) -> None:
        """Delete a backend pod with its grace period, without waiting."""
        ...


class FlappingCluster(Cluster, Protocol):
    """A cluster whose test can make one pod's readiness probe fail for a while."""

    def hold_unready(self, pod: str, held: bool) -> None: ...


def is_ready(pod: JSON) -> bool:
    return "deletionTimestamp" not in pod["metadata"] and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def ready_pods(cluster: Cluster) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.backend_pods() if is_ready(p)}


def existing_pods(cluster: Cluster) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.backend_pods()}


def wait_pods(cluster: Cluster, check: Callable[[set[str], set[str]], bool], what: str,
              timeout: float = ROLLOUT_TIMEOUT) -> set[str]:
    """Until ``check(ready, existing)``; the ready pods then."""
    if not wait_until(lambda: check(ready_pods(cluster), existing_pods(cluster)),
                      timeout=timeout, interval=0.25):
        raise AssertionError(f"{what}: not after {timeout}s; ready {sorted(ready_pods(cluster))},"
                             f" existing {sorted(existing_pods(cluster))}")
    return ready_pods(cluster)


def scale_to(cluster: Cluster, replicas: int) -> set[str]:
    """Scale and wait until exactly ``replicas`` pods exist and are ready."""
    cluster.scale(replicas)
    return wait_pods(cluster, lambda ready, existing: len(ready) == replicas == len(existing),
                     f"{replicas} ready backend pods")


@contextlib.contextmanager
def load(cluster: Cluster, *, threads: int = 2, interval: float = 0.0) -> Iterator[RemoteLoad]:
    """Whoami calls through the proxy, one after another on each thread, until the block ends."""
    caller = RemoteLoad(cluster.proxy_address, command_prefix=cluster.command_prefix,
                        log_path=cluster.log_dir / "load.log", threads=threads,
                        channels_per_thread=1, interval=interval, max_seconds=LOAD_SECONDS)
    try:
        yield caller
    finally:
        caller.stop()


def wait_answered_by(caller: RemoteLoad, pods: set[str], *, since: float) -> float:
    """Until every pod of ``pods`` answered a call that returned after ``since``; when."""
    if not wait_until(lambda: pods <= caller.backends(since), timeout=CONVERGE_TIMEOUT):
        raise AssertionError(f"not every pod of {sorted(pods)} answered within "
                             f"{CONVERGE_TIMEOUT}s: {caller.summary(since)}")
    return time.monotonic()


def wait_only(caller: RemoteLoad, pods: set[str]) -> float:
    """Until a second of calls is answered by ``pods`` alone, each of them; when it began."""

    def settled() -> bool:
        since = time.monotonic() - 1.0
        return caller.backends(since) == pods and not caller.failures(since)

    if not wait_until(settled, timeout=CONVERGE_TIMEOUT, interval=0.2):
        raise AssertionError(f"calls never went to exactly {sorted(pods)}: "
                             f"{caller.summary(time.monotonic() - 1.0)}")
    return time.monotonic() - 1.0


def no_failures(outcomes: Sequence[Outcome], what: str, summary: str) -> None:
    failed = [o for o in outcomes if o.backend is None]
    assert not failed, f"{what}: {len(failed)} of {len(outcomes)} calls failed, first " \
                       f"{[o.error for o in failed[:3]]}; {summary}"


# --- the scenarios ------------------------------------------------------------------------------


def calls_spread_over_every_ready_pod(cluster: Cluster) -> None:
    pods = scale_to(cluster, 3)
    with load(cluster) as caller:
        since = wait_only(caller, pods)
        time.sleep(2.0)
        counts = caller.counts(since)
    assert set(counts) == pods, counts
    total = sum(counts.values())
    # Per-call round robin over every connection: each pod gets about a third.
    assert min(counts.values()) >= total / 3 / 2, counts
    no_failures(caller.outcomes(since), "steady state", caller.summary(since))


def scale_3_10_1_3(cluster: Cluster) -> None:
    """Scaling up and down under load fails no call; each step's pods all get calls."""
    pods = scale_to(cluster, 3)
    with load(cluster) as caller:
        start = wait_only(caller, pods)
        for replicas in (10, 1, 3):
            pods = scale_to(cluster, replicas)
            wait_only(caller, pods)
        outcomes = caller.outcomes(start)
    no_failures(outcomes, "scale 3 -> 10 -> 1 -> 3", caller.summary(start))


def rolling_update(cluster: Cluster, *, calls: int = ROLLING_UPDATE_CALLS) -> None:
    """A rolling update (maxSurge 1, maxUnavailable 0) under load: 0 failed calls in at least
    ``calls``, and afterwards only the new pods answer."""
    old = scale_to(cluster, 3)
    with load(cluster, threads=4) as caller:
        start = wait_only(caller, old)
        cluster.restart()
        new = wait_pods(cluster, lambda ready, existing: len(ready) == 3 == len(existing)
                        and not ready & old, "3 new ready backend pods")
        wait_only(caller, new)
        if not wait_until(lambda: len(caller.outcomes(start)) >= calls, timeout=LOAD_SECONDS / 2):
            raise AssertionError(f"fewer than {calls} calls: {caller.summary(start)}")
        outcomes = caller.outcomes(start)
    assert len(outcomes) >= calls
    no_failures(outcomes, "rolling update", caller.summary(start))
    print(f"rolling update: {len(outcomes)} calls, 0 failed; {caller.summary(start)}")


def endpoint_conditions(cluster: Cluster, pod: str) -> JSON | None:
    for item in cluster.backend_slices():
        for endpoint in item.get("endpoints") or []:
            if endpoint.get("targetRef", {}).get("name") == pod:
                conditions: JSON = endpoint.get("conditions", {})
                return conditions
    return None


def graceful_deletion(cluster: Cluster) -> None:
    """A deleted pod's endpoint turns terminating; no call that starts after that (and after
    the proxy had a moment to see it) goes to it while other pods are ready; the calls it holds
    finish; the pod goes only once its process stopped."""
    pods = scale_to(cluster, 3)
    victim = sorted(pods)[0]
    with load(cluster, threads=3) as caller:
        start = wait_only(caller, pods)
        cluster.delete_pod(victim)
        if not wait_until(lambda: (endpoint_conditions(cluster, victim) or {}).get("terminating"),
                          timeout=CONVERGE_TIMEOUT, interval=0.1):
            raise AssertionError(f"{victim}'s endpoint never turned terminating: "
                                 f"{endpoint_conditions(cluster, victim)}")
        terminating_at = time.monotonic()
        wait_pods(cluster, lambda ready, existing: victim not in existing, f"{victim} deleted")
        gone_at = time.monotonic()
        outcomes = caller.outcomes(start)
    margin = 1.0  # the watch event's way to the proxy's workers
    late = [o for o in outcomes if o.backend == victim and o.started > terminating_at + margin]
    assert not late, f"{len(late)} calls reached {victim} after it was terminating: {late[:3]}"
    no_failures(outcomes, f"deleting {victim}", caller.summary(start))
    assert gone_at - terminating_at >= 4.0, (
        f"{victim} went {gone_at - terminating_at:.1f}s after it turned terminating: its "
        "process should have drained (the backend serves 5 s after SIGTERM)")


def readiness_flap(cluster: FlappingCluster, *, flaps: int = 3) -> None:
    """One pod's readiness probe fails, recovers, fails, ...: each time the pod leaves the calls
    while unready and gets them back once ready; no call fails."""
    pods = scale_to(cluster, 3)
    victim = sorted(pods)[0]
    with load(cluster) as caller:
        start = wait_only(caller, pods)
        for _ in range(flaps):
            cluster.hold_unready(victim, True)
            wait_pods(cluster, lambda ready, existing: victim not in ready, f"{victim} unready",
                      timeout=CONVERGE_TIMEOUT)
            wait_only(caller, pods - {victim})
            cluster.hold_unready(victim, False)
            wait_pods(cluster, lambda ready, existing: victim in ready, f"{victim} ready again",
                      timeout=CONVERGE_TIMEOUT)
            wait_only(caller, pods)
        outcomes = caller.outcomes(start)
    no_failures(outcomes, f"{flaps} readiness flaps of {victim}", caller.summary(start))
