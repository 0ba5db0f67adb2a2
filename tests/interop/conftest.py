"""Fixtures for the interop-style tier: grpcio clients through gproxy-mp to grpcio backends.

Session scope: two ``tests.interop.backend`` servers with grpc's default limits (except room for
20,000 pending calls), and gproxy-mp
(2 workers) in front of both. Modules that need other peers (raised metadata limits, relays
on the wire) start their own with ``serving_route``. Readiness is a call through the proxy that
succeeds, never a sleep; every process is stopped at the end of its scope (SIGTERM to its own
group, a bounded wait, SIGKILL).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.interop.backend import SERVICE, UNLIMITED_MESSAGES
from tests.interop.peers import EchoBackend
from tests.support.processes import Proxy, free_port, proxy_args, route

PROXY_START_TIMEOUT = 30.0
"""Seconds gproxy-mp may take to serve: interpreter, grpc import and bus snapshot per worker."""
MAX_PENDING_REQUESTS = 20_000
"""Calls a session backend lets wait for its handlers (grpc core's default is 1000 soft, 3000
hard; see ``backend.pending_limits``): room for the 10,000-stream burst."""
RETRY_INTERVAL = 0.05
"""Seconds between readiness attempts; each attempt is itself a call bounded to 2 s."""


def raw_unary(channel: grpc.Channel, name: str) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
    """A raw-bytes callable for ``/interop.Echo/<name>``."""
    return channel.unary_unary(f"/{SERVICE}/{name}", request_serializer=None,
                               response_deserializer=None)


def open_channel(address: str, *, options: Sequence[tuple[str, Any]] = (),
                 compression: grpc.Compression | None = None) -> grpc.Channel:
    """A plain-text channel with its own connection and unlimited message sizes."""
    return grpc.insecure_channel(
        address,
        options=[("grpc.use_local_subchannel_pool", 1), *UNLIMITED_MESSAGES, *options],
        compression=compression,
    )


@dataclass(frozen=True)
class ProxiedRoute:
    """gproxy-mp listening on ``address`` in front of ``backends`` (or of relays to them)."""

    address: str
    proxy: Proxy
    backends: tuple[EchoBackend, ...]

    def output(self) -> str:
        return self.proxy.output() + "".join(b.output() for b in self.backends)


def wait_serving(address: str, *, proxy: Proxy, timeout: float) -> None:
    """Retry Whoami through ``address`` until one succeeds; fail with the proxy's log."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    with open_channel(address) as channel:
        while True:
            if proxy.process.poll() is not None:
                raise AssertionError(f"proxy exited\n{proxy.output()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{address} not serving: {last}\n{proxy.output()}")
            try:
                raw_unary(channel, "Whoami")(b"", timeout=min(remaining, 2.0))
                return
            except grpc.RpcError as error:
                last = f"{error.code().name}: {error.details()}"
            time.sleep(min(RETRY_INTERVAL, max(deadline - time.monotonic(), 0)))


@contextmanager
def serving_route(targets: Sequence[str], *, backends: tuple[EchoBackend, ...], log_dir: Path,
                  index: int, extra_args: Sequence[str] = ()) -> Iterator[ProxiedRoute]:
    """Start gproxy-mp (2 workers, plus ``extra_args``) over ``targets``; yield once a call
    through it succeeds."""
    port = free_port()
    proxy = Proxy(*proxy_args(route(port, *targets), workers=2), *extra_args, log_dir=log_dir,
                  index=index)
    try:
        proxied = ProxiedRoute(f"127.0.0.1:{port}", proxy, backends)
        wait_serving(proxied.address, proxy=proxy, timeout=PROXY_START_TIMEOUT)
        yield proxied
    finally:
        proxy.stop()


@contextmanager
def running_backends(names: Sequence[str], *, log_dir: Path,
                     args: tuple[str, ...] = ()) -> Iterator[tuple[EchoBackend, ...]]:
    with ExitStack() as stack:
        started = []
        for name in names:
            backend = EchoBackend(name, log_dir=log_dir, extra_args=args)
            stack.callback(backend.stop)
            started.append(backend)
        yield tuple(started)


@pytest.fixture(scope="session")
def interop_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interop")


@pytest.fixture(scope="session")
def echo_backends(interop_log_dir: Path) -> Iterator[tuple[EchoBackend, ...]]:
    with running_backends(("a", "b"), log_dir=interop_log_dir,
                          args=("--max-pending-requests", str(MAX_PENDING_REQUESTS))) as backends:
        yield backends


@pytest.fixture(scope="session")
def proxied(echo_backends: tuple[EchoBackend, ...],
            interop_log_dir: Path) -> Iterator[ProxiedRoute]:
    with serving_route([b.address for b in echo_backends], backends=echo_backends,
                       log_dir=interop_log_dir, index=0) as route_:
        yield route_
