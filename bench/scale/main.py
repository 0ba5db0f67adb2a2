"""Memory and scale: what gproxy-mp's processes cost, with many endpoints and many routes.

    .venv/bin/python -m bench scale [--endpoints 5000] [--routes 50] [--smoke]

Everything runs the real `gproxy-mp` command (`python -m gproxy_mp`) as a subprocess in front
of real grpcio test backends (`harness.backend`), all on loopback; `bench.scale.runs`
holds the three runs, one after another:

1. memory: one route, 2 workers. RSS (`VmRSS`) and PSS (`smaps_rollup`) of the supervisor
   and of each worker once ready and idle, at their peak under a bounded unary load
   (`--concurrency` calls in flight over `--connections` connections for `--load-seconds`),
   and after it. Target: a worker's idle RSS at most 80 MiB.
2. endpoints: one route whose `static:///` target lists `--endpoints` loopback endpoints (one
   real backend, the rest silent addresses in 127.1.0.0/16), one worker, started `--repeats`
   times. The worker's own time to apply the set (its debug line; target at most 200 ms, the
   median is compared), start-up time, the first answered call, memory with that many
   channels; the bus message's size and codec time; and in-process timings of updates (first
   set, one endpoint replaced, all replaced; `--repeats` rounds), which a static target never
   sends. Debug logging costs the worker about two grpc debug lines per new channel, so its
   figure is an upper bound; the in-process one logs nothing.
3. routes: `--routes` routes of one worker each. Time from the command's start until
   `/readyz` is 200 and until every worker reports ready, memory of every process (the sum of
   PSS is what they cost together; a sum of RSS counts shared pages once per process), CPU
   of the idle supervisor and workers over `--cpu-window` seconds, and one Whoami call
   through every route (all must answer).

Prints tables and writes `result.json` (`bench.results`; git-ignored). Exits 1
if a route did not answer or the first call with many endpoints failed; targets missed are
reported, not fatal. Every process it starts runs in its own session and is stopped by its
pid at the end (SIGTERM, then SIGKILL); every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.environment import environment
from bench.results import RunResults, add_results_argument
from bench.scale.runs import (
    Sizes,
    measure_endpoints,
    measure_memory,
    measure_routes,
    start_backends,
)
from bench.table import format_table

WORKER_IDLE_RSS_MIB = 80.0
"""Issue 7's target for a worker's RSS at idle."""
APPLY_MS = 200.0
"""Issue 7's target for a worker to apply an endpoint set of 5,000."""
BACKENDS = 2
FULL = Sizes(workers=2, endpoints=5000, routes=50, load_seconds=10.0, concurrency=64,
             connections=8, payload=100, settle=3.0, cpu_window=5.0, start_timeout=600.0,
             repeats=3)
