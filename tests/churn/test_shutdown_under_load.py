"""SIGTERM under load: during the shutdown delay every call, on old and on new connections,
succeeds; calls still running when the delay ends finish within the drain timeout; the proxy
exits 0 and leaves no listener or process behind."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable

import grpc
import pytest

from harness import client, procfacts
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.traffic import ThreadLoad
from harness.waiting import wait_until
from harness.whoami import private_channels, whoami

pytestmark = pytest.mark.timeout(180)

DELAY = 2.0
DRAIN = 10.0
CONNECTIONS = 4
RECONNECT_EVERY = 5
"""Calls per channel before a load thread opens a fresh one (a new connection)."""
SLEEPERS = 4
SLEEP = 1.0
SLEEPERS_AT = DELAY - 0.6
"""Seconds after SIGTERM at which the Sleep calls start: they run past the end of the delay."""
LOAD_UNTIL = DELAY - 0.4
"""Seconds after SIGTERM at which the load stops: before the workers stop accepting."""
EXIT_TIMEOUT = DELAY + DRAIN + 5.0


def sleep_until(moment: float) -> None:
    """The scenario's clock (when the test acts), not a readiness wait."""
    time.sleep(max(moment - time.monotonic(), 0))


def test_sigterm_under_load_fails_no_call_in_the_delay_and_drains_calls_in_flight(
    backends: Callable[[str], Backend],
    proxies: Callable[..., Proxy],
    record_property: Callable[[str, object], None],
) -> None:
    servers = [backends("a"), backends("b")]
    port = free_port()
    address = f"127.0.0.1:{port}"
    proxy = proxies(
        *proxy_args(
            route(port, *servers),
            workers=2,
            shutdown_delay=f"{DELAY:g}s",
            drain_timeout=f"{DRAIN:g}s",
        )
    )
    proxy.wait_serving(address)
    sleeper_channels = [client.open_channel(address) for _ in range(SLEEPERS)]
    try:
        for channel in sleeper_channels:
            client.whoami(channel)  # connected before the signal
        with ThreadLoad(
            private_channels(address), whoami,
            threads=CONNECTIONS, reconnect_every=RECONNECT_EVERY, max_seconds=30
        ) as load:
            assert wait_until(lambda: load.successes() >= 100, timeout=15), load.summary()
            proxy.send(signal.SIGTERM)
            signalled = time.monotonic()
            sleep_until(signalled + SLEEPERS_AT)
            sleepers = [client.sleep_future(c, SLEEP, timeout=DRAIN) for c in sleeper_channels]
            sleep_until(signalled + LOAD_UNTIL)
            load.stop()
        results: list[str] = []
        for future in sleepers:
            try:
                results.append(future.result(timeout=DRAIN + 5).decode())
            except grpc.RpcError as error:
                results.append(client.describe(error))
        sleepers_done = time.monotonic() - signalled
    finally:
        for channel in sleeper_channels:
            channel.close()
    try:
        code: int | None = proxy.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        code = None
    exited = time.monotonic() - signalled

    during_delay = [o for o in load.outcomes() if o.started >= signalled]
    new_connections = {o.connection for o in during_delay}
    drained = [int(n) for n in re.findall(r"draining (\d+) in-flight", proxy.stderr())]
    record_property("calls_during_delay", len(during_delay))
    print(
        f"\nshutdown under load: {len(during_delay)} calls in the delay, "
        f"{len(load.failures())} failed; draining {drained}; sleepers {results} done "
        f"{sleepers_done:.2f}s after SIGTERM; exit {code} after {exited:.2f}s"
    )
    report = (
        f"{load.summary()}\nsleepers: {results} done {sleepers_done:.2f}s after SIGTERM\n"
        f"exit {code} after {exited:.2f}s; draining {drained}\n{proxy.output()}"
    )
    assert load.failures() == [], report
    assert len(during_delay) >= 20 and new_connections == set(range(CONNECTIONS)), report
    assert results == ["slept"] * SLEEPERS, report
    assert sleepers_done >= DELAY, f"the Sleep calls ended before the delay did; {report}"
    assert code == 0, report
    assert DELAY <= exited < DELAY + DRAIN, report
    assert procfacts.listeners(port) == set(), report
    assert wait_until(lambda: not proxy.surviving_descendants(), timeout=5), report
