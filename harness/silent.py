"""A hung peer: a TCP listener that accepts connections and never says a word.

What a backend looks like whose process accepts but never serves (a wedged server, a port
held by the wrong program, a TLS terminator that stalls the handshake): the TCP handshake
completes, then nothing, neither HTTP/2 SETTINGS nor a TLS ServerHello, and the connection is
never closed from this side. Bytes the proxy sends are left unread.

    with SilentListener() as silent:
        route(port, silent.address, good.address)

Concurrency: one daemon thread accepts (polling every `POLL_INTERVAL`, so `close` returns
within it) and holds at most `MAX_HELD` connections; beyond that, new ones are accepted and
closed at once. `close` closes the listener and every held connection.
"""

from __future__ import annotations

import select
import socket
import threading
from types import TracebackType

POLL_INTERVAL = 0.1
"""Seconds the accepting thread waits for a connection before it looks at the stop flag."""
MAX_HELD = 1000
"""Connections held open at most: enough for any test, bounded for a runaway client."""
STOP_TIMEOUT = 2.0
"""Seconds `close` waits for the accepting thread."""


class SilentListener:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self._listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._listener.bind((host, 0))
        self._listener.listen(128)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent listener", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def accepted(self) -> int:
        """Connections accepted and held so far."""
        with self._lock:
            return len(self._held)

    def _accept(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._listener], [], [], POLL_INTERVAL)
            if not readable or self._stop.is_set():
                continue
            connection, _ = self._listener.accept()
            with self._lock:
                if len(self._held) < MAX_HELD:
                    self._held.append(connection)
                    continue
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(STOP_TIMEOUT)
        self._listener.close()
        with self._lock:
            for connection in self._held:
                connection.close()
            self._held.clear()

    def __enter__(self) -> SilentListener:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
