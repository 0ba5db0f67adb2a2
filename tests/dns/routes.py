"""Command lines for a proxy whose route resolves a name on the test's DNS server."""

from __future__ import annotations

from harness.peers import proxy_args

REFRESH_RATE = "1s"
"""`--dns-refresh-rate` for every proxy of this tier: changes show within about a second."""
CHANGE_TIMEOUT = 15.0
"""Seconds within which a DNS change must show in where calls go (the issue's bound)."""


def dns_route(listen_port: int, target: str) -> str:
    return f"127.0.0.1:{listen_port}-{target}"


def dns_target(dns_port: int, name: str, port: int) -> str:
    """`dns://127.0.0.1:D/name:port`, spelled as the proxy prints it in errors."""
    return f"dns://127.0.0.1:{dns_port}/{name}:{port}"


def dns_proxy_args(route: str, *, drain_timeout: str = "2s") -> list[str]:
    """Two workers, 1 s refresh; `drain_timeout` is also the grace a removed backend gets."""
    return [
        *proxy_args(route, workers=2, drain_timeout=drain_timeout),
        "--dns-refresh-rate",
        REFRESH_RATE,
    ]
