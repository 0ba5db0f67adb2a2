"""A server that answers A but refuses AAAA: the A answer serves (issue 12, defect 4).

dnsmasq without an upstream answers a hosts-file name outside its `--local` domain from the
file for the family listed there, and forwards the other family's query, which fails: REFUSED.
That is what a node-local dnsmasq without upstream gives for a name only its hosts file knows.
getaddrinfo and gRPC's c-ares resolver use the family that answered; so must the proxy.
"""

from __future__ import annotations

from collections.abc import Callable

import dns.message
import dns.query
import dns.rcode
import pytest

from gproxy_mp.model import Endpoint
from gproxy_mp.supervisor.resolvers.dns import ServerLookup
from harness import client
from harness.dnsmasq import QUERY_TIMEOUT, DnsServer
from harness.peers import Proxy
from harness.processes import free_port
from harness.shared_port import SharedPortBackends
from tests.dns.routes import dns_proxy_args, dns_route, dns_target

pytestmark = pytest.mark.timeout(120)

NAME = "v4only.example"
"""Outside `.test`, so dnsmasq forwards (and, with no upstream, refuses) its AAAA query."""
PARTIAL = "AAAA query"
CALLS = 20


def rcode_of(server: DnsServer, rdtype: str) -> str:
    query = dns.message.make_query(NAME, rdtype)
    reply = dns.query.udp(query, "127.0.0.1", port=server.port, timeout=QUERY_TIMEOUT)
    return dns.rcode.to_text(reply.rcode())


@pytest.fixture
def v4_only(dns_server: DnsServer) -> DnsServer:
    dns_server.set_hosts([f"127.0.0.2 {NAME}"])
    # The premise: this server really answers A and refuses AAAA for the name.
    assert (rcode_of(dns_server, "A"), rcode_of(dns_server, "AAAA")) == ("NOERROR", "REFUSED")
    return dns_server


async def test_the_lookup_uses_the_a_answer_when_aaaa_is_refused(v4_only: DnsServer) -> None:
    lookup = ServerLookup(Endpoint("127.0.0.1", v4_only.port))
    assert await lookup.lookup(NAME) == ["127.0.0.2"]


def test_a_route_whose_aaaa_query_is_refused_serves_from_the_a_answer_and_says_so_once(
    v4_only: DnsServer, shared_port_backends: SharedPortBackends, proxies: Callable[..., Proxy]
) -> None:
    port, _ = shared_port_backends({"v4": "127.0.0.2"})
    listen = free_port()
    address = f"127.0.0.1:{listen}"
    target = dns_target(v4_only.port, NAME, port)
    proxy = proxies(*dns_proxy_args(dns_route(listen, target)))
    proxy.wait_serving(address)
    with client.open_channel(address) as channel:
        counts = client.whoami_counts([channel], calls=CALLS, timeout=5)
    report = f"{proxy.output()}\n{v4_only.output()}"
    assert counts == {"v4": CALLS}, report
    # Refreshed every second meanwhile, the refused AAAA query is logged once, not each time.
    assert proxy.output().count(PARTIAL) == 1, report
    assert "REFUSED" in proxy.output(), report
