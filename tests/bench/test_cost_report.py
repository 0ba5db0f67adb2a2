"""The sizing lines of `python -m bench cost`: cores per 1,000 calls/s and calls/s per core
from a proxy's median CPU per call; a configuration without a proxy gets none."""

from __future__ import annotations

from bench.cost.report import Spread, Summary, sizing


def summary(proxy_cpu_us: float) -> Summary:
    return Summary(rate=Spread(1.0, 1.0, 1.0),
                   cpu_us={"proxy": Spread(proxy_cpu_us, proxy_cpu_us, proxy_cpu_us)},
                   load_p50=0.0, load_p99=0.0, single_p50=0.0, single_p99=0.0, rounds=1)


def test_sizing_turns_cpu_per_call_into_cores_and_calls_per_core() -> None:
    text = sizing({"direct": summary(0.0), "gproxy-w1": summary(250.0)},
                  has_proxy={"direct": False, "gproxy-w1": True})
    assert text.splitlines() == [
        "  gproxy-w1    0.250 cores per 1,000 calls/s, 4,000 calls/s per core"]
