"""Fixtures for the DNS tier: a real dnsmasq, real backends, and the real `gproxy-mp` CLI.

Without dnsmasq the tests that need it skip with one line (CI, which sets
GPROXY_REQUIRE_ALL_TIERS=1, turns that skip into a failure). Every process a fixture starts
is stopped at teardown: SIGTERM to its own process group, a bounded wait, then SIGKILL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.dns.backends import HostedBackend, start_on_shared_port
from tests.dns.dnsmasq import DnsServer, find_dnsmasq
from tests.support.processes import Launcher, Proxy


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    started = Launcher(tmp_path)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def proxies(launcher: Launcher) -> Callable[..., Proxy]:
    """Factory: `proxies("-p", route, "--workers", "2")` starts `gproxy-mp`."""
    return launcher.start_proxy


@pytest.fixture
def shared_port_backends(
    launcher: Launcher,
) -> Callable[..., tuple[int, dict[str, HostedBackend]]]:
    """Factory: `shared_port_backends({"a": "127.0.0.2", "b": "127.0.0.3"})` → (port, backends);
    `also_free_on=["::1"]` keeps the port free on hosts where nothing may listen."""

    def start(
        hosts: dict[str, str], *, also_free_on: Sequence[str] = ()
    ) -> tuple[int, dict[str, HostedBackend]]:
        return start_on_shared_port(launcher, hosts, also_free_on=also_free_on)

    return start


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
