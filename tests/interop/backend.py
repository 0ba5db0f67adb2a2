"""A grpcio backend for the interop-style tier, run as its own process.

    python -m tests.interop.backend --name NAME [--max-metadata-size BYTES] [--compress-all]

It serves ``interop.Echo`` on raw bytes (one generic handler, no (de)serializers, unlimited
message sizes), prints exactly one line ``PORT <n>`` once serving on 127.0.0.1, and serves until
SIGTERM, SIGINT or EOF on stdin, then stops with a one-second grace and exits 0.
``--max-metadata-size`` sets grpc's soft and hard metadata limits (default: grpc's own, 8 KiB
soft / 16 KiB hard); ``--compress-all`` makes the server compress every response with gzip.

=============  =============  ===============================================================
method         shape          behaviour
=============  =============  ===============================================================
Whoami         unary-unary    returns NAME
Echo           unary-unary    echoes the request; every ``x-*`` request key (``-bin`` ones as
                              bytes) comes back as initial *and* trailing metadata, after
                              ``backend=NAME``; with request key ``compress-response: gzip``
                              the response is gzip-compressed (``context.set_compression``)
Inspect        unary-unary    JSON ``{"keys": [...], "encoding": ..., "accept_encoding": ...}``:
                              the request metadata keys and the grpc compression headers the
                              backend's application saw
Digest         unary-unary    ``<length>,<sha256 hex>`` of the request
Blob           unary-unary    request ascii ``N``: N bytes of ``pattern(N)``
Bidi           stream-stream  echoes each message in order
=============  =============  ===============================================================

Concurrency: one asyncio loop; handlers are coroutines. Signal handlers only set an event.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio

SERVICE = "interop.Echo"
STOP_GRACE = 1.0
"""Seconds in-flight calls get after SIGTERM before the server cancels them."""
UNLIMITED_MESSAGES = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]
PATTERN = bytes(range(251))  # a prime length: no message size is a multiple of it by accident

Context = aio.ServicerContext[Any, Any]


def pattern(size: int) -> bytes:
    """``size`` deterministic, incompressible-ish bytes."""
    repeats, rest = divmod(size, len(PATTERN))
    return PATTERN * repeats + PATTERN[:rest]


def metadata_limits(size: int) -> list[tuple[str, int]]:
    """Channel or server options that raise grpc's soft and hard metadata limits to ``size``."""
    return [("grpc.max_metadata_size", size), ("grpc.absolute_max_metadata_size", size)]


def pending_limits(count: int) -> list[tuple[str, int]]:
    """Server options that let ``count`` calls wait for the application, soft and hard.

    grpc core's defaults are 1000 (soft: calls beyond it are cancelled at random) and 3000
    (hard): a burst of 10,000 new calls on one connection gets about 15-45% of them CANCELLED
    before any handler runs, whatever ``maximum_concurrent_rpcs`` says.
    """
    return [("grpc.server.max_pending_requests", count),
            ("grpc.server.max_pending_requests_hard_limit", count)]


def echoed(context: Context) -> tuple[tuple[str, str | bytes], ...]:
    return tuple((k, v) for k, v in (context.invocation_metadata() or ()) if k.startswith("x-"))


def build_handler(name: str) -> grpc.GenericRpcHandler[bytes, bytes]:
    async def whoami(request: bytes, context: Context) -> bytes:
        return name.encode()

    async def echo(request: bytes, context: Context) -> bytes:
        metadata = dict(context.invocation_metadata() or ())
        if metadata.get("compress-response") == "gzip":
            context.set_compression(grpc.Compression.Gzip)
        entries = echoed(context)
        await context.send_initial_metadata((("backend", name), *entries))
        context.set_trailing_metadata(entries)
        return request

    async def inspect(request: bytes, context: Context) -> bytes:
        metadata = list(context.invocation_metadata() or ())
        seen = dict(metadata)
        return json.dumps({
            "keys": [key for key, _ in metadata],
            "encoding": seen.get("grpc-encoding"),
            "accept_encoding": seen.get("grpc-accept-encoding"),
        }).encode()

    async def digest(request: bytes, context: Context) -> bytes:
        return f"{len(request)},{hashlib.sha256(request).hexdigest()}".encode()

    async def blob(request: bytes, context: Context) -> bytes:
        return pattern(int(request.decode()))

    async def bidi(requests: AsyncIterator[bytes], context: Context) -> AsyncIterator[bytes]:
        async for message in requests:
            yield message

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Whoami": grpc.unary_unary_rpc_method_handler(whoami),
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Inspect": grpc.unary_unary_rpc_method_handler(inspect),
            "Digest": grpc.unary_unary_rpc_method_handler(digest),
            "Blob": grpc.unary_unary_rpc_method_handler(blob),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        },
    )


async def run_backend(*, name: str, max_metadata_size: int | None, compress_all: bool,
                      max_pending_requests: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    fd = sys.stdin.fileno()

    def on_stdin() -> None:  # EOF: the test process that holds the pipe is gone
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, on_stdin)
    options: list[tuple[str, Any]] = list(UNLIMITED_MESSAGES)
    if max_metadata_size is not None:
        options += metadata_limits(max_metadata_size)
    if max_pending_requests is not None:
        options += pending_limits(max_pending_requests)
    server = aio.server(
        options=options, compression=grpc.Compression.Gzip if compress_all else None
    )
    server.add_generic_rpc_handlers((build_handler(name),))
    port = server.add_insecure_port("127.0.0.1:0")
    if port == 0:
        raise OSError("cannot bind 127.0.0.1:0")
    await server.start()
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    await stop.wait()
    await server.stop(grace=STOP_GRACE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.interop.backend")
    parser.add_argument("--name", required=True)
    parser.add_argument("--max-metadata-size", type=int, default=None)
    parser.add_argument("--compress-all", action="store_true")
    parser.add_argument("--max-pending-requests", type=int, default=None)
    args = parser.parse_args(argv)
    asyncio.run(run_backend(name=args.name, max_metadata_size=args.max_metadata_size,
                            compress_all=args.compress_all,
                            max_pending_requests=args.max_pending_requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
