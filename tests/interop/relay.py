"""A byte-counting TCP relay: what really crosses one hop, measured on the wire.

``Relay(target)`` listens on 127.0.0.1:<port 0> and pipes every accepted connection to
``target`` unchanged, adding up the bytes it moves in each direction (``upstream``: toward the
target, ``downstream``: back). Placed in front of the proxy and in front of each backend, it
shows whether a hop carried a compressed or a raw message.

Concurrency: one daemon thread runs an asyncio loop that owns the listener and every piped
connection; the test thread reads the counters (plain ints, written only by that loop) and
calls ``close``, which stops the loop and joins the thread with a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

START_TIMEOUT = 5.0
"""Seconds the relay's thread may take to start listening."""
STOP_TIMEOUT = 5.0
"""Seconds ``close`` waits for the relay's thread to end."""
CHUNK = 65536


class Relay:
    def __init__(self, target: str) -> None:
        self._host, _, port = target.rpartition(":")
        self._port = int(port)
        self.upstream = 0
        self.downstream = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=f"relay {target}", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise TimeoutError(f"relay to {target} did not start within {START_TIMEOUT}s")
        self.address = f"127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.upstream = self.downstream = 0

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self._pipe_connection(reader, writer)
            finally:
                tasks.discard(task)

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pipe_connection(self, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self._host, self._port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(
                self._pipe(reader, upstream_writer, upstream=True),
                self._pipe(upstream_reader, writer, upstream=False),
            )
        finally:
            for each in (writer, upstream_writer):
                each.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    upstream: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(CHUNK):
                if upstream:
                    self.upstream += len(chunk)
                else:
                    self.downstream += len(chunk)
                writer.write(chunk)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    def close(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STOP_TIMEOUT)
