"""Slowloris at the door: a client that connects and never completes its HTTP/2 connection
preface (the 24 octets and its SETTINGS frame, RFC 9113 §3.4) is closed after a bounded time,
on both planes, while the worker goes on serving everyone else.

Each client is a raw socket: silent, dripping the preface one byte a second, or sending the
24 octets and never its SETTINGS. Every read has a timeout; each case lasts at most `BOUND`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from harness import client
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port

pytestmark = pytest.mark.timeout(90)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HANDSHAKE_TIMEOUT = 10.0
"""Seconds a worker gives a new connection to complete its preface (both planes)."""
BOUND = HANDSHAKE_TIMEOUT + 5.0
"""Seconds after which a connection still open fails the test."""
DRIP_INTERVAL = 1.0
"""Seconds between two bytes of a dripping client: its preface would take 24 s."""


def closed_by_server(sock: socket.socket, *, wait: float) -> bool:
    """Read (and drop) what the server sends for up to `wait` seconds; True once it closed."""
    sock.settimeout(wait)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except TimeoutError:
        return False
    except OSError:  # reset
        return True


def send_until_closed(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return True
    return False


@both_planes
@pytest.mark.parametrize("sends", ["nothing", "the preface one byte a second",
                                   "the preface without its SETTINGS"])
def test_a_client_that_never_completes_its_preface_is_closed_in_bounded_time(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy], sends: str
) -> None:
    port = free_port()
    proxy = proxies(*proxy_args(route(port, backends("a")), workers=1))
    address = f"127.0.0.1:{port}"
    proxy.wait_serving(address)
    started = time.monotonic()
    served_meanwhile = False
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        if sends == "the preface without its SETTINGS":
            sock.sendall(PREFACE)
        closed = False
        sent = 0
        while not closed and time.monotonic() - started < BOUND:
            if sends == "the preface one byte a second" and sent < len(PREFACE):
                closed = send_until_closed(sock, PREFACE[sent:sent + 1])
                sent += 1
            closed = closed or closed_by_server(sock, wait=DRIP_INTERVAL)
            if not served_meanwhile:
                served_meanwhile = client.wait_until_serving(address, timeout=5) == "a"
        took = time.monotonic() - started
    assert closed, f"still open after {took:.0f}s\n{proxy.output()}"
    assert served_meanwhile, proxy.output()
    assert client.wait_until_serving(address, timeout=5) == "a", proxy.output()
