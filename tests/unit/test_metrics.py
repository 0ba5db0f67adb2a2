"""Call counters: per-worker counting, aggregation over workers, and the text format."""

from __future__ import annotations

import math

import pytest

from gproxy_mp.supervisor.metrics import (
    CallCounters,
    Family,
    RouteCounts,
    Sample,
    call_families,
    render_families,
)
from gproxy_mp.worker.stats import (
    LATENCY_BUCKETS,
    MAX_BACKENDS,
    MAX_METHODS,
    OTHER_BACKEND,
    OTHER_METHOD,
    CallStats,
)

ROUTE = "127.0.0.1:5000"


def stats_of(*calls: tuple[str, str, float], retries: int = 0) -> dict[str, object]:
    stats = CallStats()
    for backend, code, seconds in calls:
        stats.record_call(backend, code, seconds)
    for _ in range(retries):
        stats.record_retry("unavailable")
    return stats.snapshot()


def test_a_worker_counts_calls_by_backend_and_code_and_buckets_their_duration() -> None:
    snapshot = stats_of(("10.0.0.1:1", "OK", 0.002), ("10.0.0.1:1", "OK", 0.2),
                        ("10.0.0.2:1", "UNAVAILABLE", 100.0))
    assert sorted(map(tuple, snapshot["calls"])) == [  # type: ignore[call-overload]
        ("10.0.0.1:1", "OK", 2, ""), ("10.0.0.2:1", "UNAVAILABLE", 1, "")]
    buckets = snapshot["buckets"]
    assert isinstance(buckets, list)
    assert buckets[LATENCY_BUCKETS.index(0.0025)] == 1
    assert buckets[LATENCY_BUCKETS.index(0.25)] == 1
    assert buckets[-1] == 1  # beyond the last bound: +Inf only


def test_backends_beyond_the_cardinality_bound_are_counted_as_other() -> None:
    stats = CallStats()
    for index in range(MAX_BACKENDS + 5):
        stats.record_call(f"10.0.{index // 256}.{index % 256}:1", "OK", 0.001)
    backends = {backend for backend, _, _ in stats.calls}
    assert len(backends) == MAX_BACKENDS + 1
    assert stats.calls[(OTHER_BACKEND, "OK", "")] == 5


def test_counts_of_live_workers_are_summed_per_route() -> None:
    counters = CallCounters()
    counters.report(ROUTE, 101, stats_of(("b:1", "OK", 0.001)), active=2)
    counters.report(ROUTE, 102, stats_of(("b:1", "OK", 0.001), ("b:1", "OK", 0.001)), active=1)
    counts, active = counters.totals()[ROUTE]
    assert counts.calls == {("b:1", "OK", ""): 3}
    assert active == 3


def test_a_newer_report_of_a_worker_replaces_its_older_one() -> None:
    counters = CallCounters()
    counters.report(ROUTE, 101, stats_of(("b:1", "OK", 0.001)), active=0)
    counters.report(ROUTE, 101, stats_of(("b:1", "OK", 0.001), ("b:1", "OK", 0.001)), active=0)
    assert counters.totals()[ROUTE][0].calls == {("b:1", "OK", ""): 2}


def test_an_exited_workers_counts_are_kept_and_its_late_reports_ignored() -> None:
    counters = CallCounters()
    counters.report(ROUTE, 101, stats_of(("b:1", "OK", 0.001)), active=4)
    counters.retire(101)
    counters.report(ROUTE, 101, stats_of(), active=9)  # arrives after retirement: ignored
    counters.report(ROUTE, 202, stats_of(("b:1", "OK", 0.001)), active=1)  # the replacement
    counts, active = counters.totals()[ROUTE]
    assert counts.calls == {("b:1", "OK", ""): 2}
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


def test_malformed_parts_of_a_report_are_ignored() -> None:
    counts = RouteCounts.from_report({"calls": [["b:1", "OK", "x"], ["b:1", "OK", 3], "junk"],
                                      "buckets": [1, 2], "duration_sum": "no",
                                      "retries": {"unavailable": 2, "bad": "x"}})
    assert counts.calls == {("b:1", "OK", ""): 3}
    assert counts.buckets == [0] * (len(LATENCY_BUCKETS) + 1)
    assert counts.duration_sum == 0.0
    assert counts.retries == {"unavailable": 2}


def test_the_histogram_is_rendered_cumulative_with_sum_and_count() -> None:
    counters = CallCounters()
    counters.report(ROUTE, 1, stats_of(("b:1", "OK", 0.0005), ("b:1", "OK", 0.3),
                                       retries=2), active=0)
    text = render_families(call_families(counters.totals()))
    lines = text.splitlines()
    assert f'gproxy_call_duration_seconds_bucket{{route="{ROUTE}",le="0.001"}} 1' in lines
    assert f'gproxy_call_duration_seconds_bucket{{route="{ROUTE}",le="0.25"}} 1' in lines
    assert f'gproxy_call_duration_seconds_bucket{{route="{ROUTE}",le="0.5"}} 2' in lines
    assert f'gproxy_call_duration_seconds_bucket{{route="{ROUTE}",le="+Inf"}} 2' in lines
    assert f'gproxy_call_duration_seconds_count{{route="{ROUTE}"}} 2' in lines
    assert f'gproxy_calls_total{{route="{ROUTE}",backend="b:1",code="OK"}} 2' in lines
    assert f'gproxy_retries_total{{route="{ROUTE}",reason="unavailable"}} 2' in lines
    assert "# TYPE gproxy_call_duration_seconds histogram" in lines


@pytest.mark.parametrize(("value", "text"), [
    (3, "3"), (2.5, "2.5"), (math.inf, "+Inf"), (0.0, "0"),
])
def test_sample_values_are_rendered_in_the_text_format(value: float, text: str) -> None:
    family = Family("x", "gauge", "help", (Sample((), value),))
    assert render_families([family]).splitlines()[-1] == f"x {text}"


def test_label_values_are_escaped() -> None:
    family = Family("x", "gauge", "help", (Sample((("a", 'q"\\\n'),), 1),))
    assert render_families([family]).splitlines()[-1] == 'x{a="q\\"\\\\\\n"} 1'


def test_the_method_label_is_opt_in_and_bounded() -> None:
    plain = CallStats()
    plain.record_call("b:1", "OK", 0.001, "/pkg.Svc/A")
    assert plain.calls == {("b:1", "OK", ""): 1}
    labelled = CallStats(method_label=True)
    for index in range(MAX_METHODS + 3):
        labelled.record_call("b:1", "OK", 0.001, f"/pkg.Svc/M{index}")
    assert labelled.calls[("b:1", "OK", OTHER_METHOD)] == 3
    counters = CallCounters()
    counters.report(ROUTE, 1, labelled.snapshot(), active=0)
    text = render_families(call_families(counters.totals()))
    assert (f'gproxy_calls_total{{route="{ROUTE}",backend="b:1",code="OK",'
            'method="/pkg.Svc/M0"} 1') in text.splitlines()
