"""A raw HTTP/2 client for hostile-input tests: what a grpcio client would never send.

Built on the `h2` package's sans-io connection over a plain blocking socket (every read has a
timeout). It sends gRPC-shaped requests and can reset them at once (rapid reset,
CVE-2023-44487) or send header blocks of any size; it reports what the server answered.
Concurrency: the caller's thread only.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

READ_TIMEOUT = 5.0
"""Seconds one read from the proxy may take before the exchange counts as stalled."""


@dataclass
class Exchange:
    """What the server said on one connection."""

    responses: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    """Response headers (Trailers-Only included) by stream id."""
    resets: dict[int, int] = field(default_factory=dict)  # stream id -> error code
    goaway: int | None = None  # the GOAWAY error code, if one came
    closed: bool = False  # the server closed the TCP connection

    def status(self, stream: int) -> bytes | None:
        """The stream's grpc-status, once its trailers (or Trailers-Only answer) came."""
        return next((v for k, v in self.responses.get(stream, []) if k == b"grpc-status"), None)


class RawClient:
    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._sock = socket.create_connection((host, int(port)), timeout=READ_TIMEOUT)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._conn = h2.connection.H2Connection(config=config)
        self._conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 1 << 24})
        self._conn.initiate_connection()
        self._flush()
        self.exchange = Exchange()

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data:
            self._sock.sendall(data)

    @staticmethod
    def request_headers(method: str, extra: Sequence[tuple[str, str]] = ()
                        ) -> list[tuple[str, str]]:
        return [(":method", "POST"), (":scheme", "http"), (":path", method),
                (":authority", "proxy"), ("content-type", "application/grpc"),
                ("te", "trailers"), *extra]

    def open_stream(self, method: str, *, extra: Sequence[tuple[str, str]] = (),
                    end: bool = False) -> int:
        stream = self._conn.get_next_available_stream_id()
        self._conn.send_headers(stream, self.request_headers(method, extra), end_stream=end)
        self._flush()
        return stream

    def open_and_reset(self, method: str, count: int) -> None:
        """Open `count` streams and reset each at once, all in one write."""
        headers = self.request_headers(method)
        for _ in range(count):
            stream = self._conn.get_next_available_stream_id()
            self._conn.send_headers(stream, headers)
            self._conn.reset_stream(stream, error_code=8)  # CANCEL
        self._flush()

    def send_message(self, stream: int, message: bytes) -> None:
        self._conn.send_data(stream, b"\0" + len(message).to_bytes(4, "big") + message,
                             end_stream=True)
        self._flush()

    def reset(self, stream: int) -> None:
        self._conn.reset_stream(stream, error_code=8)  # CANCEL
        self._flush()

    def read_for(self, seconds: float) -> Exchange:
        """Read what the server sends for up to `seconds` (or until it closes)."""
        deadline = time.monotonic() + seconds
        while not self.exchange.closed and time.monotonic() < deadline:
            self._sock.settimeout(max(0.01, min(READ_TIMEOUT, deadline - time.monotonic())))
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                self.exchange.closed = True
                break
            try:
                events = self._conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.exchange.closed = True
                break
            for event in events:
                self._record(event)
            try:
                self._flush()
            except OSError:
                self.exchange.closed = True
        return self.exchange

    def _record(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
            assert event.stream_id is not None
            self.exchange.responses.setdefault(event.stream_id, []).extend(
                (bytes(k), bytes(v)) for k, v in event.headers or [])
        elif isinstance(event, h2.events.StreamReset):
            assert event.stream_id is not None
            self.exchange.resets[event.stream_id] = int(event.error_code or 0)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.exchange.goaway = int(event.error_code or 0)
        elif isinstance(event, h2.events.DataReceived):
            assert event.stream_id is not None
            self._conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def close(self) -> None:
        self._sock.close()
