"""The DNS resolver: re-resolve a name on a schedule and yield its endpoint set when it changes.

gRPC's own `dns:///` resolvers re-resolve only when a connection breaks, so new pods behind a
headless Service never get traffic (grpc/grpc#12295). This one asks every `refresh_interval`
(jittered by ±10% so many proxies do not query in lockstep):

- an answer (A and AAAA, both used) → the full set; an unchanged set yields nothing;
- NXDOMAIN or an empty answer → the empty set (calls fail fast with UNAVAILABLE);
- a timeout, SERVFAIL, REFUSED → keep the last set (a DNS outage must never empty a healthy
  route), warn once when resolution starts failing and once when it recovers, and retry with
  a jittered backoff (0.5 s doubling to `max(refresh_interval, 10 s)`).

Two lookups behind one signature, chosen by the target:
- `dns:///host:port` asks the system resolver (`getaddrinfo`: /etc/hosts, resolv.conf search
  domains, nsswitch), which is what `host:port` means to every other program on the machine;
- `dns://server[:port]/host:port` asks that server directly (dnspython), for A and AAAA.
  When one family fails and the other answers with addresses, the answer is used (as
  getaddrinfo and gRPC's c-ares resolver do): a server that answers A but refuses AAAA, like
  a dnsmasq without upstream for a name only its hosts file knows, still gives a route its
  endpoints. The failing family is logged once per stretch of failures. A failure beside
  no data or NXDOMAIN is an outage: the failed family may hold every address.

`watch_dns` is the pure loop, with the lookup, sleep and randomness injected.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import dns.asyncresolver
import dns.exception
import dns.resolver

from gproxy_mp.config import DnsTarget
from gproxy_mp.model import Endpoint, EndpointSet, build_endpoint_set
from gproxy_mp.supervisor.resolvers.health import ResolverHealth

log = logging.getLogger(__name__)

QUERY_TIMEOUT = 2.0
"""Seconds one DNS query may take (all retries included) before it counts as a timeout."""
RETRY_INITIAL_DELAY = 0.5
"""Seconds before the first retry after a failed resolution."""
RETRY_MIN_CAP = 10.0
"""Retry delays double up to max(refresh interval, this many seconds)."""
JITTER = 0.1
"""Relative jitter applied to every delay."""

Lookup = Callable[[str], Awaitable[Sequence[str]]]
Query = Callable[[str, str], Awaitable[list[str] | None]]
"""One query: (host, "A" or "AAAA") → addresses; [] for no data; None for NXDOMAIN. Raises
`TemporaryDnsError` when no answer came."""
FAMILIES = ("A", "AAAA")


class TemporaryDnsError(Exception):
    """The name may exist, but no answer came: timeout, SERVFAIL, REFUSED, network error."""


FamilyAnswer = list[str] | None | TemporaryDnsError
"""One family's part of a lookup: a `Query`'s answer, or the error it raised."""


def jittered(delay: float, rng: Callable[[], float]) -> float:
    return delay * (1 - JITTER + 2 * JITTER * rng())


async def watch_dns(target: DnsTarget, *, lookup: Lookup, refresh_interval: float,
                    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                    rng: Callable[[], float] = random.random,
                    health: ResolverHealth | None = None) -> AsyncIterator[EndpointSet]:
    health = health or ResolverHealth(str(target))
    last: EndpointSet | None = None
    failures = 0
    retry_cap = max(refresh_interval, RETRY_MIN_CAP)
    while True:
        try:
            addresses = await lookup(target.host)
        except TemporaryDnsError as e:
            health.failed(str(e))
            if failures == 0:
                kept = "no endpoints yet" if last is None else f"keeping the last {len(last)}"
                log.warning("dns %s: resolution failing (%s); %s", target, e, kept)
            delay = min(retry_cap, RETRY_INITIAL_DELAY * 2.0**failures)
            failures += 1
        else:
            if failures:
                log.warning("dns %s: resolution recovered after %d failed attempts", target,
                            failures)
                failures = 0
            endpoints = build_endpoint_set(Endpoint(a, target.port) for a in addresses)
            health.succeeded(answer=sorted(set(addresses)),
                             server=target.server.address if target.server else "system")
            if endpoints != last:
                last = endpoints
                yield endpoints
            delay = refresh_interval
        await sleep(jittered(delay, rng))


def build_lookup(target: DnsTarget) -> Lookup:
    if target.server is None:
        return lookup_system
    return ServerLookup(target.server).lookup


async def lookup_system(host: str) -> list[str]:
    """A and AAAA addresses through the system resolver; [] when the name does not exist."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None,
                                                             type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        if e.errno in _NO_SUCH_NAME:
            return []
        raise TemporaryDnsError(e.strerror or str(e)) from None
    return [str(info[4][0]).split("%", 1)[0] for info in infos
            if info[0] in (socket.AF_INET, socket.AF_INET6)]


