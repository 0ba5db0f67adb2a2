"""A real gRPC backend for process tests, run as its own process.

    python -m tests.support.backend --name NAME [--host 127.0.0.1|::1] [--port 0]

It serves the service ``test.Echo`` on raw bytes (one generic handler, no
(de)serializers, unlimited message sizes), prints exactly one line
``PORT <n>`` once serving, and serves until SIGTERM or SIGINT (or, with
``--stop-on-stdin-eof``, until its stdin closes), then stops with a
one-second grace and exits 0.

Methods (all raw bytes):

============  =============  ===============================================
method        shape          behaviour
============  =============  ===============================================
Unary         unary-unary    echoes the request; initial metadata
                             ``backend=NAME`` plus every ``x-*`` request key;
                             trailing metadata ``backend-trailer=NAME``
Whoami        unary-unary    returns NAME
ServerStream  unary-stream   request ``N[,SIZE]``: N messages ``str(i)``,
                             right-padded with ``.`` to SIZE bytes
ClientStream  stream-unary   returns ``count,total_bytes``
Bidi          stream-stream  echoes each message in order
Fail          unary-unary    request JSON ``{code, details, details_bin}``:
                             aborts with that status and binary trailers
Sleep         unary-unary    sleeps the ascii float seconds, returns
                             ``slept``; a cancel or deadline while sleeping
                             is counted in ``cancelled``
Stats         unary-unary    JSON ``{name, calls, cancelled, sleeping, peers}``
                             (``sleeping``: Sleep calls in progress now)
(other)       —              UNIMPLEMENTED (the handler returns None)
============  =============  ===============================================

Concurrency: one asyncio loop; handlers are coroutines; the counters are
plain attributes touched only from that loop. Signal handlers only set an
event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc import aio

from tests.support.reflection import enable_reflection

SERVICE = "test.Echo"
STOP_GRACE = 1.0
"""Seconds in-flight calls get after SIGTERM before the server cancels them."""

UNLIMITED_MESSAGES = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]

Metadata = tuple[tuple[str, str | bytes], ...]


@dataclass
class Counters:
    """What the backend has seen; reported by ``Stats``."""

    name: str
    calls: int = 0
    cancelled: int = 0
    sleeping: int = 0
    peers: set[str] = field(default_factory=set)

    def record(self, context: aio.ServicerContext[Any, Any]) -> None:
        self.calls += 1
        self.peers.add(context.peer())

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "name": self.name,
                "calls": self.calls,
                "cancelled": self.cancelled,
                "sleeping": self.sleeping,
                "peers": sorted(self.peers),
            }
        ).encode()


def echoed_metadata(context: aio.ServicerContext[Any, Any]) -> Metadata:
    """The request's ``x-*`` metadata (``-bin`` keys carry bytes), in order."""
    return tuple(
        (key, value) for key, value in (context.invocation_metadata() or ()) if key.startswith("x-")
    )


def padded(index: int, size: int) -> bytes:
    body = str(index).encode()
    return body.ljust(size, b".") if size else body


