"""Discovery latency with Kubernetes: from an EndpointSlice update to calls reaching (or leaving)
a backend.

    .venv/bin/python -m bench discovery-k8s [--changes 20] [--window 10s] [--smoke]

The Kubernetes sandbox of `harness.kube` (the one the test tier uses): a network namespace
`gpx-k8s-<pid>` with a real etcd and kube-apiserver (built into .cache/testbin by
scripts/build-k8s-testbin.sh), because the API server refuses loopback endpoint addresses. In
it, three real grpcio test backends listen on 10.213.7.11, .12 and .13 (port 50051; each answers
Whoami with its address), a headless Service `echo` has one hand-made EndpointSlice listing two
of them, and gproxy-mp runs with 2 workers, `-p 10.213.7.1:5000-kubernetes:///echo.NS:grpc`
and a kubeconfig for the API server (admin token), so it lists and then watches the slices.

The load is `harness.remote_traffic`, started with `ip netns exec` (grpcio must connect from a
process inside the namespace): 4 threads, each on its own connection to the proxy, send Whoami
calls continuously (at most one per `CALL_INTERVAL` each) and report which backend answered
each. The change loop is the DNS benchmark's (`bench.discovery.changes`): after a random pause
of up to `MAX_PAUSE`, alternately add the missing backend to the slice and remove the oldest one
(a `replace` of the slice; the change time is taken just before the request, `confirmed` when
the API server answered it). Per change it reports the seconds to the first call on an added
backend and to the last call on a removed one (which stays up, so only discovery can move
traffic away), and the calls that failed meanwhile. Target: median to the first call on an
added backend within 1 s.

No reference runs here: nothing else in this harness watches EndpointSlices (no kube-proxy, no
controller-manager, no kind cluster), and grpc ships no Kubernetes resolver.

Prints a table and writes `result.json` (`bench.results`; git-ignored).
Needs root (`ip netns`) and the testbin binaries (or Go to build them). Every process it starts
runs in its own session and is stopped by its pid; every wait is bounded; the namespace is
deleted at the end (after a crash, the Kubernetes tier's next run removes it as stale).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.discovery import options
from bench.discovery.changes import ChangePlan, run_changes
from bench.discovery.stats import Run, report, summarize, table
from bench.environment import environment
from bench.results import RunResults
from harness.kube import netns, pki, sandbox
from harness.kube.binaries import GoMissingError, wanted_version
from harness.kube.cluster import JSON, Kube, endpoint, service_port
from harness.kube.routes import ADMIN_ADDRESS, BACKEND_PORT, GRPC, listen, start_proxy
from harness.kube.workloads import Workloads
from harness.remote_traffic import RemoteLoad
from harness.waiting import wait_until

HOSTS = netns.BACKEND_ADDRESSES[:3]
"""The backends' addresses, also their names (Whoami answers the name)."""
SERVICE = "echo"
CONNECTIONS = 4
"""Load threads, each with its own channel and so its own connection to the proxy."""
CALL_INTERVAL = 0.002
"""Seconds between the starts of two calls on one connection (at most), as in the DNS
benchmark: a call on every backend every few ms."""
MAX_PAUSE = 1.0
"""Seconds of random pause before each change, at most."""
REPORT_WAIT = 5.0
"""Seconds for every worker's status report to show the final endpoint set (sent each 1 s)."""
READY_TIMEOUT = 30.0
"""Seconds the proxy may take to report ready (admin /readyz) after it starts."""
TARGET = 1.0
"""Seconds: the median from a slice change to the first call on an added backend (issue 7)."""
REFERENCE = (
    "none: nothing else here watches EndpointSlices (no kube-proxy, no controller-manager); "
    "grpc ships no Kubernetes resolver"
)
SMOKE = {"changes": 2, "window": 10.0}


@dataclass(frozen=True)
class Cluster:
    namespace: netns.NetworkNamespace
    kube: Kube
    kubeconfig: Path
    workloads: Workloads


@contextmanager
def running_cluster(directory: Path) -> Iterator[Cluster]:
    """The tier's namespace, etcd and kube-apiserver, an admin client; all gone on exit."""
    with ExitStack() as stack:
        namespace = stack.enter_context(sandbox.network_namespace())
        credentials = sandbox.build_credentials(directory / "pki")
        plane = stack.enter_context(sandbox.control_plane(namespace, credentials, directory))
        kube = stack.enter_context(sandbox.admin_client(plane, namespace, credentials))
        kubeconfig = kube.write_kubeconfig(directory / "admin.kubeconfig", user=pki.ADMIN_USER)
        workloads = Workloads(namespace, log_dir=directory)
        stack.callback(workloads.close)
        yield Cluster(namespace, kube, kubeconfig, workloads)


