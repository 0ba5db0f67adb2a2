"""How gproxy-mp scales with its workers on each data plane, beside nginx with as many workers
(and the Go gproxy).

    .venv/bin/python -m bench scaling [--max-workers N] [--rounds 3] [--calls 20000]
                                      [--data-planes grpcio,native] [--go-gproxy PATH]
                                      [--smoke] [--results-dir DIR]

Splits the CPUs this process may use into physical cores (``bench.scaling.plan``): the proxy
under test gets about half (one logical CPU of each: SMT siblings stay idle), the
fixed-response nginx backends and h2load a quarter each (this process and the grpcio check
client run on h2load's cores too). Then for each worker count N = 1, 2, 4, ... up to the
proxy's cores it starts, each under ``taskset -c`` on the first N proxy cores:

- ``gproxy`` (``gproxy-wN``): ``gproxy-mp --workers N`` on the grpcio data plane (static
  target of every backend, admin port on loopback to see that all N workers are ready), the
  command line of ``bench cost``'s ``gproxy-wN`` (``bench.rig.configs``);
- ``gproxy-native`` (``gproxy-native-wN``): the same with ``--data-plane native``, as
  ``bench cost``'s ``gproxy-native-w1``; ``--data-planes`` picks the planes (both by default);
- ``nginx``: nginx ``grpc_pass`` with ``worker_processes N`` and ``reuseport``;
- ``go-gproxy`` (with ``--go-gproxy PATH``): the Go gproxy with ``GOMAXPROCS=N``, in front of
  the first backend only (it has no static resolver; as in ``bench cost``).

Every backend (``max(2, backend cores)`` nginx processes of one worker each) runs under
``taskset`` on one backend core; h2load runs under ``taskset`` on the load-generator cores with
one thread per core (``-t``) and ``max(8, 4 x N)`` connections (so that SO_REUSEPORT spreads
them over N workers), 16 calls in flight on each, ``N x --calls`` calls of the 100 B unary
workload per run. Each proxy is checked once with a real gRPC client (status and exact
messages; a proxy that fails is not measured), warmed up, then measured ``--rounds`` times,
the order of the proxies rotated each round. Per run: calls/s (h2load's) and CPU per call of
the proxy's whole process tree (utime+stime of every process, ``harness.procfacts``, before
and after), as ``bench cost`` bills it; the backends' and h2load's CPU per call are kept too.

Prints one table (medians over rounds): per worker count and proxy, calls/s, µs of proxy CPU
per call, calls/s per worker core, and the efficiency against the same proxy's one worker (so
per data plane: calls/s at N over N x calls/s at 1; 100% is linear scaling). With fewer than 3
usable cores the roles cannot have cores of their own: the plan overlaps them, a line says so,
and the figures measure contention, not scaling. Writes ``result.json`` (``bench.results``).

Exit 0 when every proxy passed its checks and every run, 1 otherwise, 3 when nginx, h2load or
taskset is missing and cannot be installed. Loopback only; every process it starts is stopped
by pid (``bench.rig.peers.Group``); every run and wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from bench.environment import environment
from bench.results import RunResults, add_results_argument
from bench.rig import load
from bench.rig.peers import Config, Group, ToolsMissingError, ensure_tools
from bench.rig.workloads import BY_NAME, write_backend_files, write_request_files
from bench.scaling.plan import CorePlan, plan_cores, read_siblings
from bench.scaling.proxies import (
    PLANES,
    READY_WAIT,
    Running,
    affinity,
    check,
    proxies_for,
    start_backends,
    start_proxy,
    taskset,
    worker_planes,
)
from bench.scaling.report import Sample, summarize, table
from harness.admin import quiet_worker_calls
from harness.procfacts import cpu_seconds, machine_busy_seconds

WORKLOAD = BY_NAME["unary-100B"]
WARM_UP_CALLS = 1000
"""Warm-up calls per worker (at most ``--calls`` per worker)."""


def connections_for(workers: int, threads: int) -> int:
    """h2load connections: enough for the kernel to spread over every worker, and at least one
    per h2load thread."""
    return max(8, 4 * workers, threads)


@dataclass(frozen=True)
class Load:
    plan: CorePlan
    backends: Group
    body: Path
    log: Path

    def run(self, config: Config, *, workers: int, calls: int) -> load.Run:
        threads = len(self.plan.loadgen)
        return load.h2load(config.address, WORKLOAD, body=self.body, calls=calls, log=self.log,
                           connections=connections_for(workers, threads), threads=threads,
                           prefix=taskset(self.plan.loadgen))

    def measure(self, running: Running, *, workers: int, calls: int, round_: int) -> Sample:
        proxy_pids, backend_pids = running.group.pids(), self.backends.pids()
        before = (cpu_seconds(proxy_pids), cpu_seconds(backend_pids), machine_busy_seconds())
        run = self.run(running.config, workers=workers, calls=calls)
        after = (cpu_seconds(proxy_pids), cpu_seconds(backend_pids), machine_busy_seconds())
        proxy, backends, busy = (a - b for a, b in zip(after, before, strict=True))
        per_call = 1e6 / run.calls
        return Sample(
            proxy=running.name, workers=workers, round=round_, calls=run.calls,
            connections=connections_for(workers, len(self.plan.loadgen)), seconds=run.seconds,
            calls_per_s=run.rate, proxy_cpu_us=proxy * per_call,
            backends_cpu_us=backends * per_call, loadgen_cpu_us=run.loadgen_cpu * per_call,
            other_cpu_us=max(0.0, busy - proxy - backends - run.loadgen_cpu) * per_call)


def step(work: Path, rig: Load, *, proxies: list[str], workers: int, args: argparse.Namespace,
         steps: dict[str, object], failures: list[str]) -> list[Sample]:
    """One worker count: start every proxy on its N cores, check, warm up, measure rounds."""
    cores = rig.plan.proxy_cores(workers)
    calls = args.calls * workers
    running: list[Running] = []
    samples: list[Sample] = []
    failed: set[str] = set()

    def fail(proxy: Running, what: str) -> None:
        failures.append(f"{proxy.name} / {workers} workers: {what}")
        failed.add(proxy.name)

    facts: dict[str, object] = {"cores": list(cores), "calls_per_run": calls,
                                "connections": connections_for(workers, len(rig.plan.loadgen))}
    steps[str(workers)] = facts
    try:
        for name in proxies:
            running.append(start_proxy(work, name, workers=workers, cores=cores,
                                       backends=rig.backends.address.split(","),
                                       go_gproxy=args.go_gproxy))
        live = []
        for proxy in running:
            outcome = check(proxy, workers, WORKLOAD.name)
            if outcome != "ok":
                fail(proxy, f"check failed: {outcome}")
                continue
            try:
                rig.run(proxy.config, workers=workers,
                        calls=min(args.calls, WARM_UP_CALLS) * workers)
            except load.LoadError as error:
                fail(proxy, f"warm-up: {error}")
                continue
            live.append(proxy)
        facts["affinity"] = {p.name: affinity(p.group) for p in running}
        for round_ in range(args.rounds):
            shift = round_ % max(1, len(live))
            for proxy in live[shift:] + live[:shift]:
                try:
                    samples.append(rig.measure(proxy, workers=workers, calls=calls,
                                               round_=round_))
                except load.LoadError as error:
                    fail(proxy, str(error))
                    live = [p for p in live if p is not proxy]
                print(f"{workers} worker(s) round {round_ + 1}/{args.rounds} {proxy.name:13} "
                      f"done", file=sys.stderr, flush=True)
        split: dict[str, list[int]] = {}  # how the kernel spread the step's calls (check,
        planes: dict[str, list[str]] = {}  # warm-up, rounds) over each plane's workers, and
        for proxy in running:  # the plane each worker's memory map shows
            if proxy.admin and proxy.name not in failed:
                calls_by_worker = quiet_worker_calls(proxy.admin, workers=workers,
                                                     timeout=READY_WAIT)
                split[proxy.name] = sorted(calls_by_worker.values(), reverse=True)
                planes[proxy.name] = worker_planes(proxy.admin)
        facts["calls_per_worker"], facts["worker_planes"] = split, planes
    finally:
        for proxy in running:
            proxy.group.stop()
    return [s for s in samples if s.proxy not in failed]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-workers", type=int, help="largest worker count (default: the "
                        "proxy's cores)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--calls", type=int, default=20_000, help="unary calls per run and "
                        "per worker: a run with N workers makes N x CALLS (20,000)")
    parser.add_argument("--data-planes", default=",".join(PLANES), metavar="PLANES",
                        help="gproxy-mp's data planes to measure, comma-separated, each at "
                        f"every worker count beside the others ({','.join(PLANES)}: both)")
    parser.add_argument("--go-gproxy", metavar="PATH", help="a Go gproxy binary "
                        "(kube-grpc-balancer's cmd/gproxy): measured too, with GOMAXPROCS=N")
    add_results_argument(parser)
    parser.add_argument("--smoke", action="store_true", help="CI check of the harness: "
                        "2,000 calls per worker, workers 1 and 2 only, 1 round")
    args = parser.parse_args(argv)
    args.data_planes = [plane for plane in args.data_planes.split(",") if plane]
    if not args.data_planes or set(args.data_planes) - set(PLANES):
        parser.error(f"--data-planes: one or more of {', '.join(PLANES)}")
    if args.smoke:
        args.calls, args.rounds = 2000, 1
        args.max_workers = min(2, args.max_workers or 2)
    if args.max_workers is not None and args.max_workers < 1:
        parser.error("--max-workers must be at least 1")
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be at least 1")
    if args.go_gproxy and (not Path(args.go_gproxy).is_file()
                           or not os.access(args.go_gproxy, os.X_OK)):
        parser.error(f"--go-gproxy {args.go_gproxy}: not an executable file")
    return args


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def first_line(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    return ((done.stdout or done.stderr).strip().splitlines() or ["?"])[0]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (a test's timeout) unwinds like Ctrl-C, so the finally blocks stop every peer.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if shutil.which("taskset") is None:
        print("error: taskset missing; install Debian package util-linux", file=sys.stderr)
        return 3
    try:
        ensure_tools(["nginx", "h2load"])
    except ToolsMissingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    usable = sorted(os.sched_getaffinity(0))
    plan = plan_cores(usable, max_workers=args.max_workers, siblings=read_siblings(usable))
    # This process and the grpcio check client run on h2load's cores, never on the proxy's.
    os.sched_setaffinity(0, plan.loadgen)
    proxies = proxies_for(args.data_planes, args.go_gproxy)
    results = RunResults("scaling", results_dir=args.results_dir)
    print(f"core plan: {plan.describe()}; worker counts {', '.join(map(str, plan.worker_counts))}",
          flush=True)
    loadavg_before = os.getloadavg()
    samples: list[Sample] = []
    failures: list[str] = []
    steps: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="gproxy-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx workers run as an unprivileged user when started by root
        write_backend_files(work / "www")
        body = write_request_files(work)[WORKLOAD.name]
        backends = start_backends(work, plan)
        try:
            rig = Load(plan, backends, body, work / "h2load.log")
            backend_affinity = affinity(backends)
            for workers in plan.worker_counts:
                samples += step(work, rig, proxies=proxies, workers=workers, args=args,
                                steps=steps, failures=failures)
        finally:
            backends.stop()
    rows = summarize(samples)
    print(f"\nscaling {results.run_id}: {WORKLOAD.title}, h2load -c max(8, 4 x N) -m "
          f"{load.STREAMS} -t {len(plan.loadgen)}, {args.calls:,} calls per worker per run, "
          f"medians of {args.rounds} interleaved round(s); 'vs 1 worker' is calls/s at N over "
          f"N x calls/s at 1 of the same proxy; gproxy is gproxy-mp's grpcio data plane, "
          f"gproxy-native its native one; go-gproxy's workers are GOMAXPROCS, in front of the "
          f"first backend only.")
    print(plan.describe())
    other = statistics.median(s.other_cpu_us for s in samples) if samples else 0.0
    print(f"load average {' '.join(f'{v:.2f}' for v in loadavg_before)} before, "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} after; CPU of everything else on "
          f"the machine during the runs, median {other:.0f} µs per call (calls/s moves with it)")
    print(table(rows, proxies))
    for line in failures:
        print(f"NOT REPORTED: {line}")
    print()
    results.write_json({
        "meta": {"started": results.run_id, "args": {k: str(v) if isinstance(v, Path) else v
                                                     for k, v in vars(args).items()},
                 "plan": {**asdict(plan), "describe": plan.describe()},
                 "backend_affinity": backend_affinity, "steps": steps, "failures": failures,
                 "environment": environment(
                     nginx=first_line(["nginx", "-v"]),
                     h2load=first_line(["h2load", "--version"]),
                     usable_cpus=usable,
                     loadavg_before=list(loadavg_before), loadavg_after=list(os.getloadavg()))},
        "summary": rows, "samples": [asdict(s) for s in samples]})
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
