"""Results: one ``Sample`` per (workload, configuration, round); medians, tables, JSON.

Pure functions of the samples. A sample holds the load run's calls/s,
CPU µs per call of each process group (load generator, backends, proxy, and ``other``: what
the rest of the machine burned meanwhile, a noise gauge on a shared box), the latency
percentiles under load, and those of the one-at-a-time run that followed it.

Ratios: calls/s against ``direct`` and against ``nginx``, and proxy CPU per call against
``nginx`` (the reference proxy that sits in the same place in the path). A TLS configuration
(name ending ``-tls``: TLS on both hops) is compared with its like, ``direct-tls`` and
``nginx-tls``, when those ran; ``tls_lines`` sets each one's proxy CPU per call beside its
plaintext configuration's.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from bench.table import format_table

GROUPS = ("loadgen", "backends", "proxy", "other")
"""CPU columns, in print order."""
DIRECT, NGINX = "direct", "nginx"
TLS = "-tls"
"""Name suffix of a configuration with TLS on both hops (``bench.rig.peers.TLS_CONFIGS``)."""


@dataclass(frozen=True)
class Sample:
    workload: str
    config: str
    round: int
    calls: int
    seconds: float
    rate: float
    cpu_us: dict[str, float]
    """CPU µs per call by group (see GROUPS)."""
    load_p50: float
    load_p99: float
    single_p50: float
    single_p99: float


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class Summary:
    rate: Spread
    cpu_us: dict[str, Spread]
    load_p50: float
    load_p99: float
    single_p50: float
    single_p99: float
    rounds: int


def summarize(samples: list[Sample]) -> dict[str, dict[str, Summary]]:
    """``{workload: {config: Summary}}``: medians over rounds, in first-seen order."""
    grouped: dict[str, dict[str, list[Sample]]] = {}
    for sample in samples:
        grouped.setdefault(sample.workload, {}).setdefault(sample.config, []).append(sample)
    return {
        workload: {
            config: Summary(
                rate=Spread.of([s.rate for s in runs]),
                cpu_us={g: Spread.of([s.cpu_us[g] for s in runs]) for g in GROUPS},
                load_p50=statistics.median(s.load_p50 for s in runs),
                load_p99=statistics.median(s.load_p99 for s in runs),
                single_p50=statistics.median(s.single_p50 for s in runs),
                single_p99=statistics.median(s.single_p99 for s in runs),
                rounds=len(runs))
            for config, runs in configs.items()}
        for workload, configs in grouped.items()}


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _spread(spread: Spread) -> str:
    return f"{_num(spread.median)} ({_num(spread.low)}-{_num(spread.high)})"


def _ratio(value: float, reference: float | None) -> str:
    return "-" if not reference else f"{value / reference:.3f}"


HEADER = ("configuration", "calls/s (min-max)", "proxy CPU µs/call (min-max)",
          "1-at-a-time p50/p99 µs", "load p50/p99 µs", "CPU µs/call gen/backends/proxy/other",
          "calls/s ÷direct", "calls/s ÷nginx", "proxy CPU ÷nginx")


def table(summaries: dict[str, Summary], *, has_proxy: dict[str, bool]) -> str:
    """An aligned text table, header first, one row per configuration; a ``-tls`` row's ratios
    are against ``direct-tls`` and ``nginx-tls``."""
    rows: list[tuple[str, ...]] = [HEADER]
    for config, s in summaries.items():
        suffix = TLS if config.endswith(TLS) else ""
        direct, nginx = summaries.get(DIRECT + suffix), summaries.get(NGINX + suffix)
        cpu = s.cpu_us["proxy"]
        rows.append((
            config, _spread(s.rate), _spread(cpu) if has_proxy[config] else "-",
            f"{_num(s.single_p50)} / {_num(s.single_p99)}",
            f"{_num(s.load_p50)} / {_num(s.load_p99)}",
            " / ".join(_num(s.cpu_us[g].median) for g in GROUPS),
            _ratio(s.rate.median, direct.rate.median if direct else None),
            _ratio(s.rate.median, nginx.rate.median if nginx else None),
            _ratio(cpu.median, nginx.cpu_us["proxy"].median if nginx and has_proxy[config]
                   else None)))
    return format_table(rows, numbers_right=True)


def document(*, meta: dict[str, Any], checks: dict[str, dict[str, str]],
             samples: list[Sample], summaries: dict[str, dict[str, Summary]]) -> dict[str, Any]:
    """The results file's content (``bench.results`` writes it)."""
    return {
        "meta": meta,
        "checks": checks,
        "summary": {w: {c: asdict(s) for c, s in configs.items()}
                    for w, configs in summaries.items()},
        "samples": [asdict(sample) for sample in samples],
    }


def sizing(summaries: dict[str, Summary], *, has_proxy: dict[str, bool]) -> str:
    """One line per proxy: its median CPU per call as cores per 1,000 calls/s and calls/s per
    core (what one core would carry if the proxy had it all)."""
    lines = []
    width = max([12, *(len(config) for config in summaries)])
    for config, s in summaries.items():
        cpu = s.cpu_us["proxy"].median
        if has_proxy[config] and cpu > 0:
            lines.append(f"  {config:{width}} {cpu / 1000:.3f} cores per 1,000 calls/s, "
                         f"{1e6 / cpu:,.0f} calls/s per core")
    return "\n".join(lines)


def tls_lines(summaries: dict[str, Summary]) -> str:
    """One line per proxy that ran both in clear and with TLS on both hops (``NAME`` and
    ``NAME-tls``): the median proxy CPU µs per call of each, and what TLS adds."""
    lines = []
    for config, s in summaries.items():
        plain = summaries.get(config.removesuffix(TLS))
        if not config.endswith(TLS) or plain is None or config == DIRECT + TLS:
            continue
        with_tls, without = s.cpu_us["proxy"].median, plain.cpu_us["proxy"].median
        added = f"{(with_tls / without - 1) * 100:+.0f}%" if without > 0 else "-"
        lines.append(f"  TLS on both hops: {config} {_num(with_tls)} µs/call vs "
                     f"{config.removesuffix(TLS)} {_num(without)} µs/call ({added})")
    return "\n".join(lines)