_NO_SUCH_NAME = {getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA")
                 if hasattr(socket, name)}


def merge_families(answers: Mapping[str, FamilyAnswer]) -> tuple[list[str], list[str]]:
    """The addresses of a lookup from each family's answer, and the families done without.

    All answered: their addresses, or [] if any said NXDOMAIN. Some failed: the addresses of
    those that answered, if there are any; else `TemporaryDnsError` naming every failure.
    """
    failed = {family: a for family, a in answers.items() if isinstance(a, TemporaryDnsError)}
    answered = [a for a in answers.values() if not isinstance(a, TemporaryDnsError)]
    if not failed:
        if any(a is None for a in answered):
            return [], []  # NXDOMAIN: the name has no records of any type
        return [address for a in answered if a for address in a], []
    addresses = [address for a in answered if a for address in a]
    if not addresses:
        raise TemporaryDnsError("; ".join(str(e) for e in failed.values()))
    return addresses, sorted(failed)


class ServerLookup:
    """A and AAAA queries to one DNS server, no search domains, no /etc/hosts.

    One instance per target: it remembers which family it is doing without, to log that once.
    """

    def __init__(self, server: Endpoint, *, query: Query | None = None) -> None:
        self._server = server
        self._resolver = dns.asyncresolver.Resolver(configure=False)
        self._resolver.nameservers = [server.host]
        self._resolver.port = server.port
        self._resolver.lifetime = QUERY_TIMEOUT
        self._resolver.timeout = QUERY_TIMEOUT / 2
        self._query = query or self._ask
        self._doing_without: list[str] = []  # families failing while the others answer

    async def lookup(self, host: str) -> list[str]:
        if _is_ip(host):
            return [host]
        results = await asyncio.gather(*(self._family(host, f) for f in FAMILIES))
        answers = dict(zip(FAMILIES, results, strict=True))
        addresses, doing_without = merge_families(answers)
        self._report(host, answers, doing_without)
        return addresses

    async def _family(self, host: str, rdtype: str) -> FamilyAnswer:
        try:
            return await self._query(host, rdtype)
        except TemporaryDnsError as e:
            return e

    def _report(self, host: str, answers: Mapping[str, FamilyAnswer],
                doing_without: list[str]) -> None:
        """Log a family that starts failing while another answers, and its recovery, once."""
        name = f"dns://{self._server.address}/{host}"
        for family in doing_without:
            if family not in self._doing_without:
                used = " and ".join(f for f in FAMILIES if f not in doing_without)
                log.warning("dns %s: %s; using the %s answer alone", name, answers[family],
                            used)
        for family in self._doing_without:
            if family not in doing_without:
                log.warning("dns %s: the %s query answers again", name, family)
        self._doing_without = doing_without

    async def _ask(self, host: str, rdtype: str) -> list[str] | None:
        """Addresses of one type; [] for no data; None for NXDOMAIN."""
        try:
            answer = await self._resolver.resolve(host, rdtype, search=False,
                                                  raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return None
        except dns.resolver.NoNameservers as e:  # SERVFAIL, REFUSED, ... from every server
            errors = e.kwargs.get("errors") or []
            said = ", ".join(f"{error[3]} from {error[0]}" for error in errors) or str(e)
            raise TemporaryDnsError(f"{rdtype} query: {said}") from None
        except dns.exception.Timeout:
            raise TemporaryDnsError(f"{rdtype} query timed out") from None
        except (OSError, dns.exception.DNSException) as e:
            raise TemporaryDnsError(f"{rdtype} query: {e}") from None
        if answer.rrset is None:
            return []
        return [rdata.address for rdata in answer.rrset]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