def build_handler(counters: Counters) -> grpc.GenericRpcHandler[bytes, bytes]:
    """The one generic handler serving ``test.Echo`` on raw bytes."""
    name = counters.name
    Context = aio.ServicerContext[Any, Any]

    async def unary(request: bytes, context: Context) -> bytes:
        counters.record(context)
        await context.send_initial_metadata((("backend", name), *echoed_metadata(context)))
        context.set_trailing_metadata((("backend-trailer", name),))
        return request

    async def whoami(request: bytes, context: Context) -> bytes:
        counters.record(context)
        return name.encode()

    async def server_stream(request: bytes, context: Context) -> AsyncIterator[bytes]:
        counters.record(context)
        count_text, _, size_text = request.decode().partition(",")
        size = int(size_text) if size_text else 0
        for index in range(int(count_text)):
            yield padded(index, size)

    async def client_stream(requests: AsyncIterator[bytes], context: Context) -> bytes:
        counters.record(context)
        count = total = 0
        async for message in requests:
            count += 1
            total += len(message)
        return f"{count},{total}".encode()

    async def bidi(requests: AsyncIterator[bytes], context: Context) -> AsyncIterator[bytes]:
        counters.record(context)
        async for message in requests:
            yield message

    async def fail(request: bytes, context: Context) -> bytes:
        counters.record(context)
        spec = json.loads(request)
        trailers = (
            ("grpc-status-details-bin", bytes.fromhex(spec.get("details_bin", ""))),
            ("x-trailer-bin", b"\x00\x01\xff"),
        )
        await context.abort(grpc.StatusCode[spec["code"]], spec.get("details", ""), trailers)
        raise AssertionError("abort returned")  # abort always raises

    async def sleep(request: bytes, context: Context) -> bytes:
        counters.record(context)
        counters.sleeping += 1
        try:
            await asyncio.sleep(float(request.decode()))
        except asyncio.CancelledError:
            # grpc.aio cancels the handler task on client cancel and on deadline.
            counters.cancelled += 1
            raise
        finally:
            counters.sleeping -= 1
        return b"slept"

    async def stats(request: bytes, context: Context) -> bytes:
        counters.record(context)
        return counters.as_json()

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Whoami": grpc.unary_unary_rpc_method_handler(whoami),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
            "Stats": grpc.unary_unary_rpc_method_handler(stats),
        },
    )


async def serve_backend(
    *,
    name: str,
    host: str,
    port: int,
    announce: Callable[[int], None],
    shutdown_trigger: Callable[[], Awaitable[object]],
    reflection: Sequence[str] | None = None,
) -> None:
    """Serve until ``shutdown_trigger`` completes; ``announce`` gets the bound port.
    ``reflection``: offer server reflection, declaring these methods unary on top of the truly
    unary ones; None: no reflection."""
    server = aio.server(options=UNLIMITED_MESSAGES)
    server.add_generic_rpc_handlers((build_handler(Counters(name=name)),))
    if reflection is not None:
        enable_reflection(server, reflection)
    # An IPv6 literal needs brackets, or grpc reads its last group as the port.
    authority = f"[{host}]" if ":" in host else host
    bound = server.add_insecure_port(f"{authority}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    await server.start()
    announce(bound)
    await shutdown_trigger()
    await server.stop(grace=STOP_GRACE)


def print_port(port: int) -> None:
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()


def watch_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` once stdin reaches EOF: the test process that holds the pipe died."""
    fd = sys.stdin.fileno()

    def on_readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, on_readable)


def build_stop_event(*, stop_on_stdin_eof: bool) -> asyncio.Event:
    """An event that SIGTERM or SIGINT (and, if asked, EOF on stdin) sets; call it in the loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if stop_on_stdin_eof:
        watch_stdin_eof(loop, stop)
    return stop


def parse_backend_args(prog: str, argv: list[str] | None) -> argparse.Namespace:
    """``--name``, ``--host``, ``--port`` and ``--stop-on-stdin-eof``: every backend's options."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reflection", action="store_true", help="offer server reflection")
    parser.add_argument("--declare-unary", action="append", default=[], metavar="METHOD",
                        help="with --reflection: claim this (streaming) method is unary")
    parser.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="also stop when stdin closes, so a killed test run leaves no backend behind",
    )
    return parser.parse_args(argv)


async def run_backend(*, name: str, host: str, port: int, stop_on_stdin_eof: bool,
                      reflection: Sequence[str] | None = None) -> None:
    stop = build_stop_event(stop_on_stdin_eof=stop_on_stdin_eof)
    await serve_backend(
        name=name, host=host, port=port, announce=print_port, shutdown_trigger=stop.wait,
        reflection=reflection,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_backend_args("python -m tests.support.backend", argv)
    asyncio.run(
        run_backend(
            name=args.name,
            host=args.host,
            port=args.port,
            stop_on_stdin_eof=args.stop_on_stdin_eof,
            reflection=args.declare_unary if args.reflection else None,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
