"""Balancing with one slow backend: ``--balancer round-robin`` against ``least-request``.

    .venv/bin/python -m bench balance [--calls 6000] [--rounds 2] [--delay-ms 2] [--smoke]

Four real test backends (``python -m harness.backend``), each answering WhoAmI after
``--delay-ms`` milliseconds, one of them ten times slower; in front of them, one after another
in each round (the order alternates between rounds), gproxy-mp with one worker and
``--balancer round-robin``, then ``--balancer least-request``, over the same backends. The load
is ``harness.traffic.ThreadLoad``: 8 threads, each on its own connection, one call after
another, ``--calls`` calls in all (bounded in time too). Reported per balancer (medians over
rounds): mean, p50 and p99 latency, calls/s, the share of calls each backend answered, failed calls.

Prints a table and writes ``result.json`` (``bench.results``). Loopback only; every process it
starts is stopped by pid; every wait is bounded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.environment import environment
from bench.results import RunResults, add_results_argument
from bench.table import format_table
from harness.peers import Launcher, proxy_args, route
from harness.processes import free_port
from harness.traffic import Outcome, ThreadLoad
from harness.whoami import private_channels, whoami

BALANCERS = ("round-robin", "least-request")
BACKENDS = ("a", "b", "c", "slow")
THREADS = 8
SLOWDOWN = 10
MAX_SECONDS = 120.0
"""Seconds one run may take at most."""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def one_run(launcher: Launcher, backends: list[Any], balancer: str, calls: int) -> dict[str, Any]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    proxy = launcher.start_proxy(*proxy_args(route(port, *backends), workers=1),
                                 "--balancer", balancer)
    try:
        proxy.wait_serving(address)
        started = time.monotonic()
        with ThreadLoad(private_channels(address), whoami, threads=THREADS,
                        max_calls=calls, max_seconds=MAX_SECONDS) as load:
            load.wait_done(MAX_SECONDS + 10)
        elapsed = time.monotonic() - started
        outcomes: list[Outcome] = load.outcomes()
    finally:
        proxy.stop()
    answered = [o for o in outcomes if o.backend is not None]
    latencies = [o.latency for o in answered]
    per_backend = {name: sum(1 for o in answered if o.backend == name) for name in BACKENDS}
    return {
        "balancer": balancer, "calls": len(outcomes), "failed": len(outcomes) - len(answered),
        "calls_per_s": round(len(answered) / elapsed, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None,
        "per_backend": per_backend,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for balancer in BALANCERS:
        mine = [r for r in runs if r["balancer"] == balancer]
        total = {name: sum(r["per_backend"][name] for r in mine) for name in BACKENDS}
        answered = max(1, sum(total.values()))
        summary[balancer] = {
            "mean_ms": statistics.median(r["mean_ms"] for r in mine),
            "p50_ms": statistics.median(r["p50_ms"] for r in mine),
            "p99_ms": statistics.median(r["p99_ms"] for r in mine),
            "calls_per_s": statistics.median(r["calls_per_s"] for r in mine),
            "share": {name: round(count / answered, 3) for name, count in total.items()},
            "failed": sum(r["failed"] for r in mine),
        }
    return summary


def table(summary: dict[str, dict[str, Any]]) -> str:
    rows = [["balancer", "mean ms", "p50 ms", "p99 ms", "calls/s",
             *(f"{n} share" for n in BACKENDS), "failed"]]
    for balancer, s in summary.items():
        rows.append([balancer, f"{s['mean_ms']:.2f}", f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}",
                     f"{s['calls_per_s']:,.0f}", *(f"{s['share'][n]:.1%}" for n in BACKENDS),
                     str(s["failed"])])
    return format_table(rows, numbers_right=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench balance",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=6000, help="calls per run (default 6000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    parser.add_argument("--delay-ms", type=float, default=2.0,
                        help="the fast backends' delay; the slow one's is ten times it")
    parser.add_argument("--smoke", action="store_true", help="CI: 400 calls, 1 round")
    add_results_argument(parser)
    args = parser.parse_args(argv)
    calls, rounds = (400, 1) if args.smoke else (args.calls, args.rounds)
    if calls < 1 or rounds < 1 or args.delay_ms < 0:
        parser.error("--calls and --rounds must be at least 1, --delay-ms not negative")
    results = RunResults("balance", results_dir=args.results_dir)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gpx-balance-") as scratch:
        launcher = Launcher(Path(scratch))
        try:
            backends = [
                launcher.start_backend(name, extra_args=(
                    "--delay-ms", str(args.delay_ms * (SLOWDOWN if name == "slow" else 1))))
                for name in BACKENDS
            ]
            for index in range(rounds):
                order = BALANCERS if index % 2 == 0 else BALANCERS[::-1]
                for balancer in order:
                    runs.append(one_run(launcher, backends, balancer, calls))
        finally:
            launcher.close()
    summary = summarize(runs)
    print(table(summary))
    results.write_json({
        "benchmark": "balance", "started": results.run_id,
        "settings": {"calls": calls, "rounds": rounds, "delay_ms": args.delay_ms,
                     "slowdown": SLOWDOWN, "threads": THREADS, "smoke": args.smoke},
        "environment": environment(), "runs": runs, "summary": summary,
    })
    return 0 if all(s["failed"] == 0 for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
