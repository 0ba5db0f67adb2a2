"""Fixtures for tiers that need a real DNS server: dnsmasq and backends sharing one port.

The DNS and churn tiers' conftests re-export these (listing them in ``__all__``). Without
dnsmasq a test that needs it skips with one line (CI, with GPROXY_REQUIRE_ALL_TIERS=1, turns
that skip into a failure).

Concurrency: fixtures run on the test thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from harness.dnsmasq import DnsServer, find_dnsmasq
from tests.dns.backends import SharedPortBackends, start_on_shared_port
from tests.support.processes import Backend, Launcher


@pytest.fixture
def shared_port_backends(launcher: Launcher) -> SharedPortBackends:
    """Factory: `shared_port_backends({"a": "127.0.0.2", "b": "127.0.0.3"})` → (port, backends);
    `also_free_on=["::1"]` keeps the port free on hosts where nothing may listen."""

    def start(
        hosts: dict[str, str], *, also_free_on: Sequence[str] = ()
    ) -> tuple[int, dict[str, Backend]]:
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
