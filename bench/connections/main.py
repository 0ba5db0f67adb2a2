"""One connection, one worker: how calls split over gproxy-mp's workers, with and without
``--max-connection-age``.

    .venv/bin/python -m bench connections [--calls 20000] [--rounds 3] [--age 1s] [--smoke]

SO_REUSEPORT lets the kernel pick a worker per *connection*, so one busy client connection
pins one worker, and a few connections split unevenly. ``--max-connection-age`` sends each
connection a GOAWAY after about that age (gRPC jitters it by +-10%); the client reconnects and
the kernel picks again, so over time the calls even out.

Method: two fixed-response nginx backends (the same as ``bench cost``), and one after another
``gproxy-mp --workers 2`` without and with ``--max-connection-age AGE``, plus ``--workers 1``
for the CPU-per-call comparison. For each, the grpcio client (``bench.rig.client unary``: 100 B
unary calls, 8 in flight per connection, each channel its own TCP connection) runs ``--calls``
calls over 1, 4 and 16 connections, in a rotated order each round. (h2load cannot be used:
it does not reconnect after a GOAWAY, it fails the rest of that connection's calls.) The
per-worker split is read from the admin port's ``/debug/endpoints`` (each worker's finished
calls, from its 1 s status reports) before and after each run. The client checks every reply
and does not retry, so a call that a GOAWAY race fails is counted (grpc/grpc#31733). Reported
per configuration and connection count: the busiest worker's share (median and max over rounds;
0.5 is an even split, 1.0 all on one worker), calls/s, the proxy's CPU per call, failed calls.

Prints a table and writes ``result.json`` (``bench.results``). Loopback
only; every process it starts is stopped by pid; every wait is bounded.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from bench.results import RunResults, add_results_argument
from bench.rig import load
from bench.rig.peers import Group, ToolsMissingError, ensure_tools, start_peers
from bench.rig.workloads import write_backend_files
from harness.admin import quiet_worker_calls, route_view, worker_calls
from harness.peers import proxy_args, route
from harness.processes import free_port
from harness.procfacts import cpu_seconds
from harness.waiting import wait_until

MIN_RATE = 200
"""Calls/s below which a client run counts as stuck."""
CONNECTIONS = (1, 4, 16)
STREAMS = 8
REPORT_WAIT = 10.0
"""Seconds for the workers' status reports to account for every call of a run."""
READY_WAIT = 30.0


@dataclass(frozen=True)
class Setup:
    name: str
    workers: int
    age: str | None


@dataclass(frozen=True)
class Sample:
    setup: str
    connections: int
    round: int
    calls: int
    calls_per_s: float
    proxy_cpu_us: float
    split: list[int]
    failed: int
    errors: dict[str, int]

    @property
    def busiest_share(self) -> float:
        return max(self.split) / max(1, sum(self.split))


def ready_workers(admin: str) -> int:
    """Workers of the route in state ready (0 while the admin port does not answer yet)."""
    try:
        return sum(w["state"] == "ready" for w in route_view(admin)["workers"])
    except (OSError, IndexError):
        return 0


def quiet_workers(admin: str, workers: int) -> dict[str, int]:
    """Per-worker calls once all ``workers`` are ready and two reports in a row agree (every
    earlier call is accounted for)."""
    if wait_until(lambda: ready_workers(admin) == workers, timeout=READY_WAIT):
        found = quiet_worker_calls(admin, workers=workers, timeout=READY_WAIT)
        if len(found) == workers:
            return found
    raise RuntimeError(f"gproxy-mp's {workers} workers were not ready and quiet within "
                       f"{READY_WAIT} s")


def settled(admin: str, before: dict[str, int], calls: int) -> list[int]:
    """Per-worker calls since ``before``, once the reports account for all ``calls``."""
    deadline = time.monotonic() + REPORT_WAIT
    while True:
        now = worker_calls(admin)
        split = [now.get(worker, 0) - count for worker, count in sorted(before.items())]
        if sum(split) >= calls or time.monotonic() >= deadline:
            return split
        time.sleep(0.2)


def start_gproxy(work: Path, setup: Setup, backends: list[str]) -> tuple[Group, str, str]:
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "gproxy_mp",
            *proxy_args(route(port, *backends), workers=setup.workers, admin_address=admin),
            "--log-level", "warning"]
    if setup.age:
        argv += ["--max-connection-age", setup.age]
    group = Group(setup.name)
    group.start(argv, log=work / f"{setup.name}.out")
    return group, f"127.0.0.1:{port}", admin


