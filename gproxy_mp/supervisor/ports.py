"""Listen addresses: prove each is free, and hold it for this instance's workers.

Workers bind with SO_REUSEPORT, which would let a second gproxy-mp (or any program setting the
same option under the same user) silently share the port. So before anything starts, the
supervisor binds each address once *without* SO_REUSEPORT: that fails with EADDRINUSE if any
process holds it, listening or not. It then keeps a bound, never-listening socket with
SO_REUSEPORT only: workers can join it (same user, same option), a later probe cannot, and a
bound socket that does not listen never receives a connection.
"""

from __future__ import annotations

import errno
import socket

from gproxy_mp.config import ListenAddress
from gproxy_mp.errors import AddressInUseError, ConfigError


def _sockaddr(listen: ListenAddress) -> tuple[socket.AddressFamily, tuple[str, int]]:
    if not listen.host:
        return socket.AF_INET6, ("::", listen.port)
    try:
        infos = socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError(f"listen address {listen}: cannot resolve {listen.host!r}: "
                          f"{e.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


def _bind(listen: ListenAddress, *, reuse_addr: bool, reuse_port: bool,
          what: str = "listen address") -> socket.socket:
    family, sockaddr = _sockaddr(listen)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6 and not listen.host:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if reuse_addr:  # TIME_WAIT leftovers of an earlier run must not count as "in use"
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
    except OSError as e:
        sock.close()
        raise _explain(listen, e, what) from None
    return sock


def _explain(listen: ListenAddress, error: OSError, what: str) -> AddressInUseError:
    if error.errno == errno.EADDRINUSE:
        return AddressInUseError(f"{what} {listen} is already in use by another process")
    if error.errno == errno.EADDRNOTAVAIL:
        return AddressInUseError(f"{what} {listen} is not an address of this host")
    if error.errno == errno.EACCES:
        return AddressInUseError(f"{what} {listen}: permission denied (ports below "
                                 "1024 need root or CAP_NET_BIND_SERVICE)")
    return AddressInUseError(f"{what} {listen}: {error.strerror}")


def reserve_listen_address(listen: ListenAddress) -> socket.socket:
    """Fail if anyone holds `listen`; else a socket that keeps it for our workers."""
    _bind(listen, reuse_addr=True, reuse_port=False).close()
    return _bind(listen, reuse_addr=False, reuse_port=True)


def check_free(listen: ListenAddress, *, what: str = "listen address") -> None:
    """Fail as `reserve_listen_address` would if anyone holds `listen` (`what` names it in the
    error); hold nothing after."""
    _bind(listen, reuse_addr=True, reuse_port=False, what=what).close()
