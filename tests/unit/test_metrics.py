"""Call counters: per-worker counting, aggregation over workers, and the text format."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from gproxy_mp.bus.schema import LATENCY_BUCKETS, CallCounts, TlsRefusal, TlsSide
from gproxy_mp.supervisor.metrics import (
    CallCounters,
    SupervisorCounts,
    render_metrics,
)
from gproxy_mp.worker.stats import (
    MAX_BACKENDS,
    MAX_METHODS,
    OTHER_BACKEND,
    OTHER_METHOD,
    CallStats,
)

ROUTE = "127.0.0.1:5000"
TARGET = "dns:///backends.example:50051"
SUPERVISOR = SupervisorCounts(
    endpoints={ROUTE: 2}, serving={ROUTE: 1}, panic={ROUTE: 1}, worker_calls={(ROUTE, "0#0"): 5},
    restarts={(ROUTE, "signal_SIGKILL"): 1}, resolver_updates={TARGET: 3},
    resolver_errors={TARGET: 1}, resolver_ages={TARGET: 0.5}, bus_dropped=2, version="0.1.0")
"""One value for every family the supervisor counts itself."""

FAMILIES = {  # name → (type, label names), as in README.md's table
    "gproxy_calls_total": ("counter", {"route", "backend", "code", "locality"}),
    "gproxy_call_duration_seconds": ("histogram", {"route"}),
    "gproxy_active_calls": ("gauge", {"route"}),
    "gproxy_retries_total": ("counter", {"route", "reason"}),
    "gproxy_tls_handshake_failures_total": ("counter", {"route", "side"}),
    "gproxy_tls_certificate_expiry_timestamp_seconds": ("gauge", {"side"}),
    "gproxy_tls_reload_failures_total": ("counter", {"side", "reason"}),
    "gproxy_endpoints": ("gauge", {"route"}),
    "gproxy_workers_serving": ("gauge", {"route"}),
    "gproxy_route_panic": ("gauge", {"route"}),
    "gproxy_worker_calls_total": ("counter", {"route", "worker"}),
    "gproxy_worker_restarts_total": ("counter", {"route", "reason"}),
    "gproxy_resolver_updates_total": ("counter", {"target"}),
    "gproxy_resolver_errors_total": ("counter", {"target"}),
    "gproxy_resolver_seconds_since_success": ("gauge", {"target"}),
    "gproxy_bus_messages_dropped_total": ("counter", set()),
    "gproxy_build_info": ("gauge", {"version"}),
}


def stats_of(*calls: tuple[str, str, float], retries: int = 0) -> CallCounts:
    stats = CallStats()
    for backend, code, seconds in calls:
        stats.record_call(backend, code, seconds)
    for _ in range(retries):
        stats.record_retry("unavailable")
    return stats.snapshot()


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the series `name` with exactly `labels` in the exposition `text`."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def render(counters: CallCounters, supervisor: SupervisorCounts = SUPERVISOR) -> str:
    return render_metrics(counters.totals(), replace(
        supervisor, certificate_expiry=counters.certificate_expiry()))


def test_a_worker_counts_calls_by_backend_and_code_and_buckets_their_duration() -> None:
    snapshot = stats_of(("10.0.0.1:1", "OK", 0.002), ("10.0.0.1:1", "OK", 0.2),
                        ("10.0.0.2:1", "UNAVAILABLE", 100.0))
    assert snapshot.calls == {("10.0.0.1:1", "OK", "", "none"): 2,
                              ("10.0.0.2:1", "UNAVAILABLE", "", "none"): 1}
    buckets = snapshot.buckets
    assert buckets[LATENCY_BUCKETS.index(0.0025)] == 1
    assert buckets[LATENCY_BUCKETS.index(0.25)] == 1
    assert buckets[-1] == 1  # beyond the last bound: +Inf only


def test_backends_beyond_the_cardinality_bound_are_counted_as_other() -> None:
    stats = CallStats()
    for index in range(MAX_BACKENDS + 5):
        stats.record_call(f"10.0.{index // 256}.{index % 256}:1", "OK", 0.001)
    backends = {backend for backend, _, _, _ in stats.calls}
    assert len(backends) == MAX_BACKENDS + 1
    assert stats.calls[(OTHER_BACKEND, "OK", "", "none")] == 5


def test_counts_of_live_workers_are_summed_per_route() -> None:
    counters = CallCounters()
    counters.report(ROUTE, 101, stats_of(("b:1", "OK", 0.001)), active=2)
    counters.report(ROUTE, 102, stats_of(("b:1", "OK", 0.001), ("b:1", "OK", 0.001)), active=1)
    counts, active = counters.totals()[ROUTE]
    assert counts.calls == {("b:1", "OK", "", "none"): 3}
    assert active == 3


def test_a_newer_report_of_a_worker_replaces_its_older_one() -> None:
    counters = CallCounters()
    counters.report(ROUTE, 101, stats_of(("b:1", "OK", 0.001)), active=0)
    counters.report(ROUTE, 101, stats_of(("b:1", "OK", 0.001), ("b:1", "OK", 0.001)), active=0)
    assert counters.totals()[ROUTE][0].calls == {("b:1", "OK", "", "none"): 2}


def test_an_exited_workers_counts_are_kept_and_its_late_reports_ignored() -> None:
    counters = CallCounters()
    counters.report(ROUTE, 101, stats_of(("b:1", "OK", 0.001)), active=4)
    counters.retire(101)
    counters.report(ROUTE, 101, stats_of(), active=9)  # arrives after retirement: ignored
    counters.report(ROUTE, 202, stats_of(("b:1", "OK", 0.001)), active=1)  # the replacement
    counts, active = counters.totals()[ROUTE]
    assert counts.calls == {("b:1", "OK", "", "none"): 2}
    assert active == 1


def test_each_running_workers_calls_are_told_apart() -> None:
    counters = CallCounters()
    counters.report(ROUTE, 101, stats_of(("b:1", "OK", 0.001), ("b:2", "UNAVAILABLE", 0.1)),
                    active=0)
    counters.report(ROUTE, 102, stats_of(("b:1", "OK", 0.001)), active=0)
    assert (counters.worker_calls(101), counters.worker_calls(102)) == (2, 1)
    counters.retire(101)
    assert counters.worker_calls(101) == 0  # gone: its calls live on in the route's totals
    assert counters.worker_calls(None) == 0


def test_a_snapshot_is_a_copy_that_later_calls_do_not_change() -> None:
    stats = CallStats()
    stats.record_call("b:1", "OK", 0.001)
    snapshot = stats.snapshot()
    stats.record_call("b:1", "OK", 0.001)
    stats.record_retry("unavailable")
    assert snapshot.calls == {("b:1", "OK", "", "none"): 1}
    assert sum(snapshot.buckets) == 1 and snapshot.retries == {}


def test_the_histogram_is_rendered_cumulative_with_sum_and_count() -> None:
    counters = CallCounters()
    counters.report(ROUTE, 1, stats_of(("b:1", "OK", 0.0005), ("b:1", "OK", 0.3),
                                       retries=2), active=0)
    text = render(counters)
    bucket = "gproxy_call_duration_seconds_bucket"
    assert value(text, bucket, route=ROUTE, le="0.001") == 1
    assert value(text, bucket, route=ROUTE, le="0.25") == 1
    assert value(text, bucket, route=ROUTE, le="0.5") == 2
    assert value(text, bucket, route=ROUTE, le="+Inf") == 2
    assert value(text, "gproxy_call_duration_seconds_count", route=ROUTE) == 2
    assert value(text, "gproxy_call_duration_seconds_sum", route=ROUTE) == pytest.approx(0.3005)
    assert value(text, "gproxy_calls_total", route=ROUTE, backend="b:1", code="OK",
                 locality="none") == 2
    assert value(text, "gproxy_retries_total", route=ROUTE, reason="unavailable") == 2
    assert "# TYPE gproxy_call_duration_seconds histogram" in text.splitlines()


def test_every_family_keeps_its_name_type_and_labels() -> None:
    counters = CallCounters()
    counters.report(ROUTE, 1, stats_of(("b:1", "OK", 0.001), retries=1), active=1,
                    certificates={TlsSide.LISTENER: 1.8e9})
    text = render(counters)
    types = dict(line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE "))
    assert types == {name: kind for name, (kind, _) in FAMILIES.items()}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" else "")
        assert family.samples, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == FAMILIES[name][1], sample
    assert "_created" not in text  # no created timestamps: counters restart with the process


def test_the_supervisors_own_counts_are_rendered() -> None:
    text = render(CallCounters())
    assert value(text, "gproxy_endpoints", route=ROUTE) == 2
    assert value(text, "gproxy_workers_serving", route=ROUTE) == 1
    assert value(text, "gproxy_route_panic", route=ROUTE) == 1
    assert value(text, "gproxy_worker_calls_total", route=ROUTE, worker="0#0") == 5
    assert value(text, "gproxy_worker_restarts_total", route=ROUTE, reason="signal_SIGKILL") == 1
    assert value(text, "gproxy_resolver_updates_total", target=TARGET) == 3
    assert value(text, "gproxy_resolver_errors_total", target=TARGET) == 1
    assert value(text, "gproxy_resolver_seconds_since_success", target=TARGET) == 0.5
    assert value(text, "gproxy_bus_messages_dropped_total") == 2
    assert value(text, "gproxy_build_info", version="0.1.0") == 1


def test_the_default_registry_is_left_alone() -> None:
    text = render(CallCounters())
    assert all(f.name.startswith("gproxy_") for f in text_string_to_metric_families(text))
    assert REGISTRY.get_sample_value("gproxy_build_info", {"version": "0.1.0"}) is None


@pytest.mark.parametrize(("seconds", "text"), [
    (3, "3.0"), (2.5, "2.5"), (math.inf, "+Inf"), (0.0, "0.0"), (1234567.0, "1.234567e+06"),
])
def test_sample_values_are_rendered_in_the_text_format(seconds: float, text: str) -> None:
    supervisor = replace(SUPERVISOR, resolver_ages={"t": seconds})
    rendered = render(CallCounters(), supervisor)
    assert f'gproxy_resolver_seconds_since_success{{target="t"}} {text}' in rendered.splitlines()
    assert value(rendered, "gproxy_resolver_seconds_since_success", target="t") == seconds


def test_label_values_are_escaped() -> None:
    target = 'q"\\\n'
    supervisor = replace(SUPERVISOR, resolver_updates={target: 1})
    rendered = render(CallCounters(), supervisor)
    assert 'gproxy_resolver_updates_total{target="q\\"\\\\\\n"} 1.0' in rendered.splitlines()
    assert value(rendered, "gproxy_resolver_updates_total", target=target) == 1


def test_calls_are_counted_by_the_locality_of_their_backend() -> None:
    stats = CallStats()
    stats.record_call("b:1", "OK", 0.001, locality="same_node")
    stats.record_call("b:2", "OK", 0.001, locality="other")
    stats.record_call("b:2", "OK", 0.001, locality="other")
    counters = CallCounters()
    counters.report(ROUTE, 1, stats.snapshot(), active=0)
    text = render(counters)
    assert value(text, "gproxy_calls_total", route=ROUTE, backend="b:1", code="OK",
                 locality="same_node") == 1
    assert value(text, "gproxy_calls_total", route=ROUTE, backend="b:2", code="OK",
                 locality="other") == 2


def test_the_method_label_is_opt_in_and_bounded() -> None:
    plain = CallStats()
    plain.record_call("b:1", "OK", 0.001, "/pkg.Svc/A")
    assert plain.calls == {("b:1", "OK", "", "none"): 1}
    labelled = CallStats(method_label=True)
    for index in range(MAX_METHODS + 3):
        labelled.record_call("b:1", "OK", 0.001, f"/pkg.Svc/M{index}")
    assert labelled.calls[("b:1", "OK", OTHER_METHOD, "none")] == 3
    counters = CallCounters()
    counters.report(ROUTE, 1, labelled.snapshot(), active=0)
    text = render(counters)
    assert value(text, "gproxy_calls_total", route=ROUTE, backend="b:1", code="OK",
                 locality="none", method="/pkg.Svc/M0") == 1
    assert value(text, "gproxy_calls_total", route=ROUTE, backend="b:1", code="OK",
                 locality="none", method=OTHER_METHOD) == 3


def refused(*refusals: tuple[TlsSide, TlsRefusal]) -> CallCounts:
    stats = CallStats()
    for side, reason in refusals:
        stats.record_tls_refused(side, reason)
    return stats.snapshot()


def test_the_certificate_expiry_is_the_earliest_over_running_workers() -> None:
    counters = CallCounters()
    counters.report(ROUTE, 1, CallCounts(), active=0,
                    certificates={TlsSide.LISTENER: 2000.0, TlsSide.BACKEND: 3000.0})
    counters.report("other-route", 2, CallCounts(), active=0,
                    certificates={TlsSide.LISTENER: 1000.0})  # not reloaded yet
    text = render(counters)
    expiry = "gproxy_tls_certificate_expiry_timestamp_seconds"
    assert value(text, expiry, side="listener") == 1000.0
    assert value(text, expiry, side="backend") == 3000.0
    counters.retire(2)  # an exited worker's certificate is no longer in use
    assert value(render(counters), expiry, side="listener") == 2000.0


def test_refused_tls_files_are_summed_over_workers_and_kept_after_they_exit() -> None:
    counters = CallCounters()
    counters.report(ROUTE, 1, refused((TlsSide.LISTENER, TlsRefusal.EXPIRED)), active=0,
                    certificates={TlsSide.LISTENER: 1.0})
    counters.report(ROUTE, 2, refused((TlsSide.LISTENER, TlsRefusal.EXPIRED),
                                      (TlsSide.BACKEND, TlsRefusal.UNUSABLE)), active=0)
    counters.retire(2)
    text = render(counters)
    failures = "gproxy_tls_reload_failures_total"
    assert value(text, failures, side="listener", reason="expired") == 2
    assert value(text, failures, side="backend", reason="unusable") == 1
    assert value(text, failures, side="listener", reason="not_yet_valid") == 0


def test_a_side_with_a_certificate_has_every_refusal_series_from_the_start() -> None:
    counters = CallCounters()
    counters.report(ROUTE, 1, CallCounts(), active=0, certificates={TlsSide.BACKEND: 1.0})
    text = render(counters)
    for reason in TlsRefusal:
        assert value(text, "gproxy_tls_reload_failures_total", side="backend",
                     reason=reason.value) == 0
    assert value(text, "gproxy_tls_reload_failures_total", side="listener",
                 reason="expired") is None


def test_failed_listener_handshakes_are_a_series_only_where_a_worker_could_see_them() -> None:
    """The native plane reports them (summed over its workers); the grpcio plane cannot, and
    a series of zeros would claim it saw none."""
    counters = CallCounters()
    counters.report(ROUTE, 101, stats_of(), active=0)
    assert value(render(counters), "gproxy_tls_handshake_failures_total",
                 route=ROUTE, side="listener") is None
    for pid, failures in ((102, 2), (103, 3)):
        counters.report(ROUTE, pid, replace(stats_of(), listener_tls_failures=failures),
                        active=0)
    text = render(counters)
    assert value(text, "gproxy_tls_handshake_failures_total", route=ROUTE,
                 side="listener") == 5
    assert value(text, "gproxy_tls_handshake_failures_total", route=ROUTE, side="backend") == 0
