"""Targets and answers: a scheme-less `host:port`, AAAA only, an address with no listener."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness import client
from harness.dnsmasq import DnsServer
from harness.fixtures import both_planes
from harness.peers import Proxy
from harness.processes import free_port
from harness.shared_port import SharedPortBackends
from tests.dns.routes import dns_proxy_args, dns_route, dns_target

pytestmark = [pytest.mark.timeout(120), both_planes]

CALLS = 20


def serve_and_count(proxy: Proxy, address: str) -> dict[str, int]:
    proxy.wait_serving(address)
    with client.open_channel(address) as channel:
        return client.whoami_counts([channel], calls=CALLS, timeout=5)


def test_a_scheme_less_host_and_port_is_resolved_by_the_system_resolver(
    shared_port_backends: SharedPortBackends, proxies: Callable[..., Proxy]
) -> None:
    # `localhost` comes from /etc/hosts; if it also maps to ::1, where nothing listens, the
    # proxy must still succeed by picking READY backends first and retrying.
    port, _ = shared_port_backends({"local": "127.0.0.1"})
    listen = free_port()
    proxy = proxies(*dns_proxy_args(dns_route(listen, f"localhost:{port}")))
    counts = serve_and_count(proxy, f"127.0.0.1:{listen}")
    assert counts == {"local": CALLS}, proxy.output()


def test_a_name_with_only_an_ipv6_address_reaches_its_backend(
    dns_server: DnsServer, shared_port_backends: SharedPortBackends, proxies: Callable[..., Proxy]
) -> None:
    port, _ = shared_port_backends({"v6": "::1"})
    dns_server.set_hosts(["::1 v6only.test"])
    listen = free_port()
    target = dns_target(dns_server.port, "v6only.test", port)
    proxy = proxies(*dns_proxy_args(dns_route(listen, target)))
    counts = serve_and_count(proxy, f"127.0.0.1:{listen}")
    assert counts == {"v6": CALLS}, f"{proxy.output()}\n{dns_server.output()}"


def test_an_answer_with_an_address_where_nothing_listens_still_serves_every_call(
    dns_server: DnsServer, shared_port_backends: SharedPortBackends, proxies: Callable[..., Proxy]
) -> None:
    # What `localhost` → 127.0.0.1 and ::1 looks like when the backend listens on IPv4 only.
    port, _ = shared_port_backends({"v4": "127.0.0.2"}, also_free_on=["::1"])
    dns_server.set_hosts(["127.0.0.2 half.test", "::1 half.test"])
    listen = free_port()
    target = dns_target(dns_server.port, "half.test", port)
    proxy = proxies(*dns_proxy_args(dns_route(listen, target)))
    counts = serve_and_count(proxy, f"127.0.0.1:{listen}")
    assert counts == {"v4": CALLS}, f"{proxy.output()}\n{dns_server.output()}"
