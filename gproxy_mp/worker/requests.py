"""The client's request messages of one call, shared by that call's attempts.

One task reads the client's stream into the log; one sender per attempt writes the log to its
backend call. While the call can still be retried the log keeps every message (up to
`RETRY_BUFFER_BYTES`) so a new attempt can replay them; once a response has reached the client
or the buffer overflows, messages are dropped as soon as they are sent. The reader pauses while
more than `window` bytes wait to be sent, so a slow backend slows the client (HTTP/2 flow
control does the rest) instead of growing the proxy's memory. Sizes count the 5-byte gRPC
frame header too, so a stream of empty messages fills the window as well.

Waits use `Signal`, bound to the worker's loop when the log is made, rather than asyncio.Event
and asyncio.timeout: on Python 3.11 those look up the running loop on every wait, and each
look-up is a getpid() system call (CPython's fork check) -- several per call, about 5% of a
worker's CPU in a profile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

from gproxy_mp.worker.retry import RETRY_BUFFER_BYTES

FRAME_HEADER_BYTES = 5


class RequestSink(Protocol):
    async def write(self, request: bytes) -> None: ...
    async def done_writing(self) -> None: ...


def _size(message: bytes) -> int:
    return len(message) + FRAME_HEADER_BYTES


class Signal:
    """An asyncio.Event for one loop, given up front: set, clear, and wait with a timeout."""

    __slots__ = ("_flag", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._flag = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        if not self._flag:
            self._flag = True
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    async def wait(self, timeout: float | None = None) -> bool:
        """Until set (True), or until `timeout` seconds have passed (False)."""
        if self._flag:
            return True
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        timer = self._loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            self._waiters.remove(waiter)
            if timer is not None:
                timer.cancel()
        return self._flag


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class RequestLog:
    def __init__(self, *, window: int = RETRY_BUFFER_BYTES,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._window = window
        self._messages: list[bytes] = []
        self._base = 0  # absolute index of _messages[0]
        self._bytes = 0  # size of everything held
        self._unsent = 0  # size of what the current sender has not written yet
        self._sent = 0  # absolute index the current sender has reached
        self._eof = False
        self.replayable = True
        self._loop = loop or asyncio.get_running_loop()
        self._arrived = Signal(self._loop)
        self._space = Signal(self._loop)

    async def read_from(self, requests: AsyncIterator[bytes]) -> None:
        """Read the client's messages until its half-close."""
        async for message in requests:
            self._messages.append(message)
            self._bytes += _size(message)
            self._unsent += _size(message)
            if self.replayable and self._bytes > self._window:
                self.commit()
            self._arrived.set()
            while self._unsent > self._window:
                self._space.clear()
                await self._space.wait()
        self._eof = True
        self._arrived.set()

    async def single_message(self, *, timeout: float) -> bytes | None:
        """The request, if the client sent exactly one message and half-closed within
        `timeout` seconds; None as soon as it is clear it did not. Call before any sender."""
        deadline = self._loop.time() + timeout
        while not self._eof and len(self._messages) < 2:
            self._arrived.clear()
            left = deadline - self._loop.time()
            if left <= 0 or not await self._arrived.wait(left):
                return None
        if self._eof and len(self._messages) == 1 and self._base == 0:
            return self._messages[0]
        return None

    def commit(self) -> None:
        """No replay will be needed any more: forget what has been sent."""
        self.replayable = False
        self._trim()

    async def send_to(self, call: RequestSink) -> None:
        """Write every message, replaying from the first, then half-close `call`."""
        if not self.replayable and self._base > 0:
            raise RuntimeError("request log was committed: it cannot be replayed")
        index = self._sent = self._base
        self._unsent = self._bytes
        while True:
            self._arrived.clear()
            if index < self._base + len(self._messages):
                message = self._messages[index - self._base]
                await call.write(message)
                index += 1
                self._sent = index
                self._unsent -= _size(message)
                if not self.replayable:
                    self._trim()
                self._space.set()
            elif self._eof:
                await call.done_writing()
                return
            else:
                await self._arrived.wait()

    def _trim(self) -> None:
        drop = self._sent - self._base
        if drop > 0:
            self._bytes -= sum(_size(m) for m in self._messages[:drop])
            del self._messages[:drop]
            self._base = self._sent