class EndpointSlice:
    """The Service's one slice; `serve` replaces its endpoints and returns once it is stored."""

    def __init__(self, kube: Kube, namespace: str, hosts: list[str]) -> None:
        self.kube = kube
        self.namespace = namespace
        self.stored: JSON = kube.create_slice(
            namespace, SERVICE, endpoints=[endpoint(h) for h in hosts], ports=GRPC
        )

    def serve(self, hosts: list[str]) -> None:
        self.stored = self.kube.replace_slice(
            self.namespace, self.stored, endpoints=[endpoint(h) for h in hosts]
        )


@dataclass(frozen=True)
class Measured:
    run: Run
    route: dict[str, Any]  # the proxy's /debug/endpoints entry for the route, at the end


def measure(cluster: Cluster, *, count: int, window: float, seed: int, directory: Path) -> Measured:
    for host in HOSTS:
        cluster.workloads.start_backend(host, host, BACKEND_PORT)
    kube_namespace = cluster.kube.create_namespace("bench")
    cluster.kube.create_service(kube_namespace, SERVICE, [service_port(BACKEND_PORT, name="grpc")])
    slice_ = EndpointSlice(cluster.kube, kube_namespace, list(HOSTS[:2]))
    target = f"kubernetes:///{SERVICE}.{kube_namespace}:grpc"
    proxy = start_proxy(cluster.workloads, cluster.kubeconfig, target, workers=2)
    if not wait_until(
        lambda: cluster.workloads.admin(ADMIN_ADDRESS, "/readyz")[0] == 200,
        timeout=READY_TIMEOUT,
    ):
        proxy.check_alive()
        raise RuntimeError(f"proxy not ready after {READY_TIMEOUT}s\n{proxy.output()}")
    plan = ChangePlan(HOSTS, count=count, window=window, max_pause=MAX_PAUSE, seed=seed)
    origin = time.monotonic()
    with RemoteLoad(
        listen(),
        command_prefix=cluster.namespace.command([]),
        threads=CONNECTIONS,
        channels_per_thread=1,
        interval=CALL_INTERVAL,
        failure_pause=0.0,
        max_seconds=plan.budget(),
        log_path=directory / "load.log",
    ) as load:
        changes = run_changes(load, slice_.serve, plan)
        load.check_alive()  # a load that died early would pass for slow discovery
    proxy.check_alive()
    # Workers report their applied seq every second: give the last change's report time to
    # arrive, so the route recorded below shows whether every worker took up the final set.
    route = wait_until(lambda: settled_route(cluster), timeout=REPORT_WAIT) or (
        cluster.workloads.routes(ADMIN_ADDRESS).get(listen(), {}))
    label = "gproxy-mp, 2 workers, kubernetes:/// (list + watch)"
    return Measured(Run(label, target, None, origin, changes, load.outcomes()), route)


def settled_route(cluster: Cluster) -> dict[str, Any] | None:
    """The proxy's view of the route once every worker has applied its latest seq."""
    route: dict[str, Any] = cluster.workloads.routes(ADMIN_ADDRESS).get(listen(), {})
    workers = route.get("workers", [])
    if workers and all(w.get("applied_seq") == route.get("seq") for w in workers):
        return route
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench discovery-k8s", description=__doc__)
    parser.add_argument("--changes", type=int, default=20, help="slice changes (default 20)")
    parser.add_argument("--window", default="10s", help="how long to wait for each change")
    options.add_run_arguments(parser, smoke_help="2 changes (CI)")
    args = parser.parse_args(argv)
    options.parse_durations(parser, args, "window")
    options.finish_args(args, smoke=SMOKE)
    if args.changes < 1 or args.window <= 0:
        parser.error("--changes must be at least 1 and --window positive")
    return args


def missing_requirement() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create a network namespace (ip netns)"
    if shutil.which("ip") is None:
        return "iproute2 not installed: cannot create a network namespace"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (missing := missing_requirement()) is not None:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    results = RunResults("discovery-k8s", results_dir=args.results_dir)
    try:
        with (
            options.scratch_directory("gproxy-discovery-k8s-") as directory,
            running_cluster(directory) as cluster,
        ):
            measured = measure(
                cluster, count=args.changes, window=args.window, seed=args.seed, directory=directory
            )
    except GoMissingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run = measured.run
    print(table([run]))
    added = summarize("add", run.changes, run.calls)
    met = added.median is not None and added.median <= TARGET
    print(
        f"target: median to the first call on an added backend <= {TARGET:g} s: "
        f"{'met' if met else 'NOT met'}; reference: {REFERENCE}"
    )
    result = {
        **options.result_head(
            "discovery-k8s", args, run_id=results.run_id, hosts=HOSTS, connections=CONNECTIONS,
            call_interval=CALL_INTERVAL, environment=environment(kubernetes=wanted_version()),
            settings={"window_s": args.window, "max_pause_s": MAX_PAUSE, "target_median_s": TARGET},
        ),
        "reference": REFERENCE,
        "target_met": met,
        "runs": [report(run, confirmed_key="api_confirmed_after_s")],
        "proxy_route_at_end": measured.route,
    }
    results.write_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
