"""The route's listening sockets, bound in Python for a plane that serves on raw fds.

The same sockets gRPC's server makes for the grpcio plane: one per address the listen host
names (`listen_sockaddrs`), each with SO_REUSEADDR and SO_REUSEPORT (every worker of the route
binds the address; the supervisor has checked no one else holds it), all interfaces as `[::]`
in dual stack, the system's full backlog. The worker keeps these sockets; the engine gets
duplicates of their descriptors and owns those.
"""

from __future__ import annotations

import errno
import logging
import socket

from gproxy_mp.errors import AddressInUseError

log = logging.getLogger(__name__)

Sockaddr = tuple[socket.AddressFamily, tuple[str, int]]

LOOPBACK = ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"))
"""What `localhost` names (RFC 6761): gRPC core's resolver answers both addresses itself,
whatever /etc/hosts says, and its server binds both."""
ABSENT = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)
"""Bind errors of an address this host does not have (no IPv6 loopback, say): skipped, as gRPC
core skips it, while another address of the host binds."""


def split_bind_address(address: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` (`ListenAddress.bind_address`) → (host, port)."""
    host, _, port = address.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


def listen_sockaddrs(host: str, port: int) -> list[Sockaddr]:
    """Every address gRPC core's server would bind for `host`: `localhost` as both loopback
    addresses, any other name each address it resolves to, in order, without repeats."""
    if host.lower().rstrip(".") == "localhost":
        return [(family, (address, port)) for family, address in LOOPBACK]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    found: list[Sockaddr] = []
    for family, _, _, _, where in infos:
        sockaddr = (family, (str(where[0]), int(where[1])))
        if sockaddr not in found:
            found.append(sockaddr)
    return found


def bind_listeners(address: str) -> list[socket.socket]:
    """Listening TCP sockets on every address of `address` (`listen_sockaddrs`), SO_REUSEPORT.
    Raises `AddressInUseError` naming the address when one cannot be bound (or none exists)."""
    host, port = split_bind_address(address)
    try:
        sockaddrs = listen_sockaddrs(host, port)
    except socket.gaierror as e:
        raise AddressInUseError(f"cannot listen on {address}: {e}") from None
    bound: list[socket.socket] = []
    absent: list[str] = []
    try:
        for family, where in sockaddrs:
            try:
                bound.append(_bind(family, where, dual_stack=host in ("::", "")))
            except OSError as e:
                if e.errno not in ABSENT:
                    raise AddressInUseError(
                        f"cannot listen on {address} ({where[0]}): {e.strerror or e}") from None
                absent.append(f"{where[0]}: {e.strerror}")
    except AddressInUseError:
        for sock in bound:
            sock.close()
        raise
    if not bound:
        raise AddressInUseError(f"cannot listen on {address}: {'; '.join(absent)}")
    if absent:
        log.info("listening on %s without %s", address, "; ".join(absent))
    return bound


def _bind(family: socket.AddressFamily, where: tuple[str, int], *,
          dual_stack: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # All interfaces take IPv4 too; a specific IPv6 address only itself (its IPv4
            # sibling, such as localhost's 127.0.0.1, has a socket of its own).
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        sock.bind(where)
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock
