"""The native data plane under hostile or broken peers: a clear status or a closed connection,
never a stuck worker; and a native-plane worker never loads grpc.

Each test runs `gproxy-mp --data-plane native` with real grpcio backends on loopback (or an
HTTP/2 backend that refuses every stream, `harness/refusing_h2.py`), and talks to it with
grpcio or with a raw HTTP/2 client (`harness/rawh2.py`) for what grpcio never sends.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Literal

import grpc
import pytest

from harness import client, procfacts
from harness.admin import admin_get
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.rawh2 import RawClient
from harness.refusing_h2 import RefusingBackend
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

NATIVE = ("--data-plane", "native")
CONNECT_TIMEOUT = 5.0
"""The engine's connect timeout (`planes/native.py` CONNECT_TIMEOUT)."""
RAPID_RESETS = 10_000
"""Streams opened and reset at once on one connection (CVE-2023-44487)."""
RAPID_RESET_TIME = 20.0
"""Seconds the flood may take at most."""
MEMORY_GROWTH_MIB = 64
"""Resident memory a worker may gain from one flood."""
CANCEL_ROUNDS, CANCELS_PER_ROUND = 4, 50


def serve(proxies: Callable[..., Proxy], *targets: Backend | str,
          extra: tuple[str, ...] = NATIVE) -> tuple[Proxy, str]:
    port = free_port()
    proxy = proxies(*proxy_args(route(port, *targets), workers=1), *extra)
    return proxy, f"127.0.0.1:{port}"


def only_worker(proxy: Proxy) -> int:
    workers = wait_until(proxy.workers, timeout=10)
    assert len(workers) == 1, proxy.output()
    return workers[0]


def status_of(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    return next((v for k, v in headers if k == b"grpc-status"), None)


@pytest.mark.parametrize(("plane", "loads_grpc"), [("native", False), ("grpcio", True)])
def test_a_native_plane_worker_never_loads_grpc(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy], plane: str,
    loads_grpc: bool,
) -> None:
    """grpc's core (`cygrpc`) is mapped into a process exactly when it imported grpc; the
    grpcio plane's worker shows the check sees it."""
    proxy, address = serve(proxies, backends("a"), extra=("--data-plane", plane))
    proxy.wait_serving(address)
    maps = Path(f"/proc/{only_worker(proxy)}/maps").read_text()
    assert ("cygrpc" in maps) == loads_grpc, proxy.output()


@pytest.fixture
def native(backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
           ) -> tuple[Proxy, str, int]:
    proxy, address = serve(proxies, backends("a"))
    proxy.wait_serving(address)
    return proxy, address, only_worker(proxy)


@pytest.fixture
def raw(native: tuple[Proxy, str, int]) -> Iterator[RawClient]:
    opened = RawClient(native[1])
    try:
        yield opened
    finally:
        opened.close()


def test_a_rapid_reset_flood_costs_bounded_memory_and_the_worker_keeps_serving(
    native: tuple[Proxy, str, int], raw: RawClient
) -> None:
    proxy, address, pid = native
    before = procfacts.read_memory(pid)
    assert before is not None
    started = time.monotonic()
    sent = 0
    try:
        while sent < RAPID_RESETS and time.monotonic() - started < RAPID_RESET_TIME:
            stream = raw.open_stream("/test.Echo/Sleep")
            raw.reset(stream)
            sent += 1
            if sent % 500 == 0 and raw.read_for(0.01).closed:
                break
    except OSError:
        pass  # the worker closed the connection on us: what it should do
    raw.read_for(1.0)
    after = procfacts.read_memory(pid)
    assert after is not None, proxy.output()
    growth = (after.rss_kib - before.rss_kib) / 1024
    assert growth < MEMORY_GROWTH_MIB, f"{growth:.0f} MiB after {sent} resets"
    assert client.wait_until_serving(address, timeout=10)
    assert only_worker(proxy) == pid, proxy.output()


def test_a_client_that_cancels_many_started_calls_keeps_its_connection(
    native: tuple[Proxy, str, int], raw: RawClient
) -> None:
    """h2's reset limits count streams reset before the server took them; a client cancelling
    calls already running (h2#856) must not be told to go away."""
    for _ in range(CANCEL_ROUNDS):
        streams = [raw.open_stream("/test.Echo/Sleep") for _ in range(CANCELS_PER_ROUND)]
        for stream in streams:
            raw.send_message(stream, b"10")
        raw.read_for(0.3)
        for stream in streams:
            raw.reset(stream)
    stream = raw.open_stream("/test.Echo/Whoami")
    raw.send_message(stream, b"")
    exchange = wait_until(lambda: status_of(raw.read_for(0.2).responses.get(stream, [])),
                          timeout=10)
    assert exchange == b"0", raw.exchange
    assert raw.exchange.goaway is None and not raw.exchange.closed, raw.exchange


