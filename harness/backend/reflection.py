"""Server reflection for the test backend: a hand-built descriptor of ``test.Echo``.

The test backend serves raw bytes with no generated code, so its file descriptor is written
here with the methods' true shapes. ``declared_unary`` lets a test make the backend claim a
streaming method is unary (to see that the proxy believed it).
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import descriptor_pb2, descriptor_pool
from grpc import aio
from grpc_reflection.v1alpha import reflection

PACKAGE = "test"
SERVICE = "Echo"
SHAPES = {  # method: (client_streaming, server_streaming)
    "Unary": (False, False),
    "Whoami": (False, False),
    "ServerStream": (False, True),
    "ClientStream": (True, False),
    "Bidi": (True, True),
    "Fail": (False, False),
    "Sleep": (False, False),
    "Stats": (False, False),
}


def echo_file(declared_unary: Iterable[str] = ()) -> descriptor_pb2.FileDescriptorProto:
    forced = set(declared_unary)
    proto = descriptor_pb2.FileDescriptorProto(name="test/echo.proto", package=PACKAGE,
                                               syntax="proto3")
    proto.message_type.add(name="Raw")
    service = proto.service.add(name=SERVICE)
    for name, (client_streaming, server_streaming) in SHAPES.items():
        unary = name in forced
        service.method.add(name=name, input_type=f".{PACKAGE}.Raw",
                           output_type=f".{PACKAGE}.Raw",
                           client_streaming=client_streaming and not unary,
                           server_streaming=server_streaming and not unary)
    return proto


def enable_reflection(server: aio.Server, declared_unary: Iterable[str] = ()) -> None:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(echo_file(declared_unary))
    reflection.enable_server_reflection(
        (f"{PACKAGE}.{SERVICE}", reflection.SERVICE_NAME), server, pool=pool)
