"""The Kubernetes resolver against a fake API server that answers watches badly (issue 12).

The real client (`build_api_factory` from a kubeconfig, `KubeApi`, urllib3) talks HTTP to
`harness.kube.fakeapi.FakeApiServer` on loopback: lists are fine, watches are not.
Each test takes a few seconds of real time: the retry backoff is real.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gproxy_mp.config import KubernetesTarget
from gproxy_mp.supervisor.resolvers.health import ResolverHealth
from gproxy_mp.supervisor.resolvers.kubernetes import build_api_factory, watch_kubernetes
from harness.kube.fakeapi import FakeApiServer, endpoint_slice, watch_lines

pytestmark = pytest.mark.timeout(60)

TARGET = KubernetesTarget("web", "grpc", "shop")
A = endpoint_slice("web-a", "8", "10.0.0.1")
B = endpoint_slice("web-b", "9", "10.0.0.2")
OBSERVED = 3.0
"""Seconds the resolver runs against watches answered 200 with an empty body."""
MAX_WATCHES = 6
"""Watches allowed in `OBSERVED` seconds: backing off 0.5, 1, 2 s (±20%) gives at most 4;
renewing at once gave about 70."""
THREAD_EXIT_TIMEOUT = 5.0
"""Seconds the resolver thread may take to end once the generator is closed."""


def resolver_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"kubernetes {TARGET}"]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[FakeApiServer]]:
    """Started servers, closed at teardown after the test has closed its generator."""
    servers: list[FakeApiServer] = []
    yield servers
    for server in servers:
        server.close()
    for thread in resolver_threads():
        thread.join(timeout=THREAD_EXIT_TIMEOUT)
        assert not thread.is_alive(), "the resolver thread outlived its generator"


def start(servers: list[FakeApiServer], tmp_path: Path, *,
          watch_bodies: list[bytes]) -> tuple[FakeApiServer, Path]:
    server = FakeApiServer(namespace="shop", items=[A], version="10", watch_bodies=watch_bodies)
    servers.append(server)
    return server, server.write_kubeconfig(tmp_path / "fake.kubeconfig")


async def test_a_watch_line_that_is_not_json_is_retried_and_the_next_change_arrives(
        serve: list[FakeApiServer], tmp_path: Path) -> None:
    _, kubeconfig = start(serve, tmp_path, watch_bodies=[
        b"<html><body><h1>502 Bad Gateway</h1></body></html>\n",
        watch_lines({"type": "ADDED", "object": B}),
    ])
    health = ResolverHealth(str(TARGET))
    updates = watch_kubernetes(TARGET, health=health, api_factory=build_api_factory(
        TARGET, kubeconfig=str(kubeconfig)))
    try:
        async with asyncio.timeout(10.0):
            first = await anext(updates)
            second = await anext(updates)
    finally:
        await updates.aclose()
    assert [e.address for e in first] == ["10.0.0.1:8080"]
    assert [e.address for e in second] == ["10.0.0.1:8080", "10.0.0.2:8080"]
    assert health.errors == 1
    assert "malformed watch event" in health.last_error


async def test_watches_answered_200_with_an_empty_body_back_off(
        serve: list[FakeApiServer], tmp_path: Path) -> None:
    server, kubeconfig = start(serve, tmp_path, watch_bodies=[b""] * 1000)
    health = ResolverHealth(str(TARGET))
    updates = watch_kubernetes(TARGET, health=health, api_factory=build_api_factory(
        TARGET, kubeconfig=str(kubeconfig)))
    try:
        async with asyncio.timeout(10.0):
            first = await anext(updates)
        await asyncio.sleep(OBSERVED)
        watches = len(server.watches())
    finally:
        await updates.aclose()
    assert [e.address for e in first] == ["10.0.0.1:8080"]
    assert 2 <= watches <= MAX_WATCHES, f"{watches} watches in {OBSERVED} s"
    assert health.errors >= 2
    assert "without an event or bookmark" in health.last_error
