"""Fixtures for the interop-style tier: grpcio clients through gproxy-mp to grpcio backends.

Session scope: two ``tests.interop.backend`` servers with grpc's default limits (except room for
20,000 pending calls), and gproxy-mp
(2 workers) in front of both. Modules that need other peers (raised metadata limits, relays
on the wire) start their own with ``serving_route``. Readiness is a call through the proxy that
succeeds, never a sleep; every process is stopped at the end of its scope (SIGTERM to its own
group, a bounded wait, SIGKILL).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from harness.backend.interop import SERVICE
from harness.client import UNLIMITED_MESSAGES
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port

PROXY_START_TIMEOUT = 30.0
"""Seconds gproxy-mp may take to serve: interpreter, grpc import and bus snapshot per worker."""
MAX_PENDING_REQUESTS = 20_000
"""Calls a session backend lets wait for its handlers (grpc core's default is 1000 soft, 3000
hard; see ``backend.pending_limits``): room for the 10,000-stream burst."""


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
    backends: tuple[Backend, ...]

    def output(self) -> str:
        return self.proxy.output() + "".join(b.output() for b in self.backends)


@contextmanager
def serving_route(targets: Sequence[str], *, backends: tuple[Backend, ...], log_dir: Path,
                  index: int, extra_args: Sequence[str] = ()) -> Iterator[ProxiedRoute]:
    """Start gproxy-mp (2 workers, plus ``extra_args``) over ``targets``; yield once a call
    through it succeeds."""
    port = free_port()
    proxy = Proxy(*proxy_args(route(port, *targets), workers=2), *extra_args, log_dir=log_dir,
                  index=index)
    try:
        proxied = ProxiedRoute(f"127.0.0.1:{port}", proxy, backends)
        proxy.wait_serving(proxied.address, timeout=PROXY_START_TIMEOUT)
        yield proxied
    finally:
        proxy.stop()


@contextmanager
def running_backends(names: Sequence[str], *, log_dir: Path,
                     args: tuple[str, ...] = ()) -> Iterator[tuple[Backend, ...]]:
    with ExitStack() as stack:
        started = []
        for name in names:
            backend = Backend(name, log_dir=log_dir, extra_args=args, log_prefix="interop-backend")
            stack.callback(backend.stop)
            started.append(backend)
        yield tuple(started)


@pytest.fixture(scope="session")
def interop_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interop")


@pytest.fixture(scope="session")
def echo_backends(interop_log_dir: Path) -> Iterator[tuple[Backend, ...]]:
    with running_backends(("a", "b"), log_dir=interop_log_dir,
                          args=("--max-pending-requests", str(MAX_PENDING_REQUESTS))) as backends:
        yield backends


@pytest.fixture(scope="session")
def proxied(echo_backends: tuple[Backend, ...],
            interop_log_dir: Path) -> Iterator[ProxiedRoute]:
    with serving_route([b.address for b in echo_backends], backends=echo_backends,
                       log_dir=interop_log_dir, index=0) as route_:
        yield route_
