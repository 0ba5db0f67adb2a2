"""Prometheus metrics, aggregated over all workers, rendered by the supervisor.

Workers count their calls in-process (`worker/stats.py`) and send the cumulative counts with
every status report on the bus (once a second, and once more as they exit). The supervisor
keeps each worker's latest report; when a worker has exited, its last report is folded into
the route's retired totals, so counters never go backwards across restarts. This is why
prometheus_client's multiprocess mode (mmap files shared by every process, cleaned up by pid)
is not used: no shared files, one place that bounds label cardinality; the price is that a
scrape may be up to a second behind, and a worker killed outright loses the counts of its last
second.

prometheus_client writes the text exposition format. Each scrape, the supervisor reads its
state into plain data (`CallCounters.totals()`, `SupervisorCounts`); `call_families` and
`supervisor_families` turn those into metric families (pure, tested with plain data); a
`SnapshotCollector` yields them from a private `CollectorRegistry`, never the global default
one, and `render_metrics` returns `generate_latest` of it. Everything runs on the supervisor's
event loop, in the admin server's request handler; nothing here blocks or keeps state between
scrapes besides `CallCounters`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from gproxy_mp.bus.schema import LATENCY_BUCKETS, CallCounts, TlsRefusal, TlsSide

RETIRE_DELAY = 3.0
"""Seconds after a worker's exit before its last report is folded into the retired totals:
its final report may still be on the way."""


class CallCounters:
    """Every worker's latest report plus the retired totals of exited workers, per route."""

    def __init__(self) -> None:
        self._latest: dict[int, tuple[str, CallCounts, int]] = {}  # pid → (route, counts, active)
        self._retired: dict[str, CallCounts] = {}
        self._retired_pids: set[int] = set()
        self._certificates: dict[int, Mapping[TlsSide, float]] = {}  # pid → side → notAfter

    def report(self, route: str, pid: int, stats: CallCounts, *, active: int,
               certificates: Mapping[TlsSide, float] | None = None) -> None:
        if pid in self._retired_pids:
            return
        self._latest[pid] = (route, stats, active)
        self._certificates[pid] = certificates or {}

    def retire(self, pid: int) -> None:
        """The worker has exited: keep its last counts, forget its active calls and the
        certificates it used."""
        self._retired_pids.add(pid)
        self._certificates.pop(pid, None)
        entry = self._latest.pop(pid, None)
        if entry is not None:
            self._retired.setdefault(entry[0], CallCounts()).add(entry[1])

    def worker_calls(self, pid: int | None) -> int:
        """Calls a running worker has finished, as of its latest report (0 if unknown)."""
        entry = self._latest.get(pid) if pid is not None else None
        return sum(entry[1].calls.values()) if entry else 0

    def certificate_expiry(self) -> dict[TlsSide, float]:
        """Per side: the earliest notAfter of the certificate chains running workers use (a
        worker that has not reloaded yet counts: its certificate is still served)."""
        expiry: dict[TlsSide, float] = {}
        for sides in self._certificates.values():
            for side, not_after in sides.items():
                expiry[side] = min(not_after, expiry.get(side, not_after))
        return expiry

    def totals(self) -> dict[str, tuple[CallCounts, int]]:
        """Per route: (cumulative counts, calls active now)."""
        totals: dict[str, tuple[CallCounts, int]] = {}
        for route, retired in self._retired.items():
            counts = CallCounts()
            counts.add(retired)
            totals[route] = (counts, 0)
        for route, counts, active in self._latest.values():
            total, running = totals.get(route, (CallCounts(), 0))
            total.add(counts)
            totals[route] = (total, running + active)
        return totals


