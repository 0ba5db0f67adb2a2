"""Discovery latency on the real-controllers cluster: from a Deployment change to traffic.

    .venv/bin/python -m bench discovery-cluster [--rollouts 5] [--smoke]

The cluster of the real-cluster tier (`harness.kube.realcluster`: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok nodes whose pods are real processes, deploy/base
as shipped plus the backend Deployment of integration/kind/manifests). Under continuous load
through the DaemonSet's proxy (`harness.remote_traffic`, 4 threads, each on its own connection),
each rollout is a `kubectl rollout restart` of the 3-pod backend Deployment (maxSurge 1,
maxUnavailable 0). Measured, with every call's outcome counted:

* per rollout: from the Deployment change to the first call on a new pod, and to the last call
  on an old pod (this includes the controllers, the scheduler, process start and readiness
  probes: what a user sees);
* per pod, the proxy's own part: from a new pod turning Ready (the kubelet's report) to its
  first call, and from an old pod's deletion (the kubelet's SIGTERM, when its endpoint turns
  terminating) to its last call.

Prints the medians and maxima and writes `result.json` (`bench.results`; git-ignored). Needs
root (`ip netns`) and the testbin binaries (or Go to build them). Everything it starts is
stopped on exit; every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.environment import environment
from bench.results import RunResults, add_results_argument
from harness import scenarios
from harness.kube.binaries import GoMissingError, wanted_version
from harness.kube.realcluster import RealCluster, real_cluster

REPLICAS = 3
THREADS = 4


def summary(values: list[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 3) if values else None,
        "max_s": round(max(values), 3) if values else None,
    }


def one_rollout(cluster: RealCluster, caller: Any) -> dict[str, Any]:
    old = scenarios.ready_pods(cluster)
    changed_at = time.monotonic()
    cluster.restart()
    new = scenarios.wait_pods(
        cluster, lambda ready, existing: len(ready) == REPLICAS == len(existing)
        and not ready & old, f"{REPLICAS} new ready pods")
    scenarios.wait_only(caller, new)
    outcomes = caller.outcomes(changed_at)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for outcome in outcomes:
        if outcome.backend in new:
            first.setdefault(outcome.backend, outcome.started)
        if outcome.backend in old:
            last[outcome.backend] = outcome.ended
    ns = scenarios.BACKEND_NAMESPACE
    ready_to_first = [first[p] - at for p in new if p in first
                      if (at := cluster.kubelet.ready_since(ns, p)) is not None]
    terminating_to_last = [max(0.0, last.get(p, at) - at) for p in old
                           if (at := cluster.kubelet.terminating_since(ns, p)) is not None]
    return {
        "change_to_first_call_on_new_s": round(min(first.values()) - changed_at, 3),
        "change_to_last_call_on_old_s": round(max(last.values()) - changed_at, 3),
        "ready_to_first_call_s": [round(v, 3) for v in ready_to_first],
        "terminating_to_last_call_s": [round(v, 3) for v in terminating_to_last],
        "calls": len(outcomes),
        "failed": sum(1 for o in outcomes if o.backend is None),
    }


def run(rollouts: int, directory: Path) -> dict[str, Any]:
    with real_cluster(directory) as cluster:
        scenarios.scale_to(cluster, REPLICAS)
        with scenarios.load(cluster, threads=THREADS) as caller:
            scenarios.wait_only(caller, scenarios.ready_pods(cluster))
            results = [one_rollout(cluster, caller) for _ in range(rollouts)]
    merged = {
        key: summary([r[key] for r in results] if key.startswith("change")
                     else [v for r in results for v in r[key]])
        for key in ("change_to_first_call_on_new_s", "change_to_last_call_on_old_s",
                    "ready_to_first_call_s", "terminating_to_last_call_s")
    }
    return {"rollouts": results, "summary": merged,
            "calls": sum(r["calls"] for r in results),
            "failed": sum(r["failed"] for r in results)}


def table(result: dict[str, Any]) -> str:
    rows = [
        ("Deployment change -> first call on a new pod", "change_to_first_call_on_new_s"),
        ("Deployment change -> last call on an old pod", "change_to_last_call_on_old_s"),
        ("new pod Ready -> its first call", "ready_to_first_call_s"),
        ("old pod terminating -> its last call", "terminating_to_last_call_s"),
    ]
    lines = [f"{'':48} {'median':>8} {'max':>8} {'n':>4}"]
    for label, key in rows:
        s = result["summary"][key]
        lines.append(f"{label:48} {s['median_s']!s:>8} {s['max_s']!s:>8} {s['n']:>4}")
    lines.append(f"calls {result['calls']}, failed {result['failed']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench discovery-cluster",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=5, help="rolling updates (default 5)")
    parser.add_argument("--smoke", action="store_true", help="one rollout (CI)")
    add_results_argument(parser)
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("discovery-cluster: needs root and iproute2 (ip netns)", file=sys.stderr)
        return 2
    rollouts = 1 if args.smoke else args.rollouts
    results = RunResults("discovery-cluster", results_dir=args.results_dir)
    try:
        with tempfile.TemporaryDirectory(prefix="gpx-cluster-") as scratch:
            result = run(rollouts, Path(scratch))
    except GoMissingError as error:
        print(f"discovery-cluster: {error}", file=sys.stderr)
        return 2
    document = {
        "benchmark": "discovery-cluster",
        "started": results.run_id,
        "settings": {"rollouts": rollouts, "smoke": args.smoke, "replicas": REPLICAS,
                     "load_threads": THREADS, "kubernetes": wanted_version()},
        "environment": environment(),
        **result,
    }
    print(table(result))
    results.write_json(document)
    return 0 if result["failed"] == 0 else 1
