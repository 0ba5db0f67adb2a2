"""The kind suite's gRPC backend: answers every call with the name of the pod that served it.

Runs in the gproxy-mp image (Python and grpcio are there), from a ConfigMap:
``python /backend/backend_server.py``. Environment: ``POD_NAME`` and ``POD_IP`` (downward API;
it listens on that address, every address when unset), ``PORT`` (default 50051),
``SHUTDOWN_DELAY`` (seconds, default 5). The real-cluster tier (tests/cluster) runs the same file
for each pod, all in one network namespace: there, binding the pod's own IP is what keeps the pods
apart.

Methods, raw bytes (no protobuf code; the health reply is hand-encoded):

===============================  =============================================================
method                           reply
===============================  =============================================================
/test.Echo/Whoami                the pod name
/test.Echo/Sleep                 request: ascii seconds; sleeps that long, then the pod name
/grpc.health.v1.Health/Check     HealthCheckResponse: SERVING (``08 01``), or NOT_SERVING
                                 (``08 02``) once SIGTERM arrived; the kubelet's gRPC
                                 readiness probe calls it
===============================  =============================================================

Shutdown, as a well-behaved backend does it: on SIGTERM the health check turns NOT_SERVING at
once, the server keeps serving for ``SHUTDOWN_DELAY`` seconds (the EndpointSlice update reaches
gproxy-mp meanwhile and it stops sending new calls here), then stops with ``STOP_GRACE`` for
in-flight calls. One asyncio loop; the signal handler only sets an event.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import grpc
from grpc import aio

STOP_GRACE = 10.0
"""Seconds in-flight calls get once the shutdown delay is over."""
SERVING = b"\x08\x01"
"""grpc.health.v1.HealthCheckResponse{status: SERVING}: field 1, varint 1."""
NOT_SERVING = b"\x08\x02"


class Backend:
    def __init__(self, name: str) -> None:
        self.name = name.encode()
        self.stopping = asyncio.Event()

    async def whoami(self, request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        return self.name

    async def sleep(self, request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        await asyncio.sleep(float(request.decode() or "0"))
        return self.name

    async def check(self, request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        return NOT_SERVING if self.stopping.is_set() else SERVING

    def handlers(self) -> tuple[grpc.GenericRpcHandler[bytes, bytes], ...]:
        return (
            grpc.method_handlers_generic_handler("test.Echo", {
                "Whoami": grpc.unary_unary_rpc_method_handler(self.whoami),
                "Sleep": grpc.unary_unary_rpc_method_handler(self.sleep),
            }),
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
                "Check": grpc.unary_unary_rpc_method_handler(self.check),
            }),
        )


async def serve(*, name: str, address: str, port: int, shutdown_delay: float) -> None:
    backend = Backend(name)
    server = aio.server()
    server.add_generic_rpc_handlers(backend.handlers())
    server.add_insecure_port(f"{address}:{port}")
    await server.start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, backend.stopping.set)
    print(f"backend {name}: serving on port {port}", flush=True)
    await backend.stopping.wait()
    print(f"backend {name}: SIGTERM; serving {shutdown_delay}s more, then stopping", flush=True)
    await asyncio.sleep(shutdown_delay)
    await server.stop(STOP_GRACE)
    print(f"backend {name}: stopped", flush=True)


def main() -> None:
    name = os.environ.get("POD_NAME") or "backend"
    address = os.environ.get("POD_IP") or "0.0.0.0"
    port = int(os.environ.get("PORT", "50051"))
    shutdown_delay = float(os.environ.get("SHUTDOWN_DELAY", "5"))
    asyncio.run(serve(name=name, address=address, port=port, shutdown_delay=shutdown_delay))
    sys.exit(0)


if __name__ == "__main__":
    main()
