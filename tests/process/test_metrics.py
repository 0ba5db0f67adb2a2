"""/metrics through the real CLI: calls of every worker counted, kept across a worker's death."""

from __future__ import annotations

import os
import re
import signal
import urllib.request
from collections.abc import Callable

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import client, procfacts
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = [pytest.mark.timeout(120), both_planes]

CONNECTIONS = 4
CALLS_PER_CONNECTION = 10


def scrape(admin: str) -> str:
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return str(response.read().decode())


def value(text: str, series: str) -> float | None:
    """The value of one exact series (`name{labels}`, labels in any order: prometheus_client
    writes them sorted), or None if absent."""
    name, _, labels = series.partition("{")
    wanted = dict(re.findall(r'(\w+)="([^"]*)"', labels))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return float(sample.value)
    return None


def total_calls(text: str) -> float:
    return sum(float(m) for m in re.findall(r"^gproxy_calls_total\{.*\} (\S+)$", text, re.M))


def send_calls(address: str, *, connections: int, calls: int) -> None:
    for _ in range(connections):
        with client.open_channel(address) as channel:  # a connection of its own each time
            for _ in range(calls):
                client.whoami(channel)


def test_calls_of_every_worker_are_counted_and_survive_a_worker_kill(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    backend = backends("a")
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, backend), workers=2, admin_address=admin))
    proxy.wait_serving(address)
    baseline = wait_until(lambda: total_calls(scrape(admin)) or None, timeout=10)
    assert baseline is not None, proxy.output()  # wait_serving's own successful call(s)

    send_calls(address, connections=CONNECTIONS, calls=CALLS_PER_CONNECTION)
    expected = baseline + CONNECTIONS * CALLS_PER_CONNECTION
    counted = wait_until(lambda: total_calls(scrape(admin)) >= expected or None, timeout=10)
    text = scrape(admin)
    assert counted, f"{total_calls(text)} != {expected}\n{text}\n{proxy.output()}"
    series = (f'gproxy_calls_total{{route="{address}",backend="{backend.address}",code="OK",'
              'locality="none"}')
    assert value(text, series) == expected, text
    assert value(text, f'gproxy_endpoints{{route="{address}"}}') == 1, text
    assert value(text, f'gproxy_workers_serving{{route="{address}"}}') == 2, text
    per_worker = [value(text, f'gproxy_worker_calls_total{{route="{address}",worker="0#{i}"}}')
                  for i in range(2)]
    assert sum(v or 0 for v in per_worker) == expected, text

    victim = procfacts.listeners(port).pop()
    os.kill(victim, signal.SIGKILL)
    restarted = f'gproxy_worker_restarts_total{{route="{address}",reason="signal_SIGKILL"}}'
    assert wait_until(lambda: value(scrape(admin), restarted), timeout=15), proxy.output()
    assert wait_until(lambda: len(procfacts.listeners(port)) == 2 or None, timeout=15)
    send_calls(address, connections=1, calls=CALLS_PER_CONNECTION)
    final = expected + CALLS_PER_CONNECTION
    assert wait_until(lambda: total_calls(scrape(admin)) >= final or None, timeout=10), (
        f"{scrape(admin)}\n{proxy.output()}")
    # Counters never go backwards: the dead worker's last report is kept.
    assert total_calls(scrape(admin)) == final


def test_calls_that_fail_are_counted_with_their_code(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    backend = backends("a")
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, backend), workers=1, admin_address=admin))
    proxy.wait_serving(address)
    with client.open_channel(address) as channel, pytest.raises(grpc.RpcError) as failure:
        channel.unary_unary("/test.Echo/Nope")(b"", timeout=5)
    assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED
    series = (f'gproxy_calls_total{{route="{address}",backend="{backend.address}",'
              'code="UNIMPLEMENTED",locality="none"}')
    assert wait_until(lambda: value(scrape(admin), series), timeout=10) == 1, scrape(admin)


def test_with_the_method_label_calls_are_counted_by_method(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    backend = backends("a")
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, backend), workers=1, admin_address=admin),
                    "--metrics-method-label")
    proxy.wait_serving(address)
    with client.open_channel(address) as channel:
        for _ in range(3):
            client.echo(channel, b"x")
        with pytest.raises(grpc.RpcError):
            channel.unary_unary("/test.Echo/Nope")(b"", timeout=5)

    def series(method: str, code: str) -> str:
        return (f'gproxy_calls_total{{route="{address}",backend="{backend.address}",'
                f'code="{code}",locality="none",method="{method}"}}')

    unary, nope = series("/test.Echo/Unary", "OK"), series("/test.Echo/Nope", "UNIMPLEMENTED")
    assert wait_until(lambda: value(scrape(admin), nope), timeout=10) == 1, scrape(admin)
    assert value(scrape(admin), unary) == 3, f"{scrape(admin)}\n{proxy.output()}"
