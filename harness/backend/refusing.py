"""The refusing mode of the backend program (``--refuse-all``): every call answered UNAVAILABLE
before anything is sent.

What an overloaded or shutting-down server does: the connection is READY, but each call ends
at once with UNAVAILABLE and no headers or messages (Trailers-Only), so the proxy may retry it
on another backend.

One method answers: ``churn.Control/Calls`` returns, as ascii, how many calls it has refused
so far, so a test can count attempts from the backend's side. The proxy's clients never call
the ``churn.Control`` service. Server-reflection calls, which gproxy-mp's workers make on their
own to learn unary methods, are refused too but not counted: they are not client attempts.

Concurrency: the counter is touched only from the server's one asyncio loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

CONTROL_METHOD = "/churn.Control/Calls"
REFLECTION_PREFIX = "/grpc.reflection."

if TYPE_CHECKING:  # grpc-stubs makes the class generic; at run time it is not subscriptable
    _GenericRpcHandler = grpc.GenericRpcHandler[bytes, bytes]
else:
    _GenericRpcHandler = grpc.GenericRpcHandler


class RefuseEverything(_GenericRpcHandler):
    def __init__(self, name: str) -> None:
        self.name = name
        self.refused = 0

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes]:
        if handler_call_details.method == CONTROL_METHOD:
            return grpc.unary_unary_rpc_method_handler(self._calls)
        if handler_call_details.method.startswith(REFLECTION_PREFIX):
            return grpc.stream_stream_rpc_method_handler(self._refuse_uncounted)
        return grpc.stream_stream_rpc_method_handler(self._refuse)

    async def _calls(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        return str(self.refused).encode()

    async def _refuse(
        self, requests: AsyncIterator[bytes], context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        self.refused += 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} is refusing calls")
        yield b""  # unreachable: abort raises; the yield makes this a stream handler

    async def _refuse_uncounted(
        self, requests: AsyncIterator[bytes], context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} is refusing calls")
        yield b""
