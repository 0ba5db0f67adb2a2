"""The image, built and run as deploy/ runs it (uid 10001, read-only root, /tmp writable, no
capabilities), with podman on the host network in front of real backends on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from importlib.metadata import version

import grpc
import psutil
import pytest

from harness import client, container
from harness.container import Container
from harness.fixtures import both_planes
from harness.peers import Backend, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

MAX_IMAGE_SIZE = 450 * 1024 * 1024
"""Bytes. The base (the official slim image ~125 MB; the local Debian one ~170 MB) plus the venv
(~150 MB: the kubernetes client is 83 MB of it with its bytecode, grpcio 19, uvloop 16) make
~320 MB. The builder's Rust toolchain alone is ~700 MB, so a compiler or a build cache leaking
into the final stage fails here, while the native extension (a few MB) fits."""
MAX_LAYERS = 8
"""The base's layer, the venv, the wheel hashes, the install, the uninstall, the user: six
today."""
START_TIMEOUT = 30.0
"""Seconds from `podman run` to a call served through the container (container start, Python
start-up of the supervisor and its workers)."""
SHUTDOWN_DELAY = 1.0
DRAIN_TIMEOUT = 5.0
EXIT_MARGIN = 3.0
"""Seconds past delay + drain for the supervisor to reap its workers and podman to notice."""


def serve(containers: Callable[[Sequence[str]], Container], *backends: Backend,
          workers: int, data_plane: str, **options: str) -> tuple[Container, str]:
    """Start the image with a static route to ``backends`` on ``data_plane``; return it and its
    address once a call through it succeeds."""
    port = free_port()
    proxy = containers([*proxy_args(route(port, *backends), workers=workers, **options),
                        "--data-plane", data_plane])
    address = f"127.0.0.1:{port}"
    try:
        client.wait_until_serving(address, timeout=START_TIMEOUT)
    except TimeoutError as error:
        raise AssertionError(f"{error}\ncontainer output:\n{proxy.logs()}") from None
    return proxy, address


def test_the_image_is_small_and_has_few_layers(image: str) -> None:
    facts = container.inspect_image(image)
    print(f"{image}: {facts.size / 1e6:.0f} MB in {facts.layers} layers")

    assert facts.size <= MAX_IMAGE_SIZE, f"{facts.size / 1e6:.0f} MB"
    assert facts.layers <= MAX_LAYERS


def test_version_runs_in_the_image(image: str) -> None:
    output = container.run_once(image, "--version")

    assert output.strip() == f"gproxy-mp {version('gproxy-mp')}"


@both_planes
def test_the_container_serves_calls_from_non_root_processes_on_a_read_only_root(
    containers: Callable[[Sequence[str]], Container], backends: Callable[..., Backend],
    data_plane: str
) -> None:
    proxy, address = serve(containers, backends("a"), backends("b"), workers=2,
                           data_plane=data_plane)

    with client.open_channel(address) as channel:
        counts = client.whoami_counts([channel], calls=20)
    supervisor = psutil.Process(proxy.pid())
    processes = [supervisor, *supervisor.children(recursive=True)]

    assert counts == {"a": 10, "b": 10}
    assert len(processes) >= 3, processes  # the supervisor and its two workers
    assert {p.uids().real for p in processes} == {10001}
    assert {p.gids().real for p in processes} == {10001}
    assert container.root_is_read_only(supervisor.pid)


@both_planes
def test_sigterm_serves_through_the_delay_drains_in_flight_calls_and_exits_0(
    containers: Callable[[Sequence[str]], Container], backends: Callable[..., Backend],
    data_plane: str
) -> None:
    backend = backends("a")
    proxy, address = serve(containers, backend, workers=1, data_plane=data_plane,
                           shutdown_delay=f"{SHUTDOWN_DELAY}s", drain_timeout=f"{DRAIN_TIMEOUT}s")

    with client.open_channel(address) as channel:
        in_flight = client.sleep_future(channel, 2 * SHUTDOWN_DELAY, timeout=30)
        assert wait_until(lambda: backend.counter("sleeping") == 1, timeout=10)
        signalled = time.monotonic()
        proxy.signal("TERM")
        during_delay = client.whoami(channel)
        try:
            drained = in_flight.result(timeout=30)
        except grpc.RpcError as error:
            raise AssertionError(f"{client.describe(error)}\n{proxy.logs()}") from None
        status = proxy.wait_exit(timeout=SHUTDOWN_DELAY + DRAIN_TIMEOUT + EXIT_MARGIN)
        elapsed = time.monotonic() - signalled

    assert during_delay == "a"
    assert drained == b"slept"
    assert status == 0, proxy.logs()
    assert elapsed <= SHUTDOWN_DELAY + DRAIN_TIMEOUT + EXIT_MARGIN, elapsed
    print(f"SIGTERM to exit 0: {elapsed:.1f} s (delay {SHUTDOWN_DELAY} s, call of "
          f"{2 * SHUTDOWN_DELAY} s drained)")
