"""The client's request messages of one call, shared by that call's attempts.

One task reads the client's stream into the log; one sender per attempt writes the log to its
backend call. While the call can still be retried the log keeps every message (up to
`RETRY_BUFFER_BYTES`) so a new attempt can replay them; once a response has reached the client
or the buffer overflows, messages are dropped as soon as they are sent. The reader pauses while
more than `window` bytes wait to be sent, so a slow backend slows the client (HTTP/2 flow
control does the rest) instead of growing the proxy's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

from gproxy_mp.worker.retry import RETRY_BUFFER_BYTES


class RequestSink(Protocol):
    async def write(self, request: bytes) -> None: ...
    async def done_writing(self) -> None: ...


class RequestLog:
    def __init__(self, *, window: int = RETRY_BUFFER_BYTES) -> None:
        self._window = window
        self._messages: list[bytes] = []
        self._base = 0  # absolute index of _messages[0]
        self._bytes = 0
        self._sent = 0  # absolute index the current sender has reached
        self._eof = False
        self.replayable = True
        self._arrived = asyncio.Event()
        self._space = asyncio.Event()

    async def read_from(self, requests: AsyncIterator[bytes]) -> None:
        """Read the client's messages until its half-close."""
        async for message in requests:
            self._messages.append(message)
            self._bytes += len(message)
            if self.replayable and self._bytes > self._window:
                self.commit()
            self._arrived.set()
            while self._unsent_bytes() > self._window:
                self._space.clear()
                await self._space.wait()
        self._eof = True
        self._arrived.set()

    def commit(self) -> None:
        """No replay will be needed any more: forget what has been sent."""
        self.replayable = False
        self._trim()

    async def send_to(self, call: RequestSink) -> None:
        """Write every message, replaying from the first, then half-close `call`."""
        if not self.replayable and self._base > 0:
            raise RuntimeError("request log was committed: it cannot be replayed")
        index = self._sent = self._base
        while True:
            self._arrived.clear()
            if index < self._base + len(self._messages):
                await call.write(self._messages[index - self._base])
                index += 1
                self._sent = index
                if not self.replayable:
                    self._trim()
            elif self._eof:
                await call.done_writing()
                return
            else:
                await self._arrived.wait()

    def _unsent_bytes(self) -> int:
        return sum(len(m) for m in self._messages[self._sent - self._base :])

    def _trim(self) -> None:
        drop = self._sent - self._base
        if drop > 0:
            self._bytes -= sum(len(m) for m in self._messages[:drop])
            del self._messages[:drop]
            self._base = self._sent
            self._space.set()