@dataclass(frozen=True, slots=True)
class SupervisorCounts:
    """What the supervisor itself counts, as plain data read from its state at a scrape.

    Series come out in the mappings' order, except restarts, which are sorted."""

    endpoints: Mapping[str, int]  # route name → backends in its current set
    serving: Mapping[str, int]  # route name → worker processes serving it
    panic: Mapping[str, int]  # route name → 1 if a running worker of it is in panic, else 0
    worker_calls: Mapping[tuple[str, str], int]  # (route name, worker id) → calls finished
    restarts: Mapping[tuple[str, str], int]  # (route name, exit reason) → workers replaced
    resolver_updates: Mapping[str, int]  # target → changed endpoint sets
    resolver_errors: Mapping[str, int]  # target → failed lookups, lists or watches
    resolver_ages: Mapping[str, float]  # target → seconds since its source answered (if ever)
    bus_dropped: int
    version: str
    certificate_expiry: Mapping[TlsSide, float] = field(default_factory=dict)
    """side → the earliest notAfter of its certificate chains in use (`CallCounters`)"""


def call_families(totals: Mapping[str, tuple[CallCounts, int]]) -> list[Metric]:
    # --metrics-method-label is one setting for every worker: either all calls carry a method
    # or none does ("" in the counts), so the family has the method label or not at all.
    with_method = any(method for counts, _ in totals.values() for _, _, method, _ in counts.calls)
    calls = CounterMetricFamily(
        "gproxy_calls_total",
        "Calls forwarded, by route, backend (host:port), gRPC status code and the backend's "
        "locality (same_node, same_zone, other; none when locality is off).",
        labels=("route", "backend", "code", "locality", "method") if with_method
        else ("route", "backend", "code", "locality"))
    durations = HistogramMetricFamily(
        "gproxy_call_duration_seconds",
        "Call duration seen by the proxy, from request headers to status, by route.",
        labels=("route",))
    active = GaugeMetricFamily("gproxy_active_calls", "Calls in flight now, by route.",
                               labels=("route",))
    retries = CounterMetricFamily(
        "gproxy_retries_total",
        "Calls retried on another backend, by route and reason: connect (no connection to the "
        "backend), unavailable (it answered UNAVAILABLE), refused_stream (it refused the stream "
        "or sent GOAWAY; native plane only, gRPC retries those itself on the grpcio plane).",
        labels=("route", "reason"))
    handshakes = CounterMetricFamily(
        "gproxy_tls_handshake_failures_total",
        "TLS handshakes that failed (wrong name, untrusted or expired certificate, a client "
        "certificate missing or refused, a plaintext peer), by route and side: backend "
        "counts the call attempts (grpcio plane) or backend connects (native plane) that "
        "failed so; listener counts client connections (native plane only: grpcio cannot "
        "report them).",
        labels=("route", "side"))
    for route, (counts, running) in sorted(totals.items()):
        for (backend, code, method, locality), count in sorted(counts.calls.items()):
            calls.add_metric([route, backend, code, locality, method] if with_method
                             else [route, backend, code, locality], count)
        cumulative, buckets = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, math.inf), counts.buckets, strict=True):
            cumulative += count
            buckets.append(("+Inf" if math.isinf(bound) else repr(bound), cumulative))
        durations.add_metric([route], buckets, counts.duration_sum)
        for reason, count in sorted(counts.retries.items()):
            retries.add_metric([route, reason], count)
        active.add_metric([route], running)
        handshakes.add_metric([route, "backend"], counts.tls_failures)
        if counts.listener_tls_failures is not None:
            handshakes.add_metric([route, "listener"], counts.listener_tls_failures)
    return [calls, durations, active, retries, handshakes]


def tls_families(totals: Mapping[str, tuple[CallCounts, int]],
                 expiry: Mapping[TlsSide, float]) -> list[Metric]:
    """The certificates in use and the new TLS files refused, per side (the same files serve
    every route). Each side with a certificate has a refusal series per reason from the
    start, so that `increase()` sees the first refusal."""
    refused: dict[tuple[TlsSide, TlsRefusal], int] = {}
    for counts, _ in totals.values():
        for key, count in counts.tls_refused.items():
            refused[key] = refused.get(key, 0) + count
    expiring = GaugeMetricFamily(
        "gproxy_tls_certificate_expiry_timestamp_seconds",
        "notAfter (Unix seconds) of the certificate chain in use, by side (listener: "
        "--tls-cert, backend: --backend-cert); the earliest over workers and the chain.",
        labels=("side",))
    refusals = CounterMetricFamily(
        "gproxy_tls_reload_failures_total",
        "New versions of the TLS files a worker refused, keeping the material in use, by side "
        "and reason (expired, not_yet_valid, unusable); each worker counts on its own.",
        labels=("side", "reason"))
    for side in sorted(expiry.keys() | {side for side, _ in refused}):
        if side in expiry:
            expiring.add_metric([side.value], expiry[side])
        for reason in TlsRefusal:
            refusals.add_metric([side.value, reason.value], refused.get((side, reason), 0))
    return [expiring, refusals]


