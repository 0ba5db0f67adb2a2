"""Fixtures for the conformance tier: grpc-go interop servers with gproxy-mp in front of them.

Session scope: the peers are built (or found) once; three interop servers serve the whole
session, behind one gproxy-mp over all three and, started on first use, one over a single
server for the cases that need every call of a client to reach the same backend; each route
runs once per data plane (`--data-plane grpcio`, then `native`). Readiness is
an ``empty_unary`` that succeeds, never a sleep. Without Go (and without prebuilt binaries) the
tier skips with one line; CI (GPROXY_REQUIRE_ALL_TIERS=1) turns that skip into a failure.
Every process started here is stopped at the end of the session: SIGTERM to its own group,
a bounded wait, then SIGKILL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.fixtures import PLANES
from harness.peers import Proxy, proxy_args, route
from harness.processes import free_port
from harness.testbin import BuildError
from tests.conformance.interop import (
    SERVER_START_TIMEOUT,
    InteropServer,
    Peers,
    build_peers,
    wait_serving,
)

SERVER_COUNT = 3
PROXY_START_TIMEOUT = 30.0
"""Seconds gproxy-mp may take to serve: interpreter, grpc import and bus snapshot per worker."""


@dataclass(frozen=True)
class ProxiedRoute:
    """gproxy-mp listening on 127.0.0.1:``port`` in front of ``servers``."""

    port: int
    proxy: Proxy
    servers: tuple[InteropServer, ...]
    plane: str = "grpcio"  # its --data-plane

    def output(self) -> str:
        """The proxy's captured log, then the tail of each server's log."""
        return self.proxy.output() + "".join(server.output() for server in self.servers)


@pytest.fixture(scope="session")
def peers() -> Peers:
    try:
        found = build_peers()
    except BuildError as error:
        pytest.fail(f"cannot build the grpc-go interop peers: {error}")
    if found is None:
        pytest.skip("go not installed: cannot build the grpc-go interop peers")
    return found


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance")


@pytest.fixture(scope="session")
def interop_servers(peers: Peers, log_dir: Path) -> Iterator[tuple[InteropServer, ...]]:
    servers: list[InteropServer] = []
    try:
        for index in range(SERVER_COUNT):
            servers.append(
                InteropServer(peers.server, log_path=log_dir / f"interop-server-{index}.log")
            )
        for server in servers:
            wait_serving(
                peers.client, port=server.port, process=server.process, context=server.output,
                timeout=SERVER_START_TIMEOUT,
            )
        yield tuple(servers)
    finally:
        for server in servers:
            server.stop()


@contextmanager
def serving_route(
    peers: Peers, servers: tuple[InteropServer, ...], *, log_dir: Path, index: int,
    proxy_extra: Sequence[str] = (), client_extra: Sequence[str] = (), plane: str = "grpcio",
) -> Iterator[ProxiedRoute]:
    """Start gproxy-mp (2 workers, plus ``proxy_extra``) over ``servers``; yield once a call
    through it (client flags ``client_extra``) succeeds."""
    port = free_port()
    proxy = Proxy(
        *proxy_args(route(port, *(server.address for server in servers)), workers=2),
        *proxy_extra,
        "--data-plane", plane,
        log_dir=log_dir,
        index=index,
    )
    try:
        proxied = ProxiedRoute(port=port, proxy=proxy, servers=servers, plane=plane)
        wait_serving(
            peers.client, port=port, process=proxy.process, context=proxied.output,
            timeout=PROXY_START_TIMEOUT, extra=client_extra,
        )
        yield proxied
    finally:
        proxy.stop()


@pytest.fixture(scope="session", params=PLANES)
def route_over_three_servers(
    peers: Peers, interop_servers: tuple[InteropServer, ...], log_dir: Path,
    request: pytest.FixtureRequest,
) -> Iterator[ProxiedRoute]:
    plane: str = request.param
    with serving_route(peers, interop_servers, log_dir=log_dir, plane=plane,
                       index=10 + PLANES.index(plane)) as proxied:
        yield proxied


@pytest.fixture(scope="session", params=PLANES)
def route_over_one_server(
    peers: Peers, interop_servers: tuple[InteropServer, ...], log_dir: Path,
    request: pytest.FixtureRequest,
) -> Iterator[ProxiedRoute]:
    plane: str = request.param
    with serving_route(peers, interop_servers[:1], log_dir=log_dir, plane=plane,
                       index=20 + PLANES.index(plane)) as proxied:
        yield proxied
