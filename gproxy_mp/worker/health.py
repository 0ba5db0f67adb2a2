"""Active health checks (`--health-check[=SERVICE]`): gRPC's `grpc.health.v1.Health/Check`.

Each worker asks each of its backends every `--health-check-interval`, on the backend's own
channel. A backend answering NOT_SERVING (or anything but SERVING), or whose check fails or
times out, ranks as failing in the pick (`worker/balancer.py`) until a check passes again;
a backend without the health service (UNIMPLEMENTED) counts as serving, as in gRPC's own
client-side health checking. Transitions are logged once each.

The two messages are encoded here by hand (one optional string; one enum): no generated code.

    HealthCheckRequest  { string service = 1; }
    HealthCheckResponse { ServingStatus status = 1; }  UNKNOWN 0, SERVING 1, NOT_SERVING 2,
                                                       SERVICE_UNKNOWN 3
"""

from __future__ import annotations

import enum

CHECK_METHOD = "/grpc.health.v1.Health/Check"
MAX_CHECK_TIMEOUT = 2.0
"""Seconds one check may take at most (less when the interval is shorter)."""


class Serving(enum.IntEnum):
    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3


def encode_request(service: str) -> bytes:
    """A serialized HealthCheckRequest; "" asks about the server as a whole."""
    data = service.encode()
    return b"\x0a" + _varint(len(data)) + data if data else b""


def decode_status(data: bytes) -> Serving:
    """The status of a serialized HealthCheckResponse (fields it does not know are skipped;
    an unknown status number is UNKNOWN). Raises ValueError if the bytes are not protobuf."""
    status = 0
    index = 0
    while index < len(data):
        key, index = _read_varint(data, index)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, index = _read_varint(data, index)
            if field == 1:
                status = value
        elif wire == 2:
            length, index = _read_varint(data, index)
            index += length
        elif wire == 1:
            index += 8
        elif wire == 5:
            index += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if index > len(data):
            raise ValueError("truncated message")
    return Serving(status) if status in Serving._value2member_map_ else Serving.UNKNOWN


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, index: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if index >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index
        shift += 7
