"""A backend SIGKILLed under load: only calls in flight on it may fail, and only with
UNAVAILABLE or CANCELLED; every call sent more than a second after the crash succeeds."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.traffic import ThreadLoad, timeline
from harness.waiting import wait_until
from harness.whoami import private_channels, whoami

pytestmark = pytest.mark.timeout(180)

CONNECTIONS = 4
LOAD_SECONDS = 60.0
WARM_CALLS = 200
RECOVERY = 1.0
"""Seconds after the crash from which every call must succeed."""
CALLS_AFTER_RECOVERY = 400
ALLOWED_CODES = {"UNAVAILABLE", "CANCELLED"}


def test_a_backend_killed_under_load_fails_at_most_the_calls_in_flight_on_it(
    backends: Callable[[str], Backend],
    proxies: Callable[..., Proxy],
    record_property: Callable[[str, object], None],
) -> None:
    servers = {name: backends(name) for name in ("a", "b", "c")}
    port = free_port()
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, *servers.values()), workers=2))
    proxy.wait_serving(address)

    with ThreadLoad(
        private_channels(address), whoami,
        threads=CONNECTIONS, max_seconds=LOAD_SECONDS
    ) as load:
        warm = wait_until(
            lambda: set(load.counts()) == set(servers) and load.successes() >= WARM_CALLS,
            timeout=15,
        )
        assert warm, f"{load.summary()}\n{proxy.output()}"
        killed_at = time.monotonic()
        servers["b"].kill()
        recovered_at = killed_at + RECOVERY
        wait_until(
            lambda: load.answers_sent_after(recovered_at) >= CALLS_AFTER_RECOVERY, timeout=15
        )
        load.stop()

    failures = load.failures()
    in_flight = [o for o in failures if o.started <= killed_at <= o.ended]
    late = [o for o in load.outcomes() if o.started > recovered_at]
    record_property("failed_calls", len(failures))
    print(
        f"\nbackend crash: {len(failures)} of {len(load.outcomes())} calls failed "
        f"{[(round(o.started - killed_at, 3), o.error) for o in failures]}"
    )
    report = (
        f"killed at {killed_at:.3f}\n{load.summary()}\n"
        f"failures (started, ended relative to the kill): "
        f"{timeline(failures, killed_at)}"
        f"\n{proxy.output()}"
    )
    assert {o.code for o in failures} <= ALLOWED_CODES, report
    assert in_flight == failures, f"a call sent after the crash failed; {report}"
    assert len(failures) <= CONNECTIONS, report  # one call in flight per connection at most
    assert len(late) >= CALLS_AFTER_RECOVERY, report
    assert all(o.backend is not None for o in late), report
    assert {o.backend for o in late} == {"a", "c"}, report