@dataclass(frozen=True)
class ClientRun:
    calls_per_s: float
    failed: int
    errors: dict[str, int]


def run_client(address: str, *, calls: int, connections: int) -> ClientRun:
    """The grpcio client over ``connections`` connections (no retries: every failure shows).
    LoadError if the client itself fails."""
    result = load.run_client("unary", address, calls=calls, channels=connections,
                             per_channel=STREAMS, min_rate=MIN_RATE)
    return ClientRun(calls / result["seconds"], result["failed"], result["errors"])


def measure(setups: list[Setup], *, calls: int, rounds: int, work: Path) -> list[Sample]:
    write_backend_files(work / "www")
    backends, _ = start_peers(work, [], backend_count=2)
    addresses = backends.address.split(",")
    samples: list[Sample] = []
    try:
        for setup in setups:
            group, address, admin = start_gproxy(work, setup, addresses)
            try:
                quiet_workers(admin, setup.workers)
                run_client(address, calls=min(calls, 2000), connections=4)  # warm-up
                for round_ in range(rounds):
                    order = CONNECTIONS[round_ % 3:] + CONNECTIONS[:round_ % 3]
                    for connections in order:
                        before = quiet_workers(admin, setup.workers)
                        pids = group.pids()
                        cpu = cpu_seconds(pids)
                        run = run_client(address, calls=calls, connections=connections)
                        cpu = cpu_seconds(pids) - cpu
                        split = settled(admin, before, calls)
                        samples.append(Sample(setup.name, connections, round_, calls,
                                              run.calls_per_s, cpu / calls * 1e6, split,
                                              run.failed, run.errors))
                        print(f"round {round_ + 1}/{rounds} {setup.name:14} c={connections:<3}"
                              f" split {split} failed {run.failed} {run.errors or ''}",
                              file=sys.stderr, flush=True)
            finally:
                group.stop()
    finally:
        backends.stop()
    return samples


def summarize(samples: list[Sample]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for setup in dict.fromkeys(s.setup for s in samples):
        for connections in CONNECTIONS:
            group = [s for s in samples if s.setup == setup and s.connections == connections]
            if not group:
                continue
            shares = [s.busiest_share for s in group]
            rows.append({
                "setup": setup, "connections": connections,
                "busiest_share_median": statistics.median(shares), "busiest_share_max": max(shares),
                "calls_per_s": statistics.median(s.calls_per_s for s in group),
                "proxy_cpu_us": statistics.median(s.proxy_cpu_us for s in group),
                "failed": sum(s.failed for s in group),
                "calls": sum(s.calls for s in group),
            })
    return rows


def split_table(rows: list[dict[str, object]]) -> str:
    lines = [f"{'configuration':22} {'conns':>5} {'busiest worker':>15} {'(max)':>6} "
             f"{'calls/s':>8} {'CPU us/call':>11} {'failed':>12}"]
    for row in rows:
        lines.append(f"{row['setup']!s:22} {row['connections']!s:>5} "
                     f"{row['busiest_share_median']:>15.0%} {row['busiest_share_max']:>6.0%} "
                     f"{row['calls_per_s']:>8,.0f} {row['proxy_cpu_us']:>11.0f} "
                     f"{row['failed']!s:>5} of {row['calls']!s:<6}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench connections", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--age", default="1s", help="--max-connection-age of the second setup")
    parser.add_argument("--smoke", action="store_true", help="tiny counts, one round (CI)")
    add_results_argument(parser, "--out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.calls, args.rounds, args.age = 2000, 1, "200ms"
    return args


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        ensure_tools(["nginx", "h2load"])
    except ToolsMissingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    results = RunResults("connections", results_dir=args.results_dir)
    setups = [Setup("gproxy-w1", 1, None), Setup("gproxy-w2", 2, None),
              Setup(f"gproxy-w2-age-{args.age}", 2, args.age)]
    with tempfile.TemporaryDirectory(prefix="gproxy-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx workers run as an unprivileged user when started by root
        try:
            samples = measure(setups, calls=args.calls, rounds=args.rounds, work=work)
        except load.LoadError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    rows = summarize(samples)
    print(split_table(rows))
    results.write_json({"args": {k: str(v) for k, v in vars(args).items()}, "summary": rows,
                        "samples": [asdict(s) for s in samples]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
