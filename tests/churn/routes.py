"""The churn tier's DNS routes: a fast refresh so endpoint churn shows quickly.

The command line itself is :mod:`harness.dns_route`'s.
"""

from __future__ import annotations

from harness import dns_route as route_lines

REFRESH_RATE = "0.5s"
"""`--dns-refresh-rate`: an answer change reaches the workers within about a second."""
CHANGE_TIMEOUT = 10.0
"""Seconds within which a DNS change must show in where calls go (many refresh intervals)."""
NAME = "backends.test"


def dns_proxy_args(
    listen_port: int, *, dns_port: int, backend_port: int, drain_timeout: str = "2s"
) -> list[str]:
    """Two workers in front of `NAME` on the test's dnsmasq; `drain_timeout` is also the grace
    a removed backend's channel gets."""
    route = route_lines.dns_route(
        listen_port, route_lines.dns_target(dns_port, NAME, backend_port)
    )
    return route_lines.dns_proxy_args(
        route, refresh_rate=REFRESH_RATE, drain_timeout=drain_timeout
    )


def hosts_lines(hosts: dict[str, str]) -> list[str]:
    """The dnsmasq hosts lines that make `NAME` resolve to every host in `hosts` (name: host)."""
    return route_lines.hosts_lines(NAME, hosts.values())
