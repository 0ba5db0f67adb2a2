"""Command lines for the churn tier's DNS routes: a fast refresh so endpoint churn shows quickly."""

from __future__ import annotations

from harness.peers import proxy_args

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
    route = f"127.0.0.1:{listen_port}-dns://127.0.0.1:{dns_port}/{NAME}:{backend_port}"
    return [
        *proxy_args(route, workers=2, drain_timeout=drain_timeout),
        "--dns-refresh-rate",
        REFRESH_RATE,
    ]


def hosts_lines(hosts: dict[str, str]) -> list[str]:
    """The dnsmasq hosts lines that make `NAME` resolve to every host in `hosts` (name: host)."""
    return [f"{host} {NAME}" for host in hosts.values()]
