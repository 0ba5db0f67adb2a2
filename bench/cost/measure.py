"""One measurement: a load run and a one-at-a-time run of one workload through one path.

The proxy's and the backends' CPU time are read from /proc before and after the load run (the
pid lists are taken once before it: gproxy-mp's supervisor and workers, nginx's masters and
workers); the load generator's comes from the run itself; ``other`` is what the whole machine
was busy with meanwhile minus those three, i.e. the harness, the load generator's start-up and
whatever else shares the box. The one-at-a-time run follows at once, for latency only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.cost.report import Sample
from bench.rig import load
from bench.rig.peers import Config, Group
from bench.rig.workloads import Workload
from harness.procfacts import cpu_seconds, machine_busy_seconds


@dataclass(frozen=True)
class Plan:
    """Counts for one workload: calls under load and calls one at a time."""

    calls: int
    single_calls: int
    rate: int | None = None
    """Calls/s the unary load offers in all (h2load --rps); None: as fast as the path goes."""


def run_once(config: Config, workload: Workload, plan: Plan, *, body: Path, log: Path,
             one_at_a_time: bool = False) -> load.Run:
    if workload.streaming:
        return load.stream(config.address, calls=plan.single_calls if one_at_a_time
                           else plan.calls, one_at_a_time=one_at_a_time, ca=config.tls)
    return load.h2load(config.address, workload, body=body, log=log, one_at_a_time=one_at_a_time,
                       calls=plan.single_calls if one_at_a_time else plan.calls,
                       rate=None if one_at_a_time else plan.rate, tls=config.tls is not None)


def measure(config: Config, workload: Workload, plan: Plan, *, backends: Group, body: Path,
            log: Path, round_: int) -> Sample:
    proxy_pids = config.proxy.pids() if config.proxy else []
    backend_pids = backends.pids()
    before = (cpu_seconds(proxy_pids), cpu_seconds(backend_pids), machine_busy_seconds())
    run = run_once(config, workload, plan, body=body, log=log)
    after = (cpu_seconds(proxy_pids), cpu_seconds(backend_pids), machine_busy_seconds())
    proxy, backend, busy = (a - b for a, b in zip(after, before, strict=True))
    single = run_once(config, workload, plan, body=body, log=log, one_at_a_time=True)
    per_call = 1e6 / run.calls
    return Sample(
        workload=workload.name, config=config.name, round=round_, calls=run.calls,
        seconds=run.seconds, rate=run.rate,
        cpu_us={"loadgen": run.loadgen_cpu * per_call, "backends": backend * per_call,
                "proxy": proxy * per_call,
                "other": max(0.0, busy - proxy - backend - run.loadgen_cpu) * per_call},
        load_p50=load.percentile(run.latencies_us, 0.50),
        load_p99=load.percentile(run.latencies_us, 0.99),
        single_p50=load.percentile(single.latencies_us, 0.50),
        single_p99=load.percentile(single.latencies_us, 0.99))
