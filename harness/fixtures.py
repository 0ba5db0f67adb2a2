"""A pytest plugin: process fixtures shared by the tiers that run real backends and the real CLI.

Listed in the root ``tests/conftest.py`` ``pytest_plugins``, so every tier has them without
re-exporting. Every process a fixture starts is stopped at teardown by the `Launcher`: SIGTERM
to its own process group, a bounded wait, then SIGKILL.

Concurrency: fixtures run on the test thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from harness.peers import Backend, Launcher, Proxy
from harness.shared_port import SharedPortBackends, start_on_shared_port

PLANES = ("grpcio", "native")
"""The worker's data planes (`--data-plane`)."""
both_planes = pytest.mark.parametrize("data_plane", PLANES)
"""Run a test once per data plane, with the same assertions: its proxies (`proxies`,
`launcher`) get that `--data-plane`. Unmarked tests run on the default plane, native."""
grpcio_plane = pytest.mark.parametrize("data_plane", ["grpcio"])
"""For a test of what only the grpcio plane has (unary handlers, reflection learning, its event
loop and gRPC engine, its memory): its proxies get `--data-plane grpcio`."""


@pytest.fixture
def data_plane() -> str | None:
    """The `--data-plane` the `launcher`'s proxies get; None (unless `both_planes`
    parametrises it): the proxy's default."""
    return None


@pytest.fixture
def launcher(tmp_path: Path, data_plane: str | None) -> Iterator[Launcher]:
    started = Launcher(tmp_path, data_plane=data_plane)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def backends(launcher: Launcher) -> Callable[..., Backend]:
    """Factory: ``backends("a")`` starts a backend named ``a`` on 127.0.0.1, any port;
    ``backends("a2", host="127.0.0.5", port=p)`` on that address (a replacement joining others
    on their shared port); ``extra_args`` are more of the backend program's options."""
    return launcher.start_backend


@pytest.fixture
def unavailable_backends(launcher: Launcher) -> Callable[[str], Backend]:
    """Factory: ``unavailable_backends("x")`` starts a backend that answers every call
    UNAVAILABLE (``--refuse-all``; `Backend.refused` counts them)."""

    def start(name: str) -> Backend:
        return launcher.start_backend(name, extra_args=["--refuse-all"], log_prefix="unavailable")

    return start


@pytest.fixture
def proxies(launcher: Launcher) -> Callable[..., Proxy]:
    """Factory: ``proxies("-p", route, "--workers", "2")`` starts ``gproxy-mp``."""
    return launcher.start_proxy


@pytest.fixture
def shared_port_backends(launcher: Launcher) -> SharedPortBackends:
    """Factory: ``shared_port_backends({"a": "127.0.0.2", "b": "127.0.0.3"})`` → (port,
    backends); ``also_free_on=["::1"]`` keeps the port free on hosts where nothing may listen."""

    def start(
        hosts: dict[str, str], *, also_free_on: Sequence[str] = ()
    ) -> tuple[int, dict[str, Backend]]:
        return start_on_shared_port(launcher, hosts, also_free_on=also_free_on)

    return start
