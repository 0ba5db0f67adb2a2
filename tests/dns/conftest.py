"""Fixtures for the DNS tier: a real dnsmasq, real backends, and the real `gproxy-mp` CLI.

All of them are shared with the churn tier (`tests.dns.fixtures`, `tests.support.fixtures`).
"""

from __future__ import annotations

from tests.dns.fixtures import dns_server, shared_port_backends
from tests.support.fixtures import launcher, proxies

__all__ = ["dns_server", "launcher", "proxies", "shared_port_backends"]
