"""The ``test.Echo`` service of the backend program: raw bytes, all four RPC kinds.

One generic handler, no (de)serializers. ``Stats`` reports what the backend has seen.

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
                             aborts with that status and binary trailers;
                             ``header_bytes``: sends an ``x-big`` header of
                             that many bytes first
Sleep         unary-unary    sleeps the ascii float seconds, returns
                             ``slept``; a cancel or deadline while sleeping
                             is counted in ``cancelled``
Stats         unary-unary    JSON ``{name, calls, cancelled, sleeping, peers}``
                             (``sleeping``: Sleep calls in progress now)
(other)       —              UNIMPLEMENTED (the handler returns None)
============  =============  ===============================================

Concurrency: handlers are coroutines on the server's one asyncio loop; the counters are plain
attributes touched only from that loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc import aio

SERVICE = "test.Echo"
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


def build_handler(counters: Counters, delay: float = 0.0) -> grpc.GenericRpcHandler[bytes, bytes]:
    """The one generic handler serving ``test.Echo`` on raw bytes; ``Unary`` and ``WhoAmI``
    wait ``delay`` seconds before answering (a slow backend)."""
    name = counters.name
    Context = aio.ServicerContext[Any, Any]

    async def unary(request: bytes, context: Context) -> bytes:
        counters.record(context)
        if delay:
            await asyncio.sleep(delay)
        await context.send_initial_metadata((("backend", name), *echoed_metadata(context)))
        context.set_trailing_metadata((("backend-trailer", name),))
        return request

    async def whoami(request: bytes, context: Context) -> bytes:
        counters.record(context)
        if delay:
            await asyncio.sleep(delay)
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
        if spec.get("header_bytes"):
            await context.send_initial_metadata((("x-big", "h" * int(spec["header_bytes"])),))
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
