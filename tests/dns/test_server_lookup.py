"""`ServerLookup` against a real DNS server: A and AAAA together, NXDOMAIN, REFUSED."""

from __future__ import annotations

import pytest

from gproxy_mp.model import Endpoint
from gproxy_mp.supervisor.resolvers.dns import ServerLookup, TemporaryDnsError
from harness.dnsmasq import DnsServer

pytestmark = pytest.mark.timeout(60)

HOSTS = [
    "127.0.0.2 mixed.test",
    "::1 mixed.test",
    "127.0.0.3 v4only.test",
    "::2 v6only.test",
]


@pytest.fixture
def lookup(dns_server: DnsServer) -> ServerLookup:
    dns_server.set_hosts(HOSTS)
    return ServerLookup(Endpoint("127.0.0.1", dns_server.port))


@pytest.mark.parametrize(
    ("name", "addresses"),
    [
        ("mixed.test", ["127.0.0.2", "::1"]),
        ("v4only.test", ["127.0.0.3"]),
        ("v6only.test", ["::2"]),
        ("nope.test", []),
    ],
)
async def test_a_name_resolves_to_its_a_and_aaaa_addresses_and_nxdomain_to_none(
    lookup: ServerLookup, name: str, addresses: list[str]
) -> None:
    assert sorted(await lookup.lookup(name)) == addresses


async def test_a_refused_query_is_a_temporary_error(lookup: ServerLookup) -> None:
    with pytest.raises(TemporaryDnsError, match="REFUSED"):
        await lookup.lookup("outside.example")


async def test_an_ip_literal_is_its_own_answer_without_a_query(lookup: ServerLookup) -> None:
    assert await lookup.lookup("::3") == ["::3"]