def supervisor_families(counts: SupervisorCounts) -> list[Metric]:
    endpoints = GaugeMetricFamily("gproxy_endpoints",
                                  "Backends in the route's current endpoint set.",
                                  labels=("route",))
    for route, size in counts.endpoints.items():
        endpoints.add_metric([route], size)
    serving = GaugeMetricFamily("gproxy_workers_serving", "Worker processes serving the route.",
                                labels=("route",))
    for route, workers in counts.serving.items():
        serving.add_metric([route], workers)
    panic = GaugeMetricFamily(
        "gproxy_route_panic",
        "1 while a worker of the route finds no backend passing its health check and sends "
        "calls to all of them (panic), else 0.", labels=("route",))
    for route, flag in counts.panic.items():
        panic.add_metric([route], flag)
    worker_calls = CounterMetricFamily(
        "gproxy_worker_calls_total",
        "Calls each worker process has finished (resets when it is replaced): how evenly "
        "connections spread the load.", labels=("route", "worker"))
    for (route, worker), calls in counts.worker_calls.items():
        worker_calls.add_metric([route, worker], calls)
    restarts = CounterMetricFamily(
        "gproxy_worker_restarts_total",
        "Workers replaced after an unexpected exit, by route and exit reason.",
        labels=("route", "reason"))
    for (route, reason), count in sorted(counts.restarts.items()):
        restarts.add_metric([route, reason], count)
    updates = _per_target(CounterMetricFamily(
        "gproxy_resolver_updates_total", "Changed endpoint sets a target's resolver produced.",
        labels=("target",)), counts.resolver_updates)
    errors = _per_target(CounterMetricFamily(
        "gproxy_resolver_errors_total", "Failed lookups, lists or watches of a target's resolver.",
        labels=("target",)), counts.resolver_errors)
    ages = _per_target(GaugeMetricFamily(
        "gproxy_resolver_seconds_since_success",
        "Seconds since the target's source (DNS, API server) last answered.",
        labels=("target",)), counts.resolver_ages)
    dropped = CounterMetricFamily("gproxy_bus_messages_dropped_total",
                                  "Malformed bus messages the supervisor received and dropped.",
                                  value=counts.bus_dropped)
    build = GaugeMetricFamily("gproxy_build_info", "The running gproxy-mp version.",
                              labels=("version",))
    build.add_metric([counts.version], 1)
    return [endpoints, serving, panic, worker_calls, restarts, updates, errors, ages, dropped,
            build]


def _per_target(family: CounterMetricFamily | GaugeMetricFamily,
                values: Mapping[str, float]) -> Metric:
    """`family` with one sample per target of `values`, in its order."""
    for target, value in values.items():
        family.add_metric([target], value)
    return family


class SnapshotCollector(Collector):
    """The families of one scrape's counts: a collector over data taken once, not live state."""

    def __init__(self, totals: Mapping[str, tuple[CallCounts, int]],
                 supervisor: SupervisorCounts) -> None:
        self._totals = totals
        self._supervisor = supervisor

    def collect(self) -> Iterable[Metric]:
        yield from call_families(self._totals)
        yield from tls_families(self._totals, self._supervisor.certificate_expiry)
        yield from supervisor_families(self._supervisor)


def render_metrics(totals: Mapping[str, tuple[CallCounts, int]],
                   supervisor: SupervisorCounts) -> str:
    """The text exposition format (0.0.4) of one scrape's counts.

    A private registry, never the global default one, which holds this process's gc, platform
    and process collectors and whatever else an import registers. One per scrape, around that
    scrape's counts: rendering stays a function of plain data."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(totals, supervisor))
    return generate_latest(registry).decode()
