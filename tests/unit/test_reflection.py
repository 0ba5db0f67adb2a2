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
from harness.backend.reflection import echo_file


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
    """A reflection call the server has already finished with `code`, in one of the ways
    grpc.aio shows it: a write finds the call done (`invalid_state`), or the write fails and
    grpc.aio replaces the status with INTERNAL (`overwritten`; only a done-callback saw the
    real one), or the write succeeds and the read sees the end of the stream (neither)."""

    def __init__(self, code: grpc.StatusCode, *, invalid_state: bool = False,
                 overwritten: bool = False) -> None:
        self._code, self._invalid_state, self._overwritten = code, invalid_state, overwritten

    def add_done_callback(self, callback: Callable[[EndedCall], None]) -> None:
        callback(self)  # already done: grpc.aio runs it at once, with the first status

    async def write(self, request: bytes) -> None:
        if self._invalid_state:
            raise asyncio.InvalidStateError("RPC already finished")
        if self._overwritten:
            self._code = grpc.StatusCode.INTERNAL
            raise grpc.aio.AioRpcError(self._code, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       details="Internal error from Core")

    async def read(self) -> object:
        return grpc.aio.EOF

    async def code(self) -> grpc.StatusCode:
        return self._code

    async def details(self) -> str:
        return ""

    async def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def cancel(self) -> bool:
        return False


class EndedChannel:
    """Every reflection method's call is already over; the first one ends `first_way`."""

    def __init__(self, code: grpc.StatusCode, first_way: str = "invalid_state") -> None:
        self.code, self.first_way = code, first_way
        self.asked: list[str] = []

    def stream_stream(self, path: str, **_: object) -> Callable[..., EndedCall]:
        self.asked.append(path)
        first = len(self.asked) == 1 and self.first_way != "read_ends"
        way = {self.first_way: True} if first else {}
        return lambda **__: EndedCall(self.code, **way)


@pytest.mark.parametrize("first_way", ["invalid_state", "overwritten", "read_ends"])
async def test_a_call_finished_before_our_write_falls_back_to_the_next_version(
    first_way: str,
) -> None:
    channel = EndedChannel(grpc.StatusCode.UNIMPLEMENTED, first_way)
    assert await ask_reflection(channel) is None  # type: ignore[arg-type]
    assert channel.asked == list(REFLECTION_METHODS)


async def test_a_call_finished_with_another_code_is_an_error_not_a_fallback() -> None:
    channel = EndedChannel(grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(ReflectionError, match="UNAVAILABLE"):
        await ask_reflection(channel)  # type: ignore[arg-type]
    assert channel.asked == list(REFLECTION_METHODS[:1])
