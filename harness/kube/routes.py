"""The proxy under test in the Kubernetes tier: its command line, what it resolved, what calls see.

What the proxy resolved is read from its admin endpoint ``/debug/endpoints``; what callers
experience comes from a caller process in the namespace that makes one Whoami call after another
and reports every outcome with its time (see ``harness.remote_traffic``). Every wait is bounded
and fails the test with what was observed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.kube.cluster import slice_port
from harness.kube.netns import APISERVER_ADDRESS, BACKEND_ADDRESSES
from harness.kube.workloads import NetProxy, Workloads
from harness.peers import Backend
from harness.remote_traffic import RemoteLoad as Caller
from harness.waiting import wait_until

LISTEN_PORT = 5000
"""First listen port of the proxy under test (routes take consecutive ports)."""
ADMIN_ADDRESS = f"{APISERVER_ADDRESS}:9901"
BACKEND_PORT = 50051
PROPAGATION_TIMEOUT = 5.0
"""Seconds from an EndpointSlice change to calls following it (the issue's bound)."""
RECOVERY_TIMEOUT = 10.0
"""Seconds from a change made after an API server restart to calls following it."""
QUIET = 1.0
"""Seconds without an answer from a backend (at ~100 calls/s) that count as 'no longer used'."""
START_TIMEOUT = 30.0
"""Seconds the proxy may take to start and resolve its first set."""
GRPC = [slice_port(BACKEND_PORT, name="grpc")]
UNREACHABLE = [f"10.213.9.{n}" for n in range(1, 131)]
"""Addresses never called: no route for them exists inside the namespace, nothing leaves it."""


def listen(index: int = 0) -> str:
    return f"{APISERVER_ADDRESS}:{LISTEN_PORT + index}"


def start_proxy(
    workloads: Workloads, kubeconfig: Path, *targets: str, workers: int = 2,
    extra_args: Sequence[str] = (),
) -> NetProxy:
    args: list[str] = [*extra_args]
    for index, target in enumerate(targets):
        args += ["-p", f"{listen(index)}-{target}"]
    return workloads.start_proxy(
        *args,
        "--kubeconfig", str(kubeconfig),
        "--workers", str(workers),
        "--admin-address", ADMIN_ADDRESS,
        "-d", "0s",
        "--drain-timeout", "2s",
        "--log-level", "info",
    )  # fmt: skip


def resolved(workloads: Workloads, index: int = 0) -> set[str] | None:
    """The endpoint set route ``index`` holds now (None: not resolved or admin unreachable)."""
    route = workloads.routes(ADMIN_ADDRESS).get(listen(index))
    if route is None or route["endpoints"] is None:
        return None
    return set(route["endpoints"])


def wait_resolved(
    workloads: Workloads,
    proxy: NetProxy,
    expected: set[str],
    *,
    index: int = 0,
    timeout: float = PROPAGATION_TIMEOUT,
    what: str = "",
) -> None:
    """Until route ``index`` holds exactly ``expected``; ``what`` prefixes the failure."""

    def probe() -> bool:
        proxy.check_alive()
        return resolved(workloads, index) == expected

    if not wait_until(probe, timeout=timeout, interval=0.1):
        pytest.fail(
            f"{what + ': ' if what else ''}route {listen(index)} holds "
            f"{resolved(workloads, index)}, not {sorted(expected)} after {timeout}s"
        )


def wait_answers(caller: Caller, name: str, *, since: float, timeout: float) -> float:
    """When ``name`` first answered at or after ``since``; fails after ``timeout`` seconds."""
    if not wait_until(lambda: caller.first_answer_from(name, since), timeout=timeout):
        pytest.fail(f"{name} did not answer within {timeout}s: {caller.summary(since)}")
    first = caller.first_answer_from(name, since)
    assert first is not None
    return first


def wait_unused(caller: Caller, name: str, *, timeout: float) -> float:
    """Wait until ``name`` has not answered for ``QUIET`` seconds; return its last answer."""

    def quiet() -> bool:
        last = caller.last_answer_from(name)
        return last is None or time.monotonic() - last >= QUIET

    if not wait_until(quiet, timeout=timeout + QUIET):
        pytest.fail(f"{name} still answers after {timeout}s: {caller.summary()}")
    return caller.last_answer_from(name) or 0.0


def assert_no_failures(caller: Caller) -> None:
    failures = caller.failures()
    assert not failures, f"{len(failures)} failed calls, first {failures[:3]}; {caller.summary()}"


def start_backends(
    workloads: Workloads, names: str, *, port: int = BACKEND_PORT
) -> list[Backend]:
    """One backend per letter of ``names``, on consecutive backend addresses."""
    return [
        workloads.start_backend(name, BACKEND_ADDRESSES[i], port) for i, name in enumerate(names)
    ]


def wait_ready(workloads: Workloads) -> None:
    """Until the proxy's admin ``/readyz`` answers 200 (every route has a serving worker)."""
    if not wait_until(
        lambda: workloads.admin(ADMIN_ADDRESS, "/readyz")[0] == 200, timeout=START_TIMEOUT
    ):
        pytest.fail(f"proxy not ready: {workloads.admin(ADMIN_ADDRESS, '/readyz')}")


def start_caller(workloads: Workloads, *, expect: str, index: int = 0) -> Caller:
    """A caller loop through route ``index``, once the proxy is ready and ``expect`` answered.

    Readiness first (admin ``/readyz``: every route has a serving worker), so that every
    failed call the caller reports is a real failure, not a listener that is not bound yet.
    """
    wait_ready(workloads)
    caller = workloads.start_caller(listen(index))
    wait_answers(caller, expect, since=0.0, timeout=START_TIMEOUT)
    return caller