SMOKE = Sizes(workers=2, endpoints=200, routes=3, load_seconds=2.0, concurrency=8,
              connections=2, payload=100, settle=1.0, cpu_window=2.0, start_timeout=120.0,
              repeats=1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes for CI: 200 endpoints, 3 routes, 2 s of load")
    for name, kind in (("endpoints", int), ("routes", int), ("load-seconds", float),
                       ("concurrency", int), ("connections", int), ("cpu-window", float),
                       ("start-timeout", float), ("repeats", int)):
        parser.add_argument(f"--{name}", type=kind, default=None,
                            help=f"default {getattr(FULL, name.replace('-', '_'))} "
                                 f"({getattr(SMOKE, name.replace('-', '_'))} with --smoke)")
    add_results_argument(parser)
    args = parser.parse_args(argv)
    base = SMOKE if args.smoke else FULL
    chosen = {key: value for key, value in vars(args).items()
              if key in base.__dataclass_fields__ and value is not None}
    args.sizes = Sizes(**{**vars(base), **chosen})
    if min(args.sizes.endpoints - 1, args.sizes.routes, args.sizes.concurrency,
           args.sizes.connections, args.sizes.repeats) < 1:
        parser.error("--endpoints must be at least 2; --routes, --concurrency, --connections "
                     "and --repeats at least 1")
    return args


def mib(memory: dict[str, Any] | None, key: str = "rss_mib") -> str:
    value = None if memory is None else memory.get(key)
    return "-" if value is None else f"{value:.1f}"


def ready(run: dict[str, Any]) -> str:
    return (f"from start: /readyz 200 after {run['readyz_s']} s, every worker ready after "
            f"{run['all_workers_ready_s']} s")


def worker_names(memory: dict[str, Any]) -> list[str]:
    return [name for name in memory if name != "supervisor"]


def memory_table(run: dict[str, Any]) -> str:
    rows = [["process", "idle RSS MiB", "idle PSS MiB", "load peak RSS", "load peak PSS",
             "after load RSS"]]
    for name in run["idle"]:
        rows.append([name, mib(run["idle"][name]), mib(run["idle"][name], "pss_mib"),
                     mib(run["load_peak"][name]), mib(run["load_peak"][name], "pss_mib"),
                     mib(run["after_load"][name])])
    load = run["load"]
    return (format_table(rows) + f"\nload: {load['calls']} calls in {load['seconds']} s "
            f"({load['calls_per_s']}/s), {load['failed']} failed, {load['concurrency']} in "
            f"flight over {load['connections']} connections; {ready(run)}")


def endpoints_table(run: dict[str, Any]) -> str:
    bus, updates, apply = run["bus"], run["in_process_updates_ms"], run["worker_apply_ms"]
    lines = [f"endpoints: {run['endpoints']}; bus message {bus['message_bytes']:,} bytes "
             f"(of which the target string {bus['target_bytes']:,}); encode {bus['encode_ms']} "
             f"ms, decode {bus['decode_ms']} ms",
             f"worker apply, its debug line: median {apply['median']} ms, max {apply['max']} "
             f"ms over {len(apply['samples'])} start(s)",
             "in-process decode + apply, median ms: "
             + ", ".join(f"{k} {v}" for k, v in updates["median"].items())]
    for index, proxy in enumerate(run["proxy_runs"]):
        memory = proxy["memory"]
        worker = next(iter(worker_names(memory)), None)
        lines.append(
            f"start {index + 1}: {ready(proxy)}; first call answered by "
            f"{proxy['first_call']['answered_by']} {proxy['first_call']['after_ready_s']} s "
            f"later; worker RSS {mib(memory.get(worker))} MiB PSS "
            f"{mib(memory.get(worker), 'pss_mib')} MiB, supervisor RSS "
            f"{mib(memory['supervisor'])} MiB")
    return "\n".join(lines)


def routes_table(run: dict[str, Any]) -> str:
    memory = run["memory"]
    workers = [memory[name] for name in worker_names(memory) if memory[name] is not None]

    def total(key: str) -> str:
        values = [m[key] for m in [memory["supervisor"], *workers] if m and m[key] is not None]
        return f"{sum(values):.1f}"

    rss = [m["rss_mib"] for m in workers] or [0.0]
    return "\n".join([
        f"routes: {run['routes']}, workers: {run['workers']}; {ready(run)}",
        f"supervisor RSS {mib(memory['supervisor'])} MiB PSS "
        f"{mib(memory['supervisor'], 'pss_mib')} MiB; worker RSS median "
        f"{statistics.median(rss):.1f} max {max(rss):.1f} MiB",
        f"all processes: RSS sum {total('rss_mib')} MiB, PSS sum {total('pss_mib')} MiB",
        f"idle CPU over {run['idle_cpu_window_s']} s: supervisor "
        f"{run['supervisor_idle_cpu_percent']}%, all workers "
        f"{run['workers_idle_cpu_percent']}% (of one core)",
        f"routes answering a call: {run['routes_answering']}/{run['routes']}",
    ])  # fmt: skip


def targets(result: dict[str, Any]) -> dict[str, Any]:
    idle = result["memory"]["idle"]
    worker_rss = [idle[n]["rss_mib"] for n in worker_names(idle) if idle[n] is not None]
    routes = result["routes"]["memory"]
    worker_rss += [routes[n]["rss_mib"] for n in worker_names(routes) if routes[n] is not None]
    apply = result["endpoints"]["worker_apply_ms"]
    return {
        "worker_idle_rss_mib": {"target_max": WORKER_IDLE_RSS_MIB,
                                "measured_max": max(worker_rss, default=None),
                                "met": bool(worker_rss) and max(worker_rss) <= WORKER_IDLE_RSS_MIB},
        "apply_ms": {"target_max": APPLY_MS, "endpoints": result["endpoints"]["endpoints"],
                     "measured_median": apply["median"], "measured_max": apply["max"],
                     "met": apply["median"] is not None and apply["median"] <= APPLY_MS},
    }  # fmt: skip


def failures(result: dict[str, Any]) -> list[str]:
    found = []
    for proxy in result["endpoints"]["proxy_runs"]:
        if proxy["first_call"]["answered_by"] is None:
            found.append("no call answered through the route with many endpoints")
        if not proxy["worker_applies"]:
            found.append("the worker logged no 'applied endpoints' line")
    if result["routes"]["routes_silent"]:
        found.append(f"routes that answered no call: {result['routes']['routes_silent']}")
    if result["memory"]["load"]["calls"] == 0:
        found.append("the load made no call")
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes: Sizes = args.sizes
    results = RunResults("scale", results_dir=args.results_dir)
    load_start = os.getloadavg()  # a shared box: how busy it was, for the reader
    directory = Path(tempfile.mkdtemp(prefix="gproxy-scale-"))
    try:
        launcher, backends = start_backends(directory, BACKENDS)
        try:
            result: dict[str, Any] = {
                "memory": measure_memory(launcher, backends, sizes),
                "endpoints": measure_endpoints(launcher, backends[0], sizes),
                "routes": measure_routes(launcher, backends, sizes),
            }
        finally:
            launcher.close()
    except BaseException:
        print(f"logs kept in {directory}", file=sys.stderr)
        raise
    result["targets"] = targets(result)
    result["failures"] = failures(result)
    for title, text in (("memory", memory_table(result["memory"])),
                        ("endpoints", endpoints_table(result["endpoints"])),
                        ("routes", routes_table(result["routes"]))):
        print(f"== {title}\n{text}\n")
    for name, target in result["targets"].items():
        measured = ", ".join(f"{k.removeprefix('measured_')} {v}" for k, v in target.items()
                             if k.startswith("measured_"))
        print(f"target {name} <= {target['target_max']}: measured {measured}: "
              f"{'met' if target['met'] else 'NOT met'}")
    for failure in result["failures"]:
        print(f"FAILED: {failure}", file=sys.stderr)
    report = {
        "benchmark": "scale",
        "started": results.run_id,
        "settings": {**vars(sizes), "backends": BACKENDS, "smoke": args.smoke},
        "environment": environment(load_average_start=load_start,
                                   load_average_end=os.getloadavg()),
        **result,
    }
    results.write_json(report)
    if result["failures"]:
        print(f"logs kept in {directory}", file=sys.stderr)
        return 1
    shutil.rmtree(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
