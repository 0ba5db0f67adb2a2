"""A dead backend costs at most a short blip; an unreachable one costs nothing."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pytest

from harness import client, procfacts
from harness.fixtures import both_planes, grpcio_plane
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

CHANNELS = 4
RECOVERY_TIMEOUT = 3.0
"""Seconds after a backend dies within which every call must succeed again."""
CONSECUTIVE_CALLS = 100


@both_planes
def test_after_a_backend_dies_calls_succeed_on_the_others(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    servers = [backends(name) for name in ("a", "b", "c")]
    port = free_port()
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, *servers), workers=2))
    proxy.wait_serving(address)
    channels = [client.open_channel(address) for _ in range(CHANNELS)]
    try:
        warm = client.whoami_counts(channels, calls=30)
        assert set(warm) == {"a", "b", "c"}, f"{warm}\n{proxy.output()}"

        servers[1].kill()
        killed_at = time.monotonic()
        blip: list[str] = []
        calls = 0
        while time.monotonic() - killed_at < RECOVERY_TIMEOUT and calls < 10_000:
            try:
                client.whoami(channels[calls % CHANNELS], timeout=2)
            except grpc.RpcError as error:
                blip.append(client.describe(error))
            calls += 1

        answers: dict[str, int] = {}
        failures: list[str] = []
        for index in range(CONSECUTIVE_CALLS):
            try:
                name = client.whoami(channels[index % CHANNELS], timeout=5)
                answers[name] = answers.get(name, 0) + 1
            except grpc.RpcError as error:
                failures.append(client.describe(error))
    finally:
        for channel in channels:
            channel.close()
    report = (
        f"during the first {RECOVERY_TIMEOUT}s: {len(blip)}/{calls} failed {blip[:5]}\n"
        f"{proxy.output()}"
    )
    assert failures == [], f"after {RECOVERY_TIMEOUT}s: {failures[:5]}; {report}"
    assert set(answers) == {"a", "c"}, f"{answers}; {report}"


@both_planes
def test_a_target_with_nothing_listening_is_skipped_by_retrying_another_backend(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    live = backends("live")
    dead = f"127.0.0.1:{free_port()}"
    port = free_port()
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, dead, live), workers=2))
    proxy.wait_serving(address)
    channels = [client.open_channel(address) for _ in range(CHANNELS)]
    failures: list[str] = []
    answers: dict[str, int] = {}
    try:
        for index in range(60):
            try:
                name = client.whoami(channels[index % CHANNELS], timeout=5)
                answers[name] = answers.get(name, 0) + 1
            except grpc.RpcError as error:
                failures.append(client.describe(error))
    finally:
        for channel in channels:
            channel.close()
    assert failures == [], f"{len(failures)} failed: {failures[:5]}\n{proxy.output()}"
    assert answers == {"live": 60}, f"{answers}\n{proxy.output()}"


@both_planes
def test_a_route_whose_only_backend_is_unreachable_fails_fast_naming_it(
    proxies: Callable[..., Proxy],
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    port = free_port()
    proxy = proxies(*proxy_args(route(port, dead), workers=1))
    # Readiness: a worker listens (workers bind only once they hold the endpoint table).
    assert wait_until(lambda: procfacts.listeners(port), timeout=20), proxy.output()
    with client.open_channel(f"127.0.0.1:{port}") as channel:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            client.whoami(channel, timeout=10)
    took = time.monotonic() - started
    call: grpc.Call = raised.value  # type: ignore[assignment]
    report = f"{client.describe(raised.value)} after {took:.1f}s\n{proxy.output()}"
    assert call.code() == grpc.StatusCode.UNAVAILABLE, report
    assert dead in (call.details() or ""), f"details do not name {dead}: {report}"
    target = f"static:///{dead}"
    assert f"no backend of target {target} is reachable" in (call.details() or ""), report
    assert took < 5, report


@both_planes
def test_with_every_backend_down_a_call_fails_fast_naming_the_target(
    proxies: Callable[..., Proxy],
) -> None:
    dead = sorted(f"127.0.0.1:{free_port()}" for _ in range(3))
    port = free_port()
    proxy = proxies(*proxy_args(route(port, *dead), workers=1))
    assert wait_until(lambda: procfacts.listeners(port), timeout=20), proxy.output()
    target = "static:///" + ",".join(sorted(dead, key=lambda a: (a.split(":")[0],
                                                                 int(a.split(":")[1]))))
    with client.open_channel(f"127.0.0.1:{port}") as channel:
        for _ in range(5):
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as raised:
                client.whoami(channel, timeout=10)
            took = time.monotonic() - started
            call: grpc.Call = raised.value  # type: ignore[assignment]
            report = f"{client.describe(raised.value)} after {took:.1f}s\n{proxy.output()}"
            assert call.code() == grpc.StatusCode.UNAVAILABLE, report
            assert f"no backend of target {target} is reachable" in (call.details() or ""), report
            assert took < 5, report


@grpcio_plane
def test_a_declared_unary_method_is_retried_on_a_live_backend_too(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    live = backends("a")
    dead = f"127.0.0.1:{free_port()}"
    port = free_port()
    proxy = proxies(*proxy_args(route(port, dead, live), workers=1),
                    "--unary-methods", "/test.Echo/Whoami")
    address = f"127.0.0.1:{port}"
    proxy.wait_serving(address)
    with client.open_channel(address) as channel:
        answers = [client.whoami(channel) for _ in range(30)]
    assert answers == ["a"] * 30, proxy.output()
