"""A 20 s bidi stream survives its backend leaving the DNS answer (the removed backend's channel
stays open for `--drain-timeout`), while new calls go to the remaining backend."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from typing import cast

import grpc
import pytest

from harness import client
from harness.dnsmasq import DnsServer
from harness.peers import Proxy
from harness.processes import free_port
from harness.shared_port import SharedPortBackends
from harness.traffic import ThreadLoad
from harness.whoami import private_channels, whoami
from tests.churn.routes import CHANGE_TIMEOUT, dns_proxy_args, hosts_lines

pytestmark = pytest.mark.timeout(180)

HOSTS = {"a": "127.0.0.2", "b": "127.0.0.3"}
MESSAGES = 40
INTERVAL = 0.5
"""Seconds between two stream messages: 40 of them make a 20 s stream."""
REMOVE_AFTER = 4
"""Messages echoed before the stream's backend leaves the DNS answer."""
STREAM_TIMEOUT = MESSAGES * INTERVAL + 20
"""The stream's deadline: its 20 s plus room for a slow machine."""
DRAIN_TIMEOUT = "30s"
"""Longer than the stream, so the removed backend's channel is not closed under it."""
QUIET_CALLS = 40
"""Successful calls since the removed backend last answered that show it left every worker's
pick list: round robin over two backends would reach it every other call of a worker."""


def test_a_long_bidi_stream_survives_its_backend_leaving_the_answer_while_new_calls_move(
    dns_server: DnsServer, shared_port_backends: SharedPortBackends, proxies: Callable[..., Proxy]
) -> None:
    port, backends = shared_port_backends(HOSTS)
    dns_server.set_hosts(hosts_lines(HOSTS))
    listen = free_port()
    address = f"127.0.0.1:{listen}"
    proxy = proxies(
        *dns_proxy_args(
            listen, dns_port=dns_server.port, backend_port=port, drain_timeout=DRAIN_TIMEOUT
        )
    )
    proxy.wait_serving(address)

    before = {name: backend.counter("calls") for name, backend in backends.items()}
    outbox: queue.Queue[bytes | None] = queue.Queue()
    echoes: list[bytes] = []
    with client.open_channel(address) as channel:
        stream = client.stream_stream(channel, "Bidi")(
            iter(outbox.get, None), timeout=STREAM_TIMEOUT
        )
        responses = cast(Iterator[bytes], stream)  # grpc-stubs: a CallIterator is an iterator
        try:
            outbox.put(b"message 0")
            echoes.append(next(responses))
            # Each Stats call counts itself once; the backend holding the stream counts it too.
            grown = {n: b.counter("calls") - before[n] - 1 for n, b in backends.items()}
            holders = [name for name, count in grown.items() if count == 1]
            assert len(holders) == 1, f"calls per backend since the stream began: {grown}"
            (removed,) = holders
            (remaining,) = set(HOSTS) - {removed}
            with ThreadLoad(
                private_channels(address), whoami,
                threads=2, max_seconds=STREAM_TIMEOUT
            ) as load:
                removed_at = 0.0
                for index in range(1, MESSAGES):
                    time.sleep(INTERVAL)  # the stream's pacing, not a readiness wait
                    outbox.put(f"message {index}".encode())
                    echoes.append(next(responses))
                    if index == REMOVE_AFTER:
                        removed_at = time.monotonic()
                        dns_server.set_hosts(hosts_lines({remaining: HOSTS[remaining]}))
                load.stop()
            outbox.put(None)
            rest = list(responses)
            code = stream.code()
        finally:
            outbox.put(None)  # ends the request iterator; closing the channel cancels the call

    report = (
        f"stream on {removed}, {len(echoes)} echoes, then {rest!r}, {code}\n"
        f"{load.summary()}\n{proxy.output()}\n{dns_server.output()}"
    )
    assert echoes == [f"message {i}".encode() for i in range(MESSAGES)], report
    assert rest == [] and code == grpc.StatusCode.OK, report
    last = max(load.last_answer_from(removed) or removed_at, removed_at)
    assert last - removed_at < CHANGE_TIMEOUT, f"{removed} kept getting new calls; {report}"
    assert load.answers_sent_after(last) >= QUIET_CALLS, report
    assert {o.backend for o in load.outcomes(last) if o.started > last} == {remaining}, report
    assert load.failures() == [], report
    assert backends[removed].counter("cancelled") == 0, report
