"""Retries: dead addresses and backends answering UNAVAILABLE cost the client nothing while a
healthy backend exists, and when every backend is down the retry budget keeps a call at about
one attempt."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from harness import client, procfacts
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.traffic import CALL_TIMEOUT, ThreadLoad
from harness.waiting import wait_until
from harness.whoami import private_channels, whoami
from tests.churn.peers import metric_sum, scrape

pytestmark = pytest.mark.timeout(180)

CONNECTIONS = 4
CALLS = 200
LOAD_SECONDS = 30.0
"""Bound on one load run; 200 calls take about a second when nothing is wrong."""
MAX_ATTEMPTS_PER_CALL = 1.3
"""With every backend down the retry budget (gRFC A6 throttling) keeps a call at ~1 attempt;
without it a call would cost 3."""
METRICS_TIMEOUT = 5.0
"""Seconds for /metrics to show the last calls: workers report every second."""


def run_load(address: str) -> ThreadLoad:
    """`CALLS` Whoami calls over `CONNECTIONS` connections; returns once all have returned."""
    with ThreadLoad(
        private_channels(address), whoami,
        threads=CONNECTIONS, max_calls=CALLS, max_seconds=LOAD_SECONDS
    ) as load:
        done = load.wait_done(timeout=LOAD_SECONDS + CALL_TIMEOUT + 5)
    assert done, load.summary()
    return load


def scraped_totals(admin: str, calls: int) -> tuple[float, float]:
    """(calls, retries) from /metrics once every one of `calls` calls is counted."""
    seen: list[str] = []

    def counted() -> bool:
        seen.append(scrape(admin))
        return metric_sum(seen[-1], "gproxy_calls_total") >= calls

    assert wait_until(counted, timeout=METRICS_TIMEOUT), seen[-1:]
    text = seen[-1]
    return (
        metric_sum(text, "gproxy_calls_total"),
        metric_sum(text, "gproxy_retries_total"),  # every reason
    )


def test_two_addresses_where_nothing_listens_cost_no_call_when_one_backend_is_live(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    live = backends("live")
    refusing = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    port = free_port()
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, refusing[0], live, refusing[1]), workers=2))
    proxy.wait_serving(address)

    load = run_load(address)
    report = f"{load.summary()}\n{proxy.output()}"
    assert load.failures() == [], report
    assert load.counts() == {"live": CALLS}, report


def test_a_call_whose_first_backend_answers_unavailable_succeeds_on_the_other_and_is_counted(
    backends: Callable[[str], Backend],
    unavailable_backends: Callable[[str], Backend],
    proxies: Callable[..., Proxy],
) -> None:
    live = backends("live")
    refusing = unavailable_backends("refusing")
    port = free_port()
    admin = f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, refusing, live), workers=1, admin_address=admin))
    proxy.wait_serving(address)
    with client.open_channel(address) as channel:
        answers = [client.whoami(channel, timeout=CALL_TIMEOUT) for _ in range(2)]
    refused = refusing.refused()  # since it started: the readiness call included
    calls, retries = scraped_totals(admin, 3)  # the readiness call and these two
    report = f"refused={refused} retries={retries} calls={calls}\n{proxy.output()}"
    assert answers == ["live", "live"], report
    assert refused >= 1, f"round robin never sent a call to `refusing` first; {report}"
    assert retries == refused, f"every refused attempt is retried on `live`; {report}"


# A READY backend that answers UNAVAILABLE is ranked down for a while after each refusal
# (gproxy_mp/worker/balancer.py, Strikes), so it cannot drain the retry budget.
def test_a_backend_answering_unavailable_costs_no_call_under_sustained_load(
    backends: Callable[[str], Backend],
    unavailable_backends: Callable[[str], Backend],
    proxies: Callable[..., Proxy],
    record_property: Callable[[str, object], None],
) -> None:
    live = backends("live")
    refusing = unavailable_backends("refusing")
    port = free_port()
    admin = f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, refusing, live), workers=2, admin_address=admin))
    proxy.wait_serving(address)

    load = run_load(address)
    calls, retries = scraped_totals(admin, CALLS)
    refused = refusing.refused()
    record_property("refused_attempts", refused)
    record_property("retries_total", retries)
    print(
        f"\nUNAVAILABLE backend: {refused} attempts refused, {retries:.0f} retries, "
        f"{len(load.failures())}/{CALLS} client calls failed"
    )
    report = (
        f"refused={refused} retries={retries} calls={calls}\n{load.summary()}\n{proxy.output()}"
    )
    assert refused > 0, f"round robin never reached the refusing backend; {report}"
    assert retries > 0, report
    assert load.failures() == [], report
    assert load.counts() == {"live": CALLS}, report


@pytest.mark.parametrize("down", ["refusing connections", "answering UNAVAILABLE"])
def test_with_every_backend_down_a_call_costs_about_one_attempt(
    down: str,
    unavailable_backends: Callable[[str], Backend],
    proxies: Callable[..., Proxy],
    record_property: Callable[[str, object], None],
) -> None:
    servers = (
        [unavailable_backends(name) for name in ("x", "y", "z")]
        if down == "answering UNAVAILABLE"
        else []
    )
    addresses = [s.address for s in servers] or [f"127.0.0.1:{free_port()}" for _ in range(3)]
    port = free_port()
    admin = f"127.0.0.1:{free_port()}"
    proxy = proxies(*proxy_args(route(port, *addresses), workers=2, admin_address=admin))
    # Readiness: both workers listen (no call can succeed here).
    assert wait_until(lambda: len(procfacts.listeners(port)) == 2, timeout=20), proxy.output()

    load = run_load(f"127.0.0.1:{port}")
    calls, retries = scraped_totals(admin, CALLS)
    attempts = calls + retries
    if servers:
        attempts_seen_by_backends = sum(s.refused() for s in servers)
        assert attempts_seen_by_backends == attempts, (
            f"backends saw {attempts_seen_by_backends} attempts, /metrics says {attempts}"
        )
    per_call = attempts / CALLS
    record_property("attempts_per_call", round(per_call, 3))
    print(f"\nevery backend {down}: {attempts:.0f} attempts for {CALLS} calls = {per_call:.3f}")
    report = (
        f"{attempts:.0f} attempts ({calls:.0f} calls + {retries:.0f} retries) "
        f"for {CALLS} client calls\n{load.summary()}\n{proxy.output()}"
    )
    codes = Counter(o.code for o in load.outcomes())
    assert codes == {"UNAVAILABLE": CALLS}, report
    assert calls == CALLS, report
    assert per_call < MAX_ATTEMPTS_PER_CALL, report
