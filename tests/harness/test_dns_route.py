"""`harness.dns_route` spells a DNS route as the proxy's command line takes it."""

from __future__ import annotations

import pytest

from gproxy_mp.config import DnsTarget, parse_route
from harness.dns_route import dns_proxy_args, dns_route, dns_target, hosts_lines


def test_the_proxy_reads_the_route_and_prints_the_target_as_spelled() -> None:
    target = dns_target(5353, "backends.test", 50051)
    route = parse_route(dns_route(5000, target), index=0)
    assert isinstance(route.target, DnsTarget)
    assert (route.target.host, route.target.port) == ("backends.test", 50051)
    assert route.target.server is not None and route.target.server.address == "127.0.0.1:5353"
    assert str(route.target) == target
    assert (route.listen.host, route.listen.port) == ("127.0.0.1", 5000)


def test_hosts_lines_give_the_name_every_address() -> None:
    assert hosts_lines("b.test", ["127.0.0.2", "::1"]) == ["127.0.0.2 b.test", "::1 b.test"]


@pytest.mark.parametrize("refresh_rate", ["1s", "0.5s"])
def test_proxy_args_carry_the_route_and_the_refresh_rate(refresh_rate: str) -> None:
    route = dns_route(5000, dns_target(5353, "backends.test", 50051))
    args = dns_proxy_args(route, refresh_rate=refresh_rate, drain_timeout="3s")
    assert args[args.index("-p") + 1] == route
    assert args[args.index("--dns-refresh-rate") + 1] == refresh_rate
    assert args[args.index("--drain-timeout") + 1] == "3s"
