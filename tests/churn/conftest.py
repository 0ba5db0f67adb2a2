"""Fixtures for the churn tier: real backends (healthy or refusing), dnsmasq, the real CLI.

Every process a fixture starts is stopped at teardown: SIGTERM to its own process group, a
bounded wait, then SIGKILL. Without dnsmasq the tests that need it skip with one line (CI, with
GPROXY_REQUIRE_ALL_TIERS=1, turns that skip into a failure).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.churn.peers import UnavailableBackend
from tests.dns.backends import HostedBackend, start_on_shared_port
from tests.dns.dnsmasq import DnsServer, find_dnsmasq
from tests.support.processes import Backend, Launcher, Proxy


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    started = Launcher(tmp_path)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def backends(launcher: Launcher) -> Callable[[str], Backend]:
    """Factory: `backends("a")` starts a healthy backend named `a` on 127.0.0.1, any port."""
    return launcher.start_backend


@pytest.fixture
def unavailable_backends(launcher: Launcher) -> Callable[[str], UnavailableBackend]:
    """Factory: `unavailable_backends("x")` starts a backend that answers every call
    UNAVAILABLE."""

    def start(name: str) -> UnavailableBackend:
        backend = UnavailableBackend(name, log_dir=launcher.log_dir)
        launcher.backends.append(backend)
        return backend

    return start


@pytest.fixture
def hosted_backends(launcher: Launcher) -> Callable[..., HostedBackend]:
    """Factory: `hosted_backends("a2", host="127.0.0.5", port=p)` starts a backend on that
    address (a replacement joining the others on their shared port)."""

    def start(name: str, *, host: str, port: int) -> HostedBackend:
        backend = HostedBackend(name, host=host, port=port, log_dir=launcher.log_dir)
        launcher.backends.append(backend)
        return backend

    return start


@pytest.fixture
def shared_port_backends(
    launcher: Launcher,
) -> Callable[..., tuple[int, dict[str, HostedBackend]]]:
    """Factory: `shared_port_backends({"a": "127.0.0.2"}, also_free_on=[...])` → (port,
    backends)."""

    def start(
        hosts: dict[str, str], *, also_free_on: Sequence[str] = ()
    ) -> tuple[int, dict[str, HostedBackend]]:
        return start_on_shared_port(launcher, hosts, also_free_on=also_free_on)

    return start


@pytest.fixture
def proxies(launcher: Launcher) -> Callable[..., Proxy]:
    """Factory: `proxies("-p", route, "--workers", "2")` starts `gproxy-mp`."""
    return launcher.start_proxy


@pytest.fixture
def dns_server(tmp_path: Path) -> Iterator[DnsServer]:
    """A running dnsmasq serving an empty hosts file; `set_hosts` gives it names."""
    executable = find_dnsmasq()
    if executable is None:
        pytest.skip("dnsmasq not installed (Debian: dnsmasq-base)")
    server = DnsServer(executable=executable, directory=tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.close()
