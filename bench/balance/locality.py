"""Locality: where calls go with each Service ``trafficDistribution``, on the real-cluster tier.

    .venv/bin/python -m bench locality [--calls 3000] [--smoke]

The cluster of `harness.kube.realcluster` (real controllers, three kwok nodes in two zones:
kwok-node-1 and -2 in zone-a, kwok-node-3 in zone-b, pods as real processes). For each
distribution (none, ``PreferClose``, ``PreferSameNode``), a namespace with a copy of the shipped
backend, 6 replicas spread 2 per node (a topology spread constraint), its Service set to that
distribution, and a gproxy-mp (1 worker, the shipped service account, ``--node-name
kwok-node-1``; its zone is read from the Node). ``--calls`` Whoami calls through it (4 threads,
one call after another); each answer names its pod, so its node. Reported: the share of calls
answered on the proxy's node, elsewhere in its zone, and in the other zone.

Prints a table and writes ``result.json`` (``bench.results``). Needs root (``ip netns``) and the
testbin binaries (or Go to build them). Everything it starts is stopped on exit.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.environment import environment
from bench.results import RunResults, add_results_argument
from bench.table import format_table
from harness.kube.binaries import GoMissingError, wanted_version
from harness.kube.realcluster import (
    HOST_NODE,
    JSON,
    NODES,
    RealCluster,
    real_cluster,
    spread_over_nodes,
)
from harness.remote_traffic import RemoteLoad
from harness.waiting import wait_until

DISTRIBUTIONS = (None, "PreferClose", "PreferSameNode")
REPLICAS = 6
LISTEN_PORT = 5100
ADMIN_PORT = 9950
SETTLE = 120.0
RELATIONS = ("same_node", "same_zone", "other_zone")


def spread(distribution: str | None) -> Callable[[list[JSON]], list[JSON]]:
    return functools.partial(spread_over_nodes, distribution=distribution, replicas=REPLICAS)


def relation(node: str) -> str:
    zone = {n.name: n.zone for n in NODES}
    if node == HOST_NODE:
        return "same_node"
    return "same_zone" if zone[node] == zone[HOST_NODE] else "other_zone"


def one_distribution(cluster: RealCluster, distribution: str | None, calls: int,
                     index: int, directory: Path) -> dict[str, Any]:
    namespace = cluster.backend_namespace("locality", spread(distribution))
    if not wait_until(lambda: len(cluster.ready_pod_nodes(namespace)) == REPLICAS, timeout=SETTLE):
        raise RuntimeError(f"{namespace}: {cluster.ready_pod_nodes(namespace)} after {SETTLE}s")
    nodes = cluster.ready_pod_nodes(namespace)
    listen = f"10.213.7.1:{LISTEN_PORT + index}"
    log_dir = directory / f"run-{index}"
    log_dir.mkdir()
    with cluster.shipped_proxy(log_dir, f"{listen}-kubernetes:///backend.{namespace}:grpc",
                               "--admin-address", f"10.213.7.1:{ADMIN_PORT + index}",
                               "--node-name", HOST_NODE):
        caller = RemoteLoad(listen, command_prefix=cluster.command_prefix,
                            log_path=log_dir / "load.log", threads=4, channels_per_thread=1)
        try:
            # From the first second in which every call succeeded (the proxy is serving).
            def settled() -> bool:
                recent = caller.outcomes(time.monotonic() - 1.0)
                return bool(recent) and all(o.backend is not None for o in recent)

            if not wait_until(settled, timeout=SETTLE):
                raise RuntimeError(f"the proxy does not serve: {caller.summary()}")
            since = time.monotonic()
            if not wait_until(lambda: len(caller.outcomes(since)) >= calls, timeout=SETTLE):
                raise RuntimeError(f"fewer than {calls} calls: {caller.summary(since)}")
            outcomes = caller.outcomes(since)[:calls]
        finally:
            caller.stop()
    answered = [o.backend for o in outcomes if o.backend is not None]
    counts = dict.fromkeys(RELATIONS, 0)
    for pod in answered:
        counts[relation(nodes[pod])] += 1
    return {
        "distribution": distribution or "none", "calls": len(outcomes),
        "failed": len(outcomes) - len(answered),
        "share": {k: round(v / max(1, len(answered)), 3) for k, v in counts.items()},
        "pods_per_node": {n.name: sum(1 for v in nodes.values() if v == n.name) for n in NODES},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench locality",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per distribution")
    parser.add_argument("--smoke", action="store_true", help="300 calls per distribution (CI)")
    add_results_argument(parser)
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("locality: needs root and iproute2 (ip netns)", file=sys.stderr)
        return 2
    calls = 300 if args.smoke else args.calls
    results = RunResults("locality", results_dir=args.results_dir)
    try:
        with tempfile.TemporaryDirectory(prefix="gpx-locality-") as scratch, \
                real_cluster(Path(scratch) / "cluster") as cluster:
            rows = [one_distribution(cluster, d, calls, i, Path(scratch))
                    for i, d in enumerate(DISTRIBUTIONS)]
    except GoMissingError as error:
        print(f"locality: {error}", file=sys.stderr)
        return 2
    print(format_table([["trafficDistribution", "same node", "same zone", "other zone",
                         "calls", "failed"]] + [
        [r["distribution"], *(f"{r['share'][k]:.1%}" for k in RELATIONS), str(r["calls"]),
         str(r["failed"])] for r in rows], numbers_right=True))
    results.write_json({
        "benchmark": "locality", "started": results.run_id,
        "settings": {"calls": calls, "smoke": args.smoke, "replicas": REPLICAS,
                     "proxy_node": HOST_NODE, "kubernetes": wanted_version()},
        "environment": environment(), "rows": rows,
    })
    return 0 if all(r["failed"] == 0 for r in rows) else 1
