"""The Kubernetes resolver, through the real CLI, against a real kube-apiserver: slice changes.

Every test runs ``python -m gproxy_mp -p 10.213.7.1:P-kubernetes:///... --kubeconfig F`` inside
the tier's network namespace, with real backends on 10.213.7.11-19 (and fd00:213:7::11) and
hand-made EndpointSlices, then changes the slices and checks what the proxy resolved
(``/debug/endpoints``) and where calls went (see ``harness.kube.routes``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from harness.kube.cluster import Kube, endpoint, service_port, slice_port
from harness.kube.netns import BACKEND_ADDRESS_V6, BACKEND_ADDRESSES
from harness.kube.routes import (
    BACKEND_PORT,
    GRPC,
    PROPAGATION_TIMEOUT,
    QUIET,
    START_TIMEOUT,
    UNREACHABLE,
    assert_no_failures,
    listen,
    start_backends,
    start_caller,
    start_proxy,
    wait_answers,
    wait_ready,
    wait_resolved,
    wait_unused,
)
from harness.kube.workloads import Workloads

# --- slice changes reach calls --------------------------------------------------------------


def test_calls_follow_slice_create_update_and_delete_within_five_seconds_without_failures(
    kube: Kube, echo: str, workloads: Workloads, admin_kubeconfig: Path
) -> None:
    a, b, c = start_backends(workloads, "abc")
    first = kube.create_slice(echo, "echo", endpoints=[endpoint(a.host)], ports=GRPC)
    proxy = start_proxy(workloads, admin_kubeconfig, f"kubernetes:///echo.{echo}:grpc")
    wait_resolved(workloads, proxy, {a.address}, timeout=START_TIMEOUT)
    caller = start_caller(workloads, expect="a")

    changed = time.monotonic()
    second = kube.create_slice(echo, "echo", endpoints=[endpoint(b.host)], ports=GRPC)
    wait_answers(caller, "b", since=changed, timeout=PROPAGATION_TIMEOUT)

    changed = time.monotonic()
    kube.replace_slice(echo, first, endpoints=[endpoint(c.host)])
    wait_answers(caller, "c", since=changed, timeout=PROPAGATION_TIMEOUT)
    assert wait_unused(caller, "a", timeout=PROPAGATION_TIMEOUT) - changed < PROPAGATION_TIMEOUT

    changed = time.monotonic()
    kube.delete_slice(echo, second["metadata"]["name"])
    assert wait_unused(caller, "b", timeout=PROPAGATION_TIMEOUT) - changed < PROPAGATION_TIMEOUT
    wait_resolved(workloads, proxy, {c.address})
    assert caller.backends(since=time.monotonic() - QUIET) == {"c"}
    assert_no_failures(caller)


def test_all_slices_are_merged_deduplicated_and_a_deleted_slice_takes_only_its_endpoints(
    kube: Kube, echo: str, workloads: Workloads, admin_kubeconfig: Path
) -> None:
    def at(addresses: Sequence[str]) -> set[str]:
        return {f"{address}:{BACKEND_PORT}" for address in addresses}

    # 140 endpoints in three slices; .41-.50 are in both s1 and s2.
    s1, s2, s3 = UNREACHABLE[0:50], UNREACHABLE[40:90], UNREACHABLE[90:130]
    stored = [
        kube.create_slice(echo, "echo", endpoints=[endpoint(a) for a in part], ports=GRPC)
        for part in (s1, s2, s3)
    ]
    proxy = start_proxy(workloads, admin_kubeconfig, f"kubernetes:///echo.{echo}:grpc")
    wait_resolved(workloads, proxy, at(UNREACHABLE), timeout=START_TIMEOUT)
    assert len(at(UNREACHABLE)) == 130

    kube.delete_slice(echo, stored[2]["metadata"]["name"])
    wait_resolved(workloads, proxy, at(s1) | at(s2))
    kube.delete_slice(echo, stored[1]["metadata"]["name"])
    wait_resolved(workloads, proxy, at(s1))  # .41-.50 stay: s1 still lists them


# --- endpoint conditions ----------------------------------------------------------------------

Conditions = tuple[bool | None, bool | None, bool | None]  # ready, serving, terminating
N = None  # the API's nil
CONDITION_STEPS: list[tuple[str, list[Conditions], str]] = [
    # (what the step shows, conditions of backends a, b, c, the backends used)
    ("nil ready counts as ready", [(N, N, N), (True, N, N), (False, False, False)], "ab"),
    ("not-ready ones are left out", [(True, True, False), (False, True, True), (False, N, N)], "a"),
    ("none ready: serving+terminating drain", [(False, True, True), (False, False, True),
                                               (False, True, False)], "a"),
    ("none ready nor draining: empty", [(False, False, True), (False, True, False),
                                        (False, False, False)], ""),
    ("ready again", [(N, N, N), (N, N, N), (N, N, N)], "abc"),
]  # fmt: skip


def test_endpoint_conditions_choose_the_backends(
    kube: Kube, echo: str, workloads: Workloads, admin_kubeconfig: Path
) -> None:
    backends = start_backends(workloads, "abc")
    stored = kube.create_slice(echo, "echo", endpoints=[], ports=GRPC)
    proxy = start_proxy(workloads, admin_kubeconfig, f"kubernetes:///echo.{echo}:grpc")
    wait_resolved(workloads, proxy, set(), timeout=START_TIMEOUT)
    wait_ready(workloads)
    for what, conditions, used in CONDITION_STEPS:
        endpoints = [
            endpoint(b.host, ready=r, serving=s, terminating=t)
            for b, (r, s, t) in zip(backends, conditions, strict=True)
        ]
        stored = kube.replace_slice(echo, stored, endpoints=endpoints)
        expected = {b.address for b in backends if b.name in used}
        wait_resolved(workloads, proxy, expected, what=what)
        if len(used) == 1:  # calls really go there, also when only draining ones are left
            outcome = workloads.call_once(listen())
            assert outcome.backend == used, f"{what}: {outcome}"


def test_scaled_to_zero_calls_fail_fast_with_unavailable_naming_the_target(
    kube: Kube, echo: str, workloads: Workloads, admin_kubeconfig: Path
) -> None:
    (a,) = start_backends(workloads, "a")
    stored = kube.create_slice(echo, "echo", endpoints=[endpoint(a.host)], ports=GRPC)
    proxy = start_proxy(workloads, admin_kubeconfig, f"kubernetes:///echo.{echo}:grpc")
    wait_resolved(workloads, proxy, {a.address}, timeout=START_TIMEOUT)
    wait_ready(workloads)

    for scale_down in (
        lambda: kube.replace_slice(echo, stored, endpoints=[]),
        lambda: kube.delete_slice(echo, stored["metadata"]["name"]),
    ):
        scale_down()
        wait_resolved(workloads, proxy, set())
        started = time.monotonic()
        outcome = workloads.call_once(listen())
        assert outcome.backend is None
        assert outcome.error.startswith("UNAVAILABLE")
        assert f"kubernetes://{echo}/echo:grpc" in outcome.error
        assert outcome.ended - started < 5.0  # fails fast, not at the call's deadline


# --- ports, namespaces, address families --------------------------------------------------------


def test_port_names_service_ports_target_ports_and_namespace_forms(
    kube: Kube, kube_namespace: str, workloads: Workloads, admin_kubeconfig: Path
) -> None:
    ns = kube_namespace
    kube.create_service(
        ns,
        "echo",
        [
            service_port(80, name="grpc", target_port=50051),
            service_port(81, name="alt", target_port=50052),
            service_port(82, name="named", target_port="grpc-port"),
        ],
    )
    host, other, third = BACKEND_ADDRESSES[:3]
    workloads.start_backend("p51", host, 50051)
    workloads.start_backend("p52", host, 50052)
    # A named targetPort resolves per pod: two slices, two numbers for the one port name.
    kube.create_slice(
        ns,
        "echo",
        endpoints=[endpoint(host)],
        ports=[slice_port(50051, name="grpc"), slice_port(50052, name="alt"),
               slice_port(50051, name="named")],
    )  # fmt: skip
    kube.create_slice(
        ns, "echo", endpoints=[endpoint(other)], ports=[slice_port(50053, name="named")]
    )
    # No namespace in the target: the pod's namespace, and outside a pod `default`.
    default_service = f"echo-{ns}"
    kube.create_service("default", default_service, [service_port(80, name="grpc")])
    kube.create_slice(
        "default",
        default_service,
        endpoints=[endpoint(third)],
        ports=[slice_port(50051, name="grpc")],
    )

    routes: list[tuple[str, set[str]]] = [
        (f"kubernetes:///echo.{ns}:grpc", {f"{host}:50051"}),  # port name
        (f"kubernetes:///echo.{ns}:80", {f"{host}:50051"}),  # Service port -> its name -> slice
        (f"kubernetes:///echo.{ns}:81", {f"{host}:50052"}),
        # Not a Service port: the backend port of every endpoint, whatever its slice says.
        (f"kubernetes:///echo.{ns}:50052", {f"{host}:50052", f"{other}:50052"}),
        (f"kubernetes://{ns}/echo:alt", {f"{host}:50052"}),
        (f"kubernetes:///echo.{ns}.svc.cluster.local:grpc", {f"{host}:50051"}),
        (f"kubernetes:///echo.{ns}:named", {f"{host}:50051", f"{other}:50053"}),
        (f"kubernetes:///{default_service}:grpc", {f"{third}:50051"}),
    ]
    proxy = start_proxy(workloads, admin_kubeconfig, *(target for target, _ in routes), workers=1)
    for index, (target, expected) in enumerate(routes):
        wait_resolved(workloads, proxy, expected, index=index, timeout=START_TIMEOUT, what=target)
    wait_ready(workloads)

    assert workloads.call_once(listen(1)).backend == "p51"
    assert workloads.call_once(listen(3)).backend == "p52"


def test_an_ipv6_slice_and_an_ipv4_slice_of_one_service_are_both_used(
    kube: Kube, echo: str, workloads: Workloads, admin_kubeconfig: Path
) -> None:
    v4 = workloads.start_backend("v4", BACKEND_ADDRESSES[0], BACKEND_PORT)
    v6 = workloads.start_backend("v6", BACKEND_ADDRESS_V6, BACKEND_PORT)
    kube.create_slice(echo, "echo", endpoints=[endpoint(v4.host)], ports=GRPC)
    kube.create_slice(echo, "echo", address_type="IPv6", endpoints=[endpoint(v6.host)], ports=GRPC)
    proxy = start_proxy(workloads, admin_kubeconfig, f"kubernetes:///echo.{echo}:grpc")
    wait_resolved(workloads, proxy, {v4.address, f"[{BACKEND_ADDRESS_V6}]:{BACKEND_PORT}"},
                  timeout=START_TIMEOUT)  # fmt: skip
    caller = start_caller(workloads, expect="v6")
    wait_answers(caller, "v4", since=0.0, timeout=PROPAGATION_TIMEOUT)
    assert_no_failures(caller)
