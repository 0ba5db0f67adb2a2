"""A DNS outage keeps the last answer serving; a name that does not exist fails calls fast."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import grpc
import pytest

from harness import client
from harness.dnsmasq import DnsServer
from harness.fixtures import both_planes
from harness.peers import Proxy
from harness.processes import free_port
from harness.shared_port import SharedPortBackends
from harness.traffic import CALL_TIMEOUT, ThreadLoad
from harness.waiting import wait_until
from harness.whoami import private_channels, whoami
from tests.dns.routes import dns_proxy_args, dns_route, dns_target

pytestmark = [pytest.mark.timeout(120), both_planes]

HOSTS = {"a": "127.0.0.2", "b": "127.0.0.3"}
NAME = "backends.test"
OUTAGE_SECONDS = 6.0
"""How long calls are sent with the DNS server down: several refresh intervals and retries."""
FAILING = "resolution failing"
RECOVERED = "resolution recovered"
LOG_TIMEOUT = 20.0
"""Seconds for a resolver log line to appear: the retry backoff reaches 10 s."""
FAST_FAILURE = 1.0
"""Seconds within which a call to a name that does not exist must fail."""


def test_with_the_dns_server_down_the_last_addresses_keep_serving_and_one_warning_is_logged(
    dns_server: DnsServer, shared_port_backends: SharedPortBackends, proxies: Callable[..., Proxy]
) -> None:
    port, _ = shared_port_backends(HOSTS)
    dns_server.set_hosts([f"{host} {NAME}" for host in HOSTS.values()])
    listen = free_port()
    address = f"127.0.0.1:{listen}"
    target = dns_target(dns_server.port, NAME, port)
    proxy = proxies(*dns_proxy_args(dns_route(listen, target)))
    proxy.wait_serving(address)

    dns_server.stop()
    with ThreadLoad(
        private_channels(address), whoami,
        threads=1, channels_per_thread=2, max_calls=50_000, max_seconds=OUTAGE_SECONDS
    ) as loop:
        done = loop.wait_done(timeout=OUTAGE_SECONDS + CALL_TIMEOUT + 5)
    report = f"{loop.summary()}\n{proxy.output()}\n{dns_server.output()}"
    assert done, report
    assert loop.failures() == [], report
    assert set(loop.counts()) == {"a", "b"}, report
    assert proxy.output().count(FAILING) == 1, report

    dns_server.start()
    recovered = wait_until(lambda: RECOVERED in proxy.output(), timeout=LOG_TIMEOUT)
    report = f"{proxy.output()}\n{dns_server.output()}"
    assert recovered, report
    assert proxy.output().count(FAILING) == 1, report
    assert proxy.output().count(RECOVERED) == 1, report
    attempts = re.search(rf"{RECOVERED} after (\d+) failed attempts", proxy.output())
    assert attempts is not None, report
    assert int(attempts[1]) >= 2, f"one warning for several failed attempts; {report}"
    with client.open_channel(address) as channel:
        assert set(client.whoami_counts([channel], calls=10)) == {"a", "b"}, report


def test_a_name_that_does_not_exist_fails_calls_fast_with_unavailable_naming_the_target(
    dns_server: DnsServer, proxies: Callable[..., Proxy]
) -> None:
    listen = free_port()
    address = f"127.0.0.1:{listen}"
    target = dns_target(dns_server.port, "nope.test", free_port())
    proxy = proxies(*dns_proxy_args(dns_route(listen, target)))

    with client.open_channel(address) as channel:
        errors: list[str] = []

        def workers_answer() -> bool:
            # Until a worker listens, calls fail with "failed to connect"; wait for the proxy's own.
            try:
                client.whoami(channel, timeout=2)
            except grpc.RpcError as error:
                errors.append(client.describe(error))
            return bool(errors) and "no endpoints" in errors[-1]

        assert wait_until(workers_answer, timeout=20), f"{errors[-3:]}\n{proxy.output()}"

        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            client.whoami(channel, timeout=5)
        elapsed = time.monotonic() - started
    error = raised.value
    report = f"{client.describe(error)}\n{proxy.output()}"
    assert error.code() == grpc.StatusCode.UNAVAILABLE, report
    assert target in (error.details() or ""), report
    assert elapsed < FAST_FAILURE, f"failed after {elapsed:.2f}s; {report}"
