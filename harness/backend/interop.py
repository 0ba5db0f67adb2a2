"""The ``interop.Echo`` service of the backend program: what the interop tier checks beyond
grpc-go's interop client (compression, metadata sizes, large messages, many streams).

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

The server options the tier needs (``--max-metadata-size``, ``--max-pending-requests``,
``--compress-all``) are the program's (`harness.backend.program`), built by `metadata_limits`
and `pending_limits` here.

Concurrency: handlers are coroutines on the server's one asyncio loop.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio

SERVICE = "interop.Echo"
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
