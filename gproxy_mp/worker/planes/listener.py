"""The route's listening socket, bound in Python for a plane that serves on a raw fd.

The same socket gRPC's server makes for the grpcio plane: SO_REUSEADDR and SO_REUSEPORT (every
worker of the route binds the address; the supervisor has checked no one else holds it), all
interfaces as `[::]` in dual stack, the system's full backlog. The worker keeps this socket; the
engine gets a duplicate of its descriptor and owns that one.
"""

from __future__ import annotations

import socket

from gproxy_mp.errors import AddressInUseError


def split_bind_address(address: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` (`ListenAddress.bind_address`) → (host, port)."""
    host, _, port = address.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


def bind_listener(address: str) -> socket.socket:
    """A listening TCP socket on `address` (its first resolved address), SO_REUSEPORT.
    Raises `AddressInUseError` naming the address when it cannot be bound."""
    host, port = split_bind_address(address)
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise AddressInUseError(f"cannot listen on {address}: {e}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(where)
        sock.listen(socket.SOMAXCONN)
    except OSError as e:
        sock.close()
        raise AddressInUseError(f"cannot listen on {address}: {e.strerror or e}") from None
    return sock
