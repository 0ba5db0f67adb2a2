"""SIGTERM: serve for the delay, drain in-flight calls, exit 0; a second signal (or SIGQUIT)
stops at once, and exits 1 when that cut calls in flight short."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import grpc
import pytest

from harness import client, procfacts
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = [pytest.mark.timeout(120), both_planes]


def start_sleep(backend: Backend, channel: grpc.Channel, seconds: float) -> grpc.Future[bytes]:
    """Start a Sleep through the proxy and return once the backend is running it."""
    before = backend.counter("sleeping")
    future = client.sleep_future(channel, seconds, timeout=60)
    assert wait_until(lambda: backend.counter("sleeping") > before, timeout=10), (
        "Sleep never reached the backend"
    )
    return future


def serve_one_backend(
    proxies: Callable[..., Proxy],
    backend: Backend,
    *,
    workers: int,
    shutdown_delay: str,
    drain_timeout: str,
    admin_address: str = "off",
) -> tuple[Proxy, int, str]:
    """Start gproxy-mp on a free port in front of `backend`; return it, its port and address
    once a call through it succeeds."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    args = proxy_args(
        route(port, backend),
        workers=workers,
        shutdown_delay=shutdown_delay,
        drain_timeout=drain_timeout,
        admin_address=admin_address,
    )
    proxy = proxies(*args)
    proxy.wait_serving(address)
    return proxy, port, address


def result_or_status(future: grpc.Future[bytes], *, timeout: float) -> bytes:
    """The call's reply, or its status described (as bytes) if it failed."""
    try:
        return future.result(timeout=timeout)
    except grpc.RpcError as error:
        return client.describe(error).encode()


def exit_code_within(proxy: Proxy, timeout: float) -> int | None:
    try:
        return proxy.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def readyz_status(admin: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://{admin}/readyz", timeout=2) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def test_after_sigterm_the_proxy_serves_for_the_delay_then_exits_zero(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    backend = backends("a")
    proxy, port, address = serve_one_backend(
        proxies, backend, workers=2, shutdown_delay="2s", drain_timeout="5s"
    )

    with client.open_channel(address) as channel:
        in_flight = start_sleep(backend, channel, 1.5)
        proxy.send(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(1.0)  # the scenario: a client that connects one second into the delay
        with client.open_channel(address) as late:
            try:
                answer = client.whoami(late, timeout=5)
            except grpc.RpcError as error:
                answer = client.describe(error)
        assert answer == "a", f"new connection 1 s after SIGTERM: {answer}\n{proxy.output()}"
        result = result_or_status(in_flight, timeout=10)
        assert result == b"slept", f"in-flight call: {result!r}\n{proxy.output()}"

    code = exit_code_within(proxy, timeout=15)
    elapsed = time.monotonic() - signalled
    assert code == 0, f"exit code {code} after {elapsed:.1f}s\n{proxy.output()}"
    assert elapsed >= 2.0, (
        f"exited {elapsed:.1f}s after SIGTERM, before the 2 s delay\n{proxy.output()}"
    )
    assert procfacts.listeners(port) == set(), proxy.output()
    assert wait_until(lambda: not proxy.surviving_descendants(), timeout=5), proxy.output()


def test_a_call_still_running_when_the_delay_ends_is_drained_to_completion(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    backend = backends("a")
    proxy, _, address = serve_one_backend(
        proxies, backend, workers=1, shutdown_delay="1s", drain_timeout="5s"
    )

    with client.open_channel(address) as channel:
        in_flight = start_sleep(backend, channel, 3)
        proxy.send(signal.SIGTERM)
        signalled = time.monotonic()
        result = result_or_status(in_flight, timeout=15)
    assert result == b"slept", f"call running past the delay: {result!r}\n{proxy.output()}"
    code = exit_code_within(proxy, timeout=15)
    assert code == 0, (
        f"exit code {code} {time.monotonic() - signalled:.1f}s after SIGTERM\n{proxy.output()}"
    )


def test_calls_still_running_after_the_drain_timeout_are_cancelled(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    backend = backends("a")
    proxy, _, address = serve_one_backend(
        proxies, backend, workers=1, shutdown_delay="0s", drain_timeout="1s"
    )
    cancelled_before = backend.counter("cancelled")

    with client.open_channel(address) as channel:
        in_flight = start_sleep(backend, channel, 30)
        proxy.send(signal.SIGTERM)
        signalled = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            in_flight.result(timeout=15)
    failed_after = time.monotonic() - signalled
    code = exit_code_within(proxy, timeout=15)
    assert failed_after < 10, f"call ended {failed_after:.1f}s after SIGTERM\n{proxy.output()}"
    assert code == 0, f"exit code {code}; call: {client.describe(raised.value)}\n{proxy.output()}"
    assert wait_until(lambda: backend.counter("cancelled") > cancelled_before, timeout=5), (
        f"the backend call was not cancelled\n{proxy.output()}"
    )


def test_a_second_sigterm_stops_at_once_despite_a_long_call(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    backend = backends("a")
    admin = f"127.0.0.1:{free_port()}"
    proxy, port, address = serve_one_backend(
        proxies, backend, workers=2, shutdown_delay="2s", drain_timeout="25s", admin_address=admin
    )

    with client.open_channel(address) as channel:
        in_flight = start_sleep(backend, channel, 60)
        proxy.send(signal.SIGTERM)
        # The first signal has been handled once readiness turns 503.
        assert wait_until(lambda: readyz_status(admin) == 503, timeout=5), (
            f"/readyz never turned 503 (last {readyz_status(admin)})\n{proxy.output()}"
        )
        proxy.send(signal.SIGTERM)
        second = time.monotonic()
        code = exit_code_within(proxy, timeout=5)
        stopped_in = time.monotonic() - second
        in_flight.cancel()
    assert code is not None, f"still running 5 s after the second SIGTERM\n{proxy.output()}"
    assert stopped_in < 5, proxy.output()
    assert code == 1, f"exit code {code} after cancelling a call in flight\n{proxy.output()}"
    assert wait_until(
        lambda: not procfacts.listeners(port) and not proxy.surviving_descendants(), timeout=5
    ), (
        f"left behind: listeners {procfacts.listeners(port)}, "
        f"processes {proxy.surviving_descendants()}\n{proxy.output()}"
    )


@pytest.mark.parametrize("in_flight", [True, False], ids=["call in flight", "idle"])
def test_sigquit_stops_at_once_and_exits_1_only_when_calls_were_cut(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy], in_flight: bool
) -> None:
    backend = backends("a")
    proxy, port, address = serve_one_backend(
        proxies, backend, workers=2, shutdown_delay="5s", drain_timeout="25s"
    )

    with client.open_channel(address) as channel:
        call = start_sleep(backend, channel, 60) if in_flight else None
        proxy.send(signal.SIGQUIT)
        signalled = time.monotonic()
        code = exit_code_within(proxy, timeout=8)
        stopped_in = time.monotonic() - signalled
        if call is not None:
            call.cancel()
    assert code == (1 if in_flight else 0), (
        f"exit code {code} after {stopped_in:.1f}s\n{proxy.output()}"
    )
    assert stopped_in < 8, proxy.output()
    assert wait_until(
        lambda: not procfacts.listeners(port) and not proxy.surviving_descendants(), timeout=5
    ), proxy.output()
