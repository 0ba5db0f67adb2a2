"""The DNS tier's settings for a proxy whose route resolves a name on the test's DNS server.

The command line itself is :mod:`harness.dns_route`'s; this tier re-resolves every second.
"""

from __future__ import annotations

from harness import dns_route as route_lines
from harness.dns_route import dns_route, dns_target

__all__ = ["CHANGE_TIMEOUT", "REFRESH_RATE", "dns_proxy_args", "dns_route", "dns_target"]

REFRESH_RATE = "1s"
"""`--dns-refresh-rate` for every proxy of this tier: changes show within about a second."""
CHANGE_TIMEOUT = 15.0
"""Seconds within which a DNS change must show in where calls go (the issue's bound)."""


def dns_proxy_args(route: str, *, drain_timeout: str = "2s") -> list[str]:
    """Two workers, 1 s refresh; `drain_timeout` is also the grace a removed backend gets."""
    return route_lines.dns_proxy_args(
        route, refresh_rate=REFRESH_RATE, drain_timeout=drain_timeout
    )
