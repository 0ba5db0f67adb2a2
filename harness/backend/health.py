"""The health mode of the backend program (``--health``): gRPC's own health service.

grpcio-health-checking's `HealthServicer` answers ``grpc.health.v1.Health/Check`` and
``Watch`` for the server as a whole ("") and for ``test.Echo``, SERVING at start. A test
changes the answer with ``harness.Control/SetHealth`` (request: a status name, e.g.
``NOT_SERVING``), sent to the backend directly; the proxy's clients never call it.

Concurrency: the servicer is used only from the server's one asyncio loop.
"""

from __future__ import annotations

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer  # health.aio, which its stubs do not name

SET_HEALTH_METHOD = "/harness.Control/SetHealth"
SERVICES = ("", "test.Echo")


async def enable_health(server: aio.Server) -> HealthServicer:
    """Add the health service and its control method to `server` (before it starts)."""
    servicer = HealthServicer()
    for service in SERVICES:
        await servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)

    async def set_health(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        status = health_pb2.HealthCheckResponse.ServingStatus.Value(request.decode())
        for service in SERVICES:
            await servicer.set(service, status)
        return request

    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "harness.Control",
        {"SetHealth": grpc.unary_unary_rpc_method_handler(set_health)}),))
    return servicer
