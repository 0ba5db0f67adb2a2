"""Prometheus metrics, aggregated over all workers, rendered by the supervisor.

Workers count their calls in-process (`worker/stats.py`) and send the cumulative counts with
every status report on the bus (once a second, and once more as they exit). The supervisor
keeps each worker's latest report; when a worker has exited, its last report is folded into
the route's retired totals, so counters never go backwards across restarts. This replaces
prometheus_client's multiprocess mode (mmap files shared by every process, cleaned up by pid):
no shared files, no extra dependency, one place that bounds label cardinality; the price is
that a scrape may be up to a second behind, and a worker killed outright loses the counts of
its last second.

Pure rendering: `render_metrics` takes plain values and returns the text exposition format.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gproxy_mp.worker.stats import LATENCY_BUCKETS

RETIRE_DELAY = 3.0
"""Seconds after a worker's exit before its last report is folded into the retired totals:
its final report may still be on the way."""


@dataclass(slots=True)
class RouteCounts:
    """Cumulative counts of one route, from one worker's report or summed over several."""

    calls: dict[tuple[str, str, str], int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    duration_sum: float = 0.0
    retries: dict[str, int] = field(default_factory=dict)

    def add(self, other: RouteCounts) -> None:
        for key, count in other.calls.items():
            self.calls[key] = self.calls.get(key, 0) + count
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.duration_sum += other.duration_sum
        for reason, count in other.retries.items():
            self.retries[reason] = self.retries.get(reason, 0) + count

    @classmethod
    def from_report(cls, stats: Mapping[str, Any]) -> RouteCounts:
        """Counts from a worker's `CallStats.snapshot()`; malformed parts are ignored."""
        counts = cls()
        calls = stats.get("calls")
        for entry in calls if isinstance(calls, list) else []:
            if isinstance(entry, list) and len(entry) in (3, 4) and isinstance(entry[2], int):
                method = str(entry[3]) if len(entry) == 4 else ""
                counts.calls[(str(entry[0]), str(entry[1]), method)] = entry[2]
        buckets = stats.get("buckets")
        if (isinstance(buckets, list) and len(buckets) == len(counts.buckets)
                and all(isinstance(b, int) for b in buckets)):
            counts.buckets = list(buckets)
        duration = stats.get("duration_sum")
        if isinstance(duration, int | float):
            counts.duration_sum = float(duration)
        retries = stats.get("retries")
        if isinstance(retries, dict):
            counts.retries = {str(k): int(v) for k, v in retries.items() if isinstance(v, int)}
        return counts


class CallCounters:
    """Every worker's latest report plus the retired totals of exited workers, per route."""

    def __init__(self) -> None:
        self._latest: dict[int, tuple[str, RouteCounts, int]] = {}  # pid → (route, counts, active)
        self._retired: dict[str, RouteCounts] = {}
        self._retired_pids: set[int] = set()

    def report(self, route: str, pid: int, stats: Mapping[str, Any], *, active: int) -> None:
        if pid in self._retired_pids:
            return
        self._latest[pid] = (route, RouteCounts.from_report(stats), active)

    def retire(self, pid: int) -> None:
        """The worker has exited: keep its last counts, forget its active calls."""
        self._retired_pids.add(pid)
        entry = self._latest.pop(pid, None)
        if entry is not None:
            self._retired.setdefault(entry[0], RouteCounts()).add(entry[1])

    def worker_calls(self, pid: int | None) -> int:
        """Calls a running worker has finished, as of its latest report (0 if unknown)."""
        entry = self._latest.get(pid) if pid is not None else None
        return sum(entry[1].calls.values()) if entry else 0

    def totals(self) -> dict[str, tuple[RouteCounts, int]]:
        """Per route: (cumulative counts, calls active now)."""
        totals: dict[str, tuple[RouteCounts, int]] = {}
        for route, retired in self._retired.items():
            counts = RouteCounts()
            counts.add(retired)
            totals[route] = (counts, 0)
        for route, counts, active in self._latest.values():
            total, running = totals.get(route, (RouteCounts(), 0))
            total.add(counts)
            totals[route] = (total, running + active)
        return totals


@dataclass(frozen=True, slots=True)
class Sample:
    labels: tuple[tuple[str, str], ...]
    value: float
    suffix: str = ""  # "_bucket", "_sum", "_count" for histogram series


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: str  # counter, gauge, histogram
    help: str
    samples: tuple[Sample, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() else repr(value)


def render_families(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for sample in family.samples:
            name = family.name + sample.suffix
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in sample.labels)
            lines.append(f"{name}{{{rendered}}} {_format_value(sample.value)}" if rendered
                         else f"{name} {_format_value(sample.value)}")
    return "\n".join(lines) + "\n"


def call_families(totals: Mapping[str, tuple[RouteCounts, int]]) -> list[Family]:
    calls, buckets, retries, active = [], [], [], []
    for route, (counts, running) in sorted(totals.items()):
        for (backend, code, method), count in sorted(counts.calls.items()):
            labels = (("route", route), ("backend", backend), ("code", code))
            calls.append(Sample(labels + ((("method", method),) if method else ()), count))
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS, math.inf), counts.buckets, strict=True):
            cumulative += count
            le = "+Inf" if math.isinf(bound) else repr(bound)
            buckets.append(Sample((("route", route), ("le", le)), cumulative, "_bucket"))
        buckets.append(Sample((("route", route),), counts.duration_sum, "_sum"))
        buckets.append(Sample((("route", route),), cumulative, "_count"))
        for reason, count in sorted(counts.retries.items()):
            retries.append(Sample((("route", route), ("reason", reason)), count))
        active.append(Sample((("route", route),), running))
    return [
        Family("gproxy_calls_total", "counter",
               "Calls forwarded, by route, backend (host:port) and gRPC status code.",
               tuple(calls)),
        Family("gproxy_call_duration_seconds", "histogram",
               "Call duration seen by the proxy, from request headers to status, by route.",
               tuple(buckets)),
        Family("gproxy_active_calls", "gauge", "Calls in flight now, by route.", tuple(active)),
        Family("gproxy_retries_total", "counter",
               "Calls retried on another backend, by route and reason.", tuple(retries)),
    ]
