"""A gRPC backend that answers every call UNAVAILABLE before sending anything, run as a process.

    python -m tests.churn.unavailable_backend --name NAME [--host 127.0.0.1] [--port 0]

What an overloaded or shutting-down server does: the connection is READY, but each call ends
at once with UNAVAILABLE and no headers or messages (Trailers-Only), so the proxy may retry it
on another backend. It prints exactly one line ``PORT <n>`` once serving and serves until
SIGTERM or SIGINT (or, with ``--stop-on-stdin-eof``, until its stdin closes).

One method answers: ``churn.Control/Calls`` returns, as ascii, how many calls it has refused
so far, so a test can count attempts from the backend's side. The proxy's clients never call
the ``churn.Control`` service. Server-reflection calls, which gproxy-mp's workers make on their
own to learn unary methods, are refused too but not counted: they are not client attempts.

Concurrency: one asyncio loop; the counter is touched only from it; signal handlers only set
an event.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from tests.support.backend import STOP_GRACE, build_stop_event, parse_backend_args, print_port

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


async def run(*, name: str, host: str, port: int, stop_on_stdin_eof: bool) -> None:
    stop = build_stop_event(stop_on_stdin_eof=stop_on_stdin_eof)
    server = aio.server()
    server.add_generic_rpc_handlers((RefuseEverything(name),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    await server.start()
    print_port(bound)
    await stop.wait()
    await server.stop(grace=STOP_GRACE)


def main(argv: list[str] | None = None) -> int:
    args = parse_backend_args("python -m tests.churn.unavailable_backend", argv)
    asyncio.run(
        run(
            name=args.name,
            host=args.host,
            port=args.port,
            stop_on_stdin_eof=args.stop_on_stdin_eof,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
