"""Synchronous raw-bytes client helpers for the ``test.Echo`` backend.

Every helper takes a ``grpc.Channel`` (or an address, for the waiters) and a
timeout; nothing here waits without a bound. Readiness is a call that
succeeds, never a sleep.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import grpc

SERVICE = "test.Echo"
CALL_TIMEOUT = 10.0
"""Seconds a helper call may take before it fails with DEADLINE_EXCEEDED."""
RETRY_INTERVAL = 0.05
"""Seconds between readiness attempts; each attempt is itself a bounded call."""

UNLIMITED_MESSAGES = [  # channel and server options alike (the backend program uses it too)
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]
PRIVATE_CONNECTION = ("grpc.use_local_subchannel_pool", 1)
"""Channel option: do not share a subchannel (connection) with other channels."""


def method(name: str, service: str = SERVICE) -> str:
    return f"/{service}/{name}"


def unary_unary(
    channel: grpc.Channel, name: str, *, service: str = SERVICE
) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
    """A raw-bytes callable (no serializers) for ``/service/name``."""
    return channel.unary_unary(
        method(name, service), request_serializer=None, response_deserializer=None
    )


def unary_stream(channel: grpc.Channel, name: str) -> grpc.UnaryStreamMultiCallable[bytes, bytes]:
    return channel.unary_stream(method(name), request_serializer=None, response_deserializer=None)


def stream_unary(channel: grpc.Channel, name: str) -> grpc.StreamUnaryMultiCallable[bytes, bytes]:
    return channel.stream_unary(method(name), request_serializer=None, response_deserializer=None)


def stream_stream(channel: grpc.Channel, name: str) -> grpc.StreamStreamMultiCallable[bytes, bytes]:
    return channel.stream_stream(method(name), request_serializer=None, response_deserializer=None)


def open_channel(address: str, *, private: bool = True, unlimited: bool = False) -> grpc.Channel:
    """A plain-text channel; ``private`` gives it its own TCP connection."""
    options: list[tuple[str, Any]] = []
    if private:
        options.append(PRIVATE_CONNECTION)
    if unlimited:
        options.extend(UNLIMITED_MESSAGES)
    return grpc.insecure_channel(address, options=options)


def whoami(channel: grpc.Channel, *, timeout: float = CALL_TIMEOUT) -> str:
    reply: bytes = unary_unary(channel, "Whoami")(b"", timeout=timeout)
    return reply.decode()


def stats(channel: grpc.Channel, *, timeout: float = CALL_TIMEOUT) -> dict[str, Any]:
    reply: bytes = unary_unary(channel, "Stats")(b"", timeout=timeout)
    result: dict[str, Any] = json.loads(reply)
    return result


def echo(
    channel: grpc.Channel,
    payload: bytes,
    *,
    metadata: Iterable[tuple[str, str | bytes]] = (),
    timeout: float = CALL_TIMEOUT,
) -> tuple[bytes, grpc.Call]:
    """Unary echo; returns the reply and the call (for its metadata)."""
    reply, call = unary_unary(channel, "Unary").with_call(
        payload, metadata=tuple(metadata), timeout=timeout
    )
    return reply, call


def server_stream(
    channel: grpc.Channel, count: int, *, size: int = 0, timeout: float = CALL_TIMEOUT
) -> list[bytes]:
    request = f"{count},{size}" if size else str(count)
    return list(unary_stream(channel, "ServerStream")(request.encode(), timeout=timeout))


def client_stream(
    channel: grpc.Channel, messages: Iterable[bytes], *, timeout: float = CALL_TIMEOUT
) -> tuple[int, int]:
    reply: bytes = stream_unary(channel, "ClientStream")(iter(messages), timeout=timeout)
    count, total = reply.decode().split(",")
    return int(count), int(total)


def fail(
    channel: grpc.Channel,
    *,
    code: str,
    details: str,
    details_bin: bytes,
    timeout: float = CALL_TIMEOUT,
) -> grpc.RpcError:
    """Call ``Fail`` and return the error it raised (fails if it did not raise)."""
    request = json.dumps(
        {"code": code, "details": details, "details_bin": details_bin.hex()}
    ).encode()
    try:
        unary_unary(channel, "Fail")(request, timeout=timeout)
    except grpc.RpcError as error:
        return error
    raise AssertionError("Fail returned a reply")


def sleep_future(
    channel: grpc.Channel, seconds: float, *, timeout: float | None = CALL_TIMEOUT
) -> grpc.Future[bytes]:
    return unary_unary(channel, "Sleep").future(str(seconds).encode(), timeout=timeout)


def status_details_bin(code: int, message: str) -> bytes:
    """A minimal serialized ``google.rpc.Status`` (field 1 code, field 2 message).

    Hand-built so the tests need no protobuf stubs; enough for grpcio and for
    ``grpc_status.rpc_status.from_call`` to accept it.
    """

    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            byte = value & 0x7F
            value >>= 7
            if value:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                return bytes(out)

    text = message.encode()
    return b"\x08" + varint(code) + b"\x12" + varint(len(text)) + text


def wait_until_serving(address: str, *, timeout: float) -> str:
    """Retry Whoami on a fresh channel until one succeeds; return the answer.

    Raises ``TimeoutError`` with the last error once ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    last: grpc.RpcError | None = None
    with open_channel(address) as channel:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{address} not serving after {timeout}s: {last!r}")
            try:
                return whoami(channel, timeout=min(remaining, 2.0))
            except grpc.RpcError as error:
                last = error
            time.sleep(min(RETRY_INTERVAL, max(deadline - time.monotonic(), 0)))


def describe(error: grpc.RpcError) -> str:
    """``CODE: details`` of an RpcError raised by a call."""
    return f"{error.code().name}: {error.details()}"


def whoami_counts(
    channels: list[grpc.Channel], *, calls: int, timeout: float = CALL_TIMEOUT
) -> dict[str, int]:
    """Make ``calls`` Whoami calls, round robin over ``channels``; count answers per backend."""
    counts: dict[str, int] = {}
    for index in range(calls):
        name = whoami(channels[index % len(channels)], timeout=timeout)
        counts[name] = counts.get(name, 0) + 1
    return counts