@pytest.mark.parametrize(("size", "answer"), [(300 * 1024, b"8"), (2 * 1024 * 1024, None)],
                         ids=["over-the-metadata-limit", "over-the-header-list-limit"])
def test_oversized_client_headers_get_a_clear_answer_and_the_worker_keeps_serving(
    native: tuple[Proxy, str, int], raw: RawClient, size: int, answer: bytes | None
) -> None:
    """Up to 1 MiB the call is refused RESOURCE_EXHAUSTED (8), as on the grpcio plane; beyond,
    h2 refuses the header block itself (HTTP 431, a reset, or the connection)."""
    proxy, address, _ = native
    # In 8 KiB values: hpack's pure-Python Huffman coder is quadratic in one value's length.
    big = [(f"x-big-{i}", "b" * 8192) for i in range(size // 8192 + 1)]
    stream = raw.open_stream("/test.Echo/Whoami", extra=big, end=True)
    got = wait_until(lambda: (raw.read_for(0.2), stream in raw.exchange.responses
                              or stream in raw.exchange.resets or raw.exchange.goaway
                              is not None or raw.exchange.closed)[1], timeout=10)
    assert got, raw.exchange
    headers = raw.exchange.responses.get(stream, [])
    if answer is not None:
        assert status_of(headers) == answer, raw.exchange
    else:
        assert status_of(headers) in (None, b"8"), raw.exchange
        assert (b":status", b"200") not in headers or status_of(headers) == b"8", raw.exchange
    assert client.wait_until_serving(address, timeout=10), proxy.output()


@pytest.fixture
def silent_backend() -> Iterator[str]:
    """A TCP listener that accepts (the kernel completes the handshake) and never speaks."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def test_a_backend_that_never_speaks_http2_fails_the_call_unavailable_in_time(
    proxies: Callable[..., Proxy], silent_backend: str
) -> None:
    proxy, address = serve(proxies, silent_backend)
    assert wait_until(lambda: "serving on" in proxy.output(), timeout=20), proxy.output()
    with client.open_channel(address) as channel:
        started = time.monotonic()
        try:
            client.whoami(channel, timeout=30)
        except grpc.RpcError as raised:
            error = raised
        else:
            raise AssertionError(f"a backend that never speaks answered\n{proxy.output()}")
        took = time.monotonic() - started
    assert error.code() == grpc.StatusCode.UNAVAILABLE, client.describe(error)
    assert silent_backend in (error.details() or ""), client.describe(error)
    assert took < CONNECT_TIMEOUT + 5, f"{took:.1f}s: {client.describe(error)}"


def test_a_backend_that_never_speaks_http2_is_skipped_for_a_live_one(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy], silent_backend: str
) -> None:
    proxy, address = serve(proxies, silent_backend, backends("a"))
    proxy.wait_serving(address)
    with client.open_channel(address) as channel:
        answers = {client.whoami(channel, timeout=CONNECT_TIMEOUT + 5) for _ in range(10)}
    assert answers == {"a"}, proxy.output()


def test_a_native_worker_that_aborts_is_replaced(native: tuple[Proxy, str, int]) -> None:
    """A panic aborts the worker (`panic = "abort"`): SIGABRT is what the supervisor sees."""
    proxy, address, pid = native
    os.kill(pid, signal.SIGABRT)
    replaced = wait_until(lambda: [p for p in proxy.workers() if p != pid], timeout=20)
    assert replaced, proxy.output()
    assert client.wait_until_serving(address, timeout=20), proxy.output()


SYS_PIDFD_OPEN, SYS_PIDFD_GETFD = 434, 438
"""Linux system call numbers (x86_64 and aarch64 alike)."""


def shut_down_listener_of(pid: int, port: int) -> None:
    """Shut down, from outside, the listening socket the worker `pid` serves `port` on: the
    socket is shared through `pidfd_getfd`, and `shutdown` on a listening socket makes every
    pending and future `accept` on it fail (EINVAL): a listener broken for good."""
    import ctypes  # noqa: PLC0415 (only this fault injection needs it)

    import psutil  # noqa: PLC0415

    fds = [c.fd for c in psutil.Process(pid).net_connections(kind="tcp")
           if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]
    assert fds, f"worker {pid} has no listener on {port}"
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(SYS_PIDFD_OPEN, pid, 0)
    if pidfd < 0:
        pytest.skip(f"pidfd_open: {os.strerror(ctypes.get_errno())}")
    try:
        for fd in fds:
            mine = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
            if mine < 0:
                pytest.skip(f"pidfd_getfd: {os.strerror(ctypes.get_errno())}")
            with socket.socket(fileno=mine) as shared:
                shared.shutdown(socket.SHUT_RDWR)
    finally:
        os.close(pidfd)


def test_a_native_engine_that_stops_serving_makes_its_worker_exit_non_zero_and_be_replaced(
    native: tuple[Proxy, str, int]
) -> None:
    """Nothing fails silently: the engine's runtime ends with the listener's error, the worker
    logs it and exits non-zero, and the supervisor starts another."""
    proxy, address, pid = native
    shut_down_listener_of(pid, int(address.rpartition(":")[2]))
    replaced = wait_until(lambda: [p for p in proxy.workers() if p != pid], timeout=30)
    assert replaced, proxy.output()
    assert client.wait_until_serving(address, timeout=20), proxy.output()
    output = proxy.output()
    assert "the native engine stopped serving: accepting connections failed" in output, output
    assert "exited with code 1" in output, output


BACKEND_STREAM_LIMIT = 2
PARALLEL_SLEEPS = 6
"""Calls at once through one client connection: three times what one backend connection takes."""


def test_calls_beyond_a_backends_stream_limit_go_on_another_connection_not_into_a_queue(
    backends: Callable[..., Backend], proxies: Callable[..., Proxy]
) -> None:
    """h2 reports a connection ready even when its peer's stream limit is full (h2#848): the
    engine counts streams itself and opens another connection to the backend."""
    backend = backends("a", extra_args=["--max-concurrent-streams", str(BACKEND_STREAM_LIMIT)])
    proxy, address = serve(proxies, backend)
    proxy.wait_serving(address)
    with client.open_channel(address) as channel, futures.ThreadPoolExecutor(
            PARALLEL_SLEEPS) as pool:
        calls = [pool.submit(client.unary_unary(channel, "Sleep"), b"3", timeout=20)
                 for _ in range(PARALLEL_SLEEPS)]
        all_sleeping = wait_until(lambda: backend.counter("sleeping") == PARALLEL_SLEEPS,
                                  timeout=10)
        answers = [call.result(timeout=20) for call in calls]
    assert all_sleeping, f"{backend.counter('sleeping')} sleeping\n{proxy.output()}"
    assert answers == [b"slept"] * PARALLEL_SLEEPS, proxy.output()
    peers = backend.stats()["peers"]
    assert isinstance(peers, list), peers
    connections = len(peers)
    assert connections >= PARALLEL_SLEEPS // BACKEND_STREAM_LIMIT, connections


def retries_by_reason(admin: str) -> dict[str, float]:
    return {match[1]: float(match[2]) for match in re.finditer(
        r'^gproxy_retries_total\{.*reason="([^"]*)".*\} (\S+)$',
        admin_get(admin, "/metrics"), re.MULTILINE)}


@pytest.mark.parametrize("how", ["refuse", "goaway"])
def test_a_call_a_backend_refused_unprocessed_is_retried_on_another(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
    how: Literal["refuse", "goaway"],
) -> None:
    """REFUSED_STREAM, or a GOAWAY that leaves the stream out: the backend never processed
    the call, so the engine retries it on another backend, counted as `refused_stream`."""
    live = backends("a")
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    with RefusingBackend(how) as refusing:
        proxy = proxies(*proxy_args(route(port, refusing.address, live), workers=1,
                                    admin_address=admin), *NATIVE)
        address = f"127.0.0.1:{port}"
        proxy.wait_serving(address)
        with client.open_channel(address) as channel:
            answers = {client.whoami(channel, timeout=10) for _ in range(6)}
        refused = refusing.refused
    assert answers == {"a"}, proxy.output()
    assert refused >= 1, f"round robin never sent a call to the refusing backend\n{proxy.output()}"
    counted = wait_until(lambda: retries_by_reason(admin).get("refused_stream") == refused,
                         timeout=10)
    assert counted, f"{retries_by_reason(admin)} for {refused} refused\n{proxy.output()}"


KEEPALIVE_INTERVAL = 30.0
"""Seconds between the engine's PINGs on a backend connection (native/src/backend.rs)."""


def test_the_engine_keeps_an_idle_backend_connection_alive_with_pings(
    proxies: Callable[..., Proxy]
) -> None:
    """One PING proves the backend speaks HTTP/2 when the engine connects; another follows
    every `KEEPALIVE_INTERVAL`, so a silently dead backend is found."""
    with RefusingBackend("refuse") as backend:
        proxy, _ = serve(proxies, backend.address)
        assert wait_until(lambda: backend.pings >= 1, timeout=10), proxy.output()
        first = backend.pings
        kept_alive = wait_until(lambda: backend.pings > first, timeout=KEEPALIVE_INTERVAL + 10)
    assert kept_alive, f"{backend.pings} PINGs\n{proxy.output()}"
