"""A rolling replacement of every backend, one at a time, under continuous client load, fails
no call: the new backend joins the DNS answer and gets calls, the old one leaves the answer,
stops getting calls, and is stopped a couple of seconds later."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from harness.dnsmasq import DnsServer
from harness.peers import Backend, Proxy
from harness.processes import free_port
from harness.shared_port import SharedPortBackends
from harness.traffic import ThreadLoad
from harness.waiting import wait_until
from harness.whoami import private_channels, whoami
from tests.churn.routes import CHANGE_TIMEOUT, dns_proxy_args, hosts_lines

pytestmark = pytest.mark.timeout(180)

OLD = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4"}
NEW = {"a2": "127.0.0.5", "b2": "127.0.0.6", "c2": "127.0.0.7"}
CONNECTIONS = 4
LOAD_SECONDS = 120.0
"""Bound on the load; the whole replacement takes about 20 s."""
QUIET_CALLS = 60
"""Successful calls since the old backend last answered that show it left every worker's pick
list: round robin over three backends would reach it every third call of a worker."""
STOP_AFTER = 2.0
"""Seconds between the old backend going quiet and its SIGTERM: the rollout's own pacing."""
CALLS_PER_STEP = 7_000
"""Calls that complete between two replacement steps, so the rollout spans well over
MIN_CALLS calls."""
MIN_CALLS = 20_000
"""Calls the rollout must span (the issue's bar for "zero failed calls")."""
STEP_LOAD_TIMEOUT = 40.0
"""Seconds one step may wait for its CALLS_PER_STEP calls."""


def test_replacing_every_backend_one_by_one_under_load_fails_no_call(
    dns_server: DnsServer,
    shared_port_backends: SharedPortBackends,
    backends: Callable[..., Backend],
    proxies: Callable[..., Proxy],
    record_property: Callable[[str, object], None],
) -> None:
    port, old = shared_port_backends(OLD, also_free_on=list(NEW.values()))
    answer = dict(OLD)
    dns_server.set_hosts(hosts_lines(answer))
    listen = free_port()
    address = f"127.0.0.1:{listen}"
    proxy = proxies(*dns_proxy_args(listen, dns_port=dns_server.port, backend_port=port))
    proxy.wait_serving(address)

    steps: list[str] = []
    with ThreadLoad(
        private_channels(address), whoami,
        threads=CONNECTIONS, max_seconds=LOAD_SECONDS
    ) as load:

        def report() -> str:
            return f"steps {steps}\n{load.summary()}\n{proxy.output()}\n{dns_server.output()}"

        assert wait_until(lambda: set(load.counts()) == set(OLD), timeout=CHANGE_TIMEOUT), report()
        for (old_name, new_name), new_host in zip(
            zip(OLD, NEW, strict=True), NEW.values(), strict=True
        ):
            retired = old[old_name]
            enough = len(load.outcomes()) + CALLS_PER_STEP
            assert wait_until(lambda: len(load.outcomes()) >= enough,  # noqa: B023
                              timeout=STEP_LOAD_TIMEOUT), report()
            backends(new_name, host=new_host, port=port)
            added_at = time.monotonic()
            answer[new_name] = new_host
            dns_server.set_hosts(hosts_lines(answer))
            joined = wait_until(
                lambda: load.first_answer_from(new_name, since=added_at),  # noqa: B023
                timeout=CHANGE_TIMEOUT,
            )
            assert joined, f"{new_name} got no call; {report()}"
            steps.append(f"{new_name} answered {joined - added_at:.1f}s after joining")

            removed_at = time.monotonic()
            del answer[old_name]
            dns_server.set_hosts(hosts_lines(answer))

            def quiet_since() -> float | None:
                last = max(load.last_answer_from(old_name) or removed_at, removed_at)  # noqa: B023
                return last if load.answers_sent_after(last) >= QUIET_CALLS else None

            quiet = wait_until(quiet_since, timeout=CHANGE_TIMEOUT)
            assert quiet, f"{old_name} kept getting calls; {report()}"
            steps.append(f"{old_name} quiet {quiet - removed_at:.1f}s after leaving")
            # The backend's own counter: no proxied call reaches it while it waits to be stopped.
            calls_before = retired.counter("calls")
            time.sleep(STOP_AFTER)  # the rollout's pacing, not a readiness wait
            calls_after = retired.counter("calls")
            assert calls_after == calls_before + 1, (  # + 1: the Stats call itself
                f"{old_name} served {calls_after - calls_before - 1} calls after going quiet; "
                f"{report()}"
            )
            retired.stop()
            assert retired.process.returncode == 0, f"{old_name}: {retired.output()}"
        finished_at = time.monotonic()
        wait_until(lambda: load.answers_sent_after(finished_at) >= QUIET_CALLS, timeout=10)
        load.stop()

    counts = load.counts()
    failures = load.failures()
    record_property("calls", len(load.outcomes()))
    record_property("failed_calls", len(failures))
    print(
        f"\nrolling replacement: {len(load.outcomes())} calls, {len(failures)} failed, "
        f"answers {counts}; {steps}"
    )
    assert failures == [], report()
    assert len(load.outcomes()) >= MIN_CALLS, report()
    assert set(counts) == set(OLD) | set(NEW), report()
    assert set(load.counts(since=finished_at)) == set(NEW), report()
