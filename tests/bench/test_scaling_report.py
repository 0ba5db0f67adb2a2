"""The summary and table of `python -m bench scaling`: medians over rounds, calls/s per worker
core, and the efficiency against the same proxy's 1-worker median, so each data plane of
gproxy-mp against its own single worker."""

from __future__ import annotations

from bench.scaling.report import Sample, summarize, table


def sample(proxy: str, workers: int, round_: int, rate: float, cpu_us: float) -> Sample:
    return Sample(proxy=proxy, workers=workers, round=round_, calls=1000, connections=8,
                  seconds=1000 / rate, calls_per_s=rate, proxy_cpu_us=cpu_us,
                  backends_cpu_us=10.0, loadgen_cpu_us=5.0, other_cpu_us=1.0)


def test_efficiency_is_calls_per_s_at_n_over_n_times_calls_per_s_at_one() -> None:
    rows = summarize([
        sample("gproxy", 1, 0, 1000, 700), sample("gproxy", 1, 1, 1200, 720),
        sample("gproxy", 1, 2, 900, 800),  # median 1000 calls/s, 720 µs
        sample("gproxy", 4, 0, 3000, 750),
        sample("nginx", 2, 0, 30000, 30),  # no 1-worker figure: no efficiency
    ])
    by_key = {(row["proxy"], row["workers"]): row for row in rows}
    one, four = by_key[("gproxy", 1)], by_key[("gproxy", 4)]
    assert (one["calls_per_s"], one["proxy_cpu_us"], one["efficiency"]) == (1000, 720, 1.0)
    assert (one["calls_per_s_min"], one["calls_per_s_max"], one["rounds"]) == (900, 1200, 3)
    assert four["calls_per_s_per_core"] == 750
    assert four["efficiency"] == 0.75
    assert by_key[("nginx", 2)]["efficiency"] is None

    lines = table(rows, ["gproxy", "nginx"]).splitlines()
    assert lines[0].split() == ["gproxy", "nginx"]
    assert lines[2].split() == ["1", "1,000", "720", "1,000", "100%", "-", "-", "-", "-"]
    assert lines[3].split() == ["2", "-", "-", "-", "-", "30,000", "30", "15,000", "-"]
    assert lines[4].split() == ["4", "3,000", "750", "750", "75%", "-", "-", "-", "-"]


def test_each_data_plane_is_measured_against_its_own_single_worker() -> None:
    rows = summarize([
        sample("gproxy", 1, 0, 1000, 700), sample("gproxy", 2, 0, 1500, 760),
        sample("gproxy-native", 1, 0, 20000, 9), sample("gproxy-native", 2, 0, 38000, 10),
        sample("nginx", 1, 0, 25000, 35), sample("nginx", 2, 0, 40000, 36),
    ])
    by_key = {(row["proxy"], row["workers"]): row for row in rows}
    assert by_key[("gproxy", 2)]["efficiency"] == 0.75  # 1,500 / (2 x 1,000)
    assert by_key[("gproxy-native", 2)]["efficiency"] == 0.95  # 38,000 / (2 x 20,000)
    assert by_key[("gproxy-native", 2)]["calls_per_s_per_core"] == 19000
    assert by_key[("nginx", 2)]["efficiency"] == 0.8

    lines = table(rows, ["gproxy", "gproxy-native", "nginx"]).splitlines()
    assert lines[0].split() == ["gproxy", "gproxy-native", "nginx"]
    assert lines[1].split() == ["workers", *["calls/s", "µs", "CPU/call", "calls/s/core", "vs",
                                             "1", "worker"] * 3]
    assert lines[2].split() == ["1", "1,000", "700", "1,000", "100%",
                                "20,000", "9", "20,000", "100%", "25,000", "35", "25,000", "100%"]
    assert lines[3].split() == ["2", "1,500", "760", "750", "75%",
                                "38,000", "10", "19,000", "95%", "40,000", "36", "20,000", "80%"]
