"""Method shapes from file descriptors, and the consensus over backends (pure)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import grpc.aio
import pytest
from google.protobuf import descriptor_pb2

from gproxy_mp.worker.reflection import (
    REFLECTION_METHODS,
    MethodShapes,
    ReflectionError,
    ask_reflection,
    method_shapes,
)
from tests.support.reflection import echo_file


def serialized(*files: descriptor_pb2.FileDescriptorProto) -> list[bytes]:
    return [f.SerializeToString() for f in files]


def test_unary_methods_are_those_streaming_neither_way() -> None:
    shapes = method_shapes(serialized(echo_file()), ["test.Echo"])
    assert shapes == {
        "/test.Echo/Unary": True, "/test.Echo/Whoami": True, "/test.Echo/Fail": True,
        "/test.Echo/Sleep": True, "/test.Echo/Stats": True,
        "/test.Echo/ServerStream": False, "/test.Echo/ClientStream": False,
        "/test.Echo/Bidi": False,
    }


def test_only_the_asked_services_count_and_a_package_less_file_names_them_bare() -> None:
    bare = descriptor_pb2.FileDescriptorProto(name="bare.proto")
    bare.service.add(name="Plain").method.add(name="Get", input_type=".M", output_type=".M")
    other = bare.service.add(name="Other")
    other.method.add(name="Put", input_type=".M", output_type=".M")
    assert method_shapes(serialized(echo_file(), bare), ["Plain"]) == {"/Plain/Get": True}


def test_a_method_is_unary_only_while_no_backend_declares_it_streaming() -> None:
    shapes = MethodShapes()
    assert shapes.learn({"/s.S/A": True, "/s.S/B": True, "/s.S/C": False})
    assert shapes.unary_methods() == {"/s.S/A", "/s.S/B"}
    assert shapes.learn({"/s.S/B": False})  # another version streams it: never unary again
    assert shapes.unary_methods() == {"/s.S/A"}
    assert not shapes.learn({"/s.S/B": True, "/s.S/A": True})
    assert shapes.unary_methods() == {"/s.S/A"}


def test_a_backend_declaring_a_streaming_method_unary_is_believed() -> None:
    shapes = method_shapes(serialized(echo_file(["ClientStream"])), ["test.Echo"])
    assert shapes["/test.Echo/ClientStream"] is True


class EndedCall:
    """A reflection call the server has already finished with `code`: a write may find it
    done (`on_write`), or succeed and the read then sees the end of the stream."""

    def __init__(self, code: grpc.StatusCode, *, on_write: bool) -> None:
        self._code, self._on_write = code, on_write

    async def write(self, request: bytes) -> None:
        if self._on_write:
            raise asyncio.InvalidStateError("RPC already finished")

    async def read(self) -> object:
        return grpc.aio.EOF

    async def code(self) -> grpc.StatusCode:
        return self._code

    def cancel(self) -> bool:
        return False


class EndedChannel:
    """Every reflection method's call is already over, one way or the other."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code
        self.asked: list[str] = []

    def stream_stream(self, path: str, **_: object) -> Callable[..., EndedCall]:
        self.asked.append(path)
        return lambda **__: EndedCall(self.code, on_write=len(self.asked) == 1)


async def test_a_call_finished_before_our_write_falls_back_to_the_next_version() -> None:
    channel = EndedChannel(grpc.StatusCode.UNIMPLEMENTED)
    assert await ask_reflection(channel) is None  # type: ignore[arg-type]
    assert channel.asked == list(REFLECTION_METHODS)


async def test_a_call_finished_with_another_code_is_an_error_not_a_fallback() -> None:
    channel = EndedChannel(grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(ReflectionError, match="UNAVAILABLE"):
        await ask_reflection(channel)  # type: ignore[arg-type]
    assert channel.asked == list(REFLECTION_METHODS[:1])
