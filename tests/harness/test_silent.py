"""The hung peer: it accepts, says nothing, and lets go of every connection when closed."""

from __future__ import annotations

import socket

from harness.silent import SilentListener
from harness.waiting import wait_until

QUIET = 0.3
"""Seconds a connection is watched for a first byte that must not come."""


def test_a_silent_listener_accepts_and_never_speaks_until_closed() -> None:
    with SilentListener() as silent, socket.create_connection(
            (silent.host, silent.port), timeout=5) as connection:
        connection.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert wait_until(lambda: silent.accepted == 1, timeout=5)
        connection.settimeout(QUIET)
        try:
            data = connection.recv(1)
        except TimeoutError:
            data = None
        assert data is None, f"the silent peer sent {data!r}"
        silent.close()
        connection.settimeout(5)
        try:  # closed from its side, with our bytes unread: a reset; no connection leaks
            ended = connection.recv(1) == b""
        except ConnectionResetError:
            ended = True
        assert ended
