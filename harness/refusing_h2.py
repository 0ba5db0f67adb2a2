"""A backend that speaks HTTP/2 and takes no stream: each one is refused before any work.

What a backend at its own limits or shutting down tells a proxy: RST_STREAM(REFUSED_STREAM)
(`how="refuse"`), or GOAWAY whose last stream id leaves the new stream out (`how="goaway"`);
either way the call was never processed and the proxy may retry it elsewhere (RFC 9113 §8.7).
It answers SETTINGS and PINGs (the `h2` package does) and counts the streams it refused and
the PINGs it received, so a test can also see a proxy's keepalive.

    with RefusingBackend("refuse") as backend:
        route(port, backend.address, good.address)

Concurrency: one daemon thread serves every connection with `select` (every wait bounded by
`POLL_INTERVAL`, so `close` returns within it); counters are read under a lock.
"""

from __future__ import annotations

import select
import socket
import threading
from types import TracebackType
from typing import Literal

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

POLL_INTERVAL = 0.1
"""Seconds the serving thread waits for input before it looks at the stop flag."""
MAX_CONNECTIONS = 100
"""Connections served at once at most; beyond that, new ones are closed at once."""
STOP_TIMEOUT = 2.0


class RefusingBackend:
    def __init__(self, how: Literal["refuse", "goaway"], host: str = "127.0.0.1") -> None:
        self._how = how
        self._listener = socket.create_server((host, 0))
        self.address = f"{host}:{self._listener.getsockname()[1]}"
        self._connections: dict[socket.socket, h2.connection.H2Connection] = {}
        self._lock = threading.Lock()
        self._refused = 0
        self._pings = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="refusing h2", daemon=True)
        self._thread.start()

    @property
    def refused(self) -> int:
        """Streams refused so far."""
        with self._lock:
            return self._refused

    @property
    def pings(self) -> int:
        """PINGs received so far (not counting acknowledgements)."""
        with self._lock:
            return self._pings

    def _serve(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._listener, *self._connections], [], [],
                                           POLL_INTERVAL)
            for sock in readable:
                if sock is self._listener:
                    self._accept()
                else:
                    self._receive(sock)

    def _accept(self) -> None:
        sock, _ = self._listener.accept()
        if len(self._connections) >= MAX_CONNECTIONS:
            sock.close()
            return
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        connection.initiate_connection()
        self._connections[sock] = connection
        self._send(sock)

    def _receive(self, sock: socket.socket) -> None:
        connection = self._connections[sock]
        try:
            data = sock.recv(65536)
            events = connection.receive_data(data) if data else None
        except (OSError, h2.exceptions.ProtocolError):
            events = None
        if events is None:
            del self._connections[sock]
            sock.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived) and event.stream_id is not None:
                with self._lock:
                    self._refused += 1
                if self._how == "refuse":
                    connection.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                else:
                    connection.close_connection(last_stream_id=max(event.stream_id - 2, 0))
            elif isinstance(event, h2.events.PingReceived):
                with self._lock:
                    self._pings += 1
        self._send(sock)

    def _send(self, sock: socket.socket) -> None:
        data = self._connections[sock].data_to_send()
        if data:
            try:
                sock.sendall(data)
            except OSError:
                del self._connections[sock]
                sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=STOP_TIMEOUT)
        for sock in self._connections:
            sock.close()
        self._listener.close()

    def __enter__(self) -> RefusingBackend:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
