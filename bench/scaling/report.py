"""The summary and table of ``python -m bench scaling``, from its samples.

Pure: per proxy and worker count, the medians over rounds (calls/s with min and max, µs of
proxy CPU per call, the backends' and h2load's), calls/s per worker core, and the efficiency
against the same proxy's 1-worker median; the table puts the proxies side by side, one row
per worker count.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.table import format_table


@dataclass(frozen=True)
class Sample:
    proxy: str
    workers: int
    round: int
    calls: int
    connections: int
    seconds: float
    calls_per_s: float
    proxy_cpu_us: float
    backends_cpu_us: float
    loadgen_cpu_us: float
    other_cpu_us: float


def summarize(samples: list[Sample]) -> list[dict[str, object]]:
    """Per proxy and worker count: medians (and min-max) over rounds, calls/s per worker core
    and the efficiency against the proxy's 1-worker median (None without a 1-worker figure)."""
    rows: list[dict[str, object]] = []
    keys = sorted({(s.proxy, s.workers) for s in samples}, key=lambda k: (k[1], k[0]))
    medians = {key: statistics.median(s.calls_per_s for s in samples
                                      if (s.proxy, s.workers) == key) for key in keys}
    for proxy, workers in keys:
        group = [s for s in samples if (s.proxy, s.workers) == (proxy, workers)]
        rate = medians[(proxy, workers)]
        base = medians.get((proxy, 1))
        rows.append({
            "proxy": proxy, "workers": workers, "rounds": len(group),
            "calls_per_s": rate, "calls_per_s_min": min(s.calls_per_s for s in group),
            "calls_per_s_max": max(s.calls_per_s for s in group),
            "proxy_cpu_us": statistics.median(s.proxy_cpu_us for s in group),
            "backends_cpu_us": statistics.median(s.backends_cpu_us for s in group),
            "loadgen_cpu_us": statistics.median(s.loadgen_cpu_us for s in group),
            "calls_per_s_per_core": rate / workers,
            "efficiency": rate / (workers * base) if base else None,
        })
    return rows


def table(rows: list[dict[str, object]], proxies: list[str]) -> str:
    metrics = ("calls/s", "µs CPU/call", "calls/s/core", "vs 1 worker")
    header = ["", *(name if i == 0 else "" for name in proxies for i in range(len(metrics)))]
    lines = [header, ["workers", *(m for _ in proxies for m in metrics)]]
    by_key = {(row["proxy"], row["workers"]): row for row in rows}
    for workers in sorted({int(str(row["workers"])) for row in rows}):
        line = [str(workers)]
        for name in proxies:
            row = by_key.get((name, workers))
            if row is None:
                line += ["-"] * len(metrics)
                continue
            efficiency = row["efficiency"]
            line += [f"{row['calls_per_s']:,.0f}", f"{row['proxy_cpu_us']:.0f}",
                     f"{row['calls_per_s_per_core']:,.0f}",
                     f"{efficiency:.0%}" if isinstance(efficiency, float) else "-"]
        lines.append(line)
    return format_table(lines, numbers_right=True)
