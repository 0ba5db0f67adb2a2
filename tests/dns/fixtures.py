"""A pytest plugin for tiers that need a real DNS server: the ``dns_server`` fixture (dnsmasq).

Listed in the root ``tests/conftest.py`` ``pytest_plugins`` (the DNS and churn tiers use it).
Without dnsmasq a test that needs it skips with one line (CI, with GPROXY_REQUIRE_ALL_TIERS=1,
turns that skip into a failure). Backends sharing one port are `harness.fixtures`'
``shared_port_backends``.

Concurrency: fixtures run on the test thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.dnsmasq import DnsServer, find_dnsmasq


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
