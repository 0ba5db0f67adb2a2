"""The proxy's command line for a route that resolves a name on the test's DNS server.

One spelling, used by the DNS and churn tiers and the DNS discovery benchmark, of: the target
``dns://127.0.0.1:D/name:port`` (as the proxy prints it in errors), the route
``127.0.0.1:L-<target>``, the dnsmasq hosts lines that make a name resolve to some addresses,
and the proxy's arguments for such a route (``--dns-refresh-rate`` on top of the usual ones).
What the proxy then resolved is read from its admin ``/debug/endpoints``. Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.peers import proxy_args

HOST = "127.0.0.1"
"""Where the test's DNS server and the proxy's listeners are."""


def dns_target(dns_port: int, name: str, port: int) -> str:
    """``dns://127.0.0.1:D/name:port``, spelled as the proxy prints it in errors."""
    return f"dns://{HOST}:{dns_port}/{name}:{port}"


def dns_route(listen_port: int, target: str) -> str:
    """``127.0.0.1:L-<target>``: the ``-p`` value of a route listening on ``listen_port``."""
    return f"{HOST}:{listen_port}-{target}"


def hosts_lines(name: str, addresses: Iterable[str]) -> list[str]:
    """The dnsmasq hosts lines that make ``name`` resolve to every address in ``addresses``."""
    return [f"{address} {name}" for address in addresses]


def dns_proxy_args(
    route: str, *, refresh_rate: str, workers: int = 2, drain_timeout: str = "2s"
) -> list[str]:
    """``gproxy-mp`` arguments for ``route``, re-resolving every ``refresh_rate`` (a DURATION);
    ``drain_timeout`` is also the grace a removed backend's channel gets."""
    return [
        *proxy_args(route, workers=workers, drain_timeout=drain_timeout),
        "--dns-refresh-rate",
        refresh_rate,
    ]
