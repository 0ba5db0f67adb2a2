"""Active health checks (`--health-check[=SERVICE]`): gRPC's `grpc.health.v1.Health/Check`.

Each worker asks each of its backends every `--health-check-interval`, on the backend's own
channel, and keeps a `Verdict` (`judge_answer`, `judge_error`: pure, tested with plain data).
A backend whose verdict names a condition ranks after every backend that passes
(`worker/balancer.py`) until a check passes again; when none passes, calls go to all of them
(panic, `worker/panic.py`). A backend without the health service (UNIMPLEMENTED) counts as
serving, as in gRPC's own client-side health checking. Conditions:

    answer SERVING, or UNIMPLEMENTED           passes (None)
    answer NOT_SERVING or UNKNOWN              not_serving
    answer SERVICE_UNKNOWN, or NOT_FOUND       unknown_service (the service name is not known
                                               there: grpcio and grpc-go answer NOT_FOUND)
    any other error (UNAVAILABLE, DEADLINE_EXCEEDED: a refused, stopped or hung backend),
    or an unreadable answer                    failing

Each change of a backend's verdict is logged once (`channels.py`), not each check.

The two messages are encoded here by hand (one optional string; one enum): no generated code.

    HealthCheckRequest  { string service = 1; }
    HealthCheckResponse { ServingStatus status = 1; }  UNKNOWN 0, SERVING 1, NOT_SERVING 2,
                                                       SERVICE_UNKNOWN 3
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from gproxy_mp.bus.schema import BackendCondition

CHECK_METHOD = "/grpc.health.v1.Health/Check"
MAX_CHECK_TIMEOUT = 2.0
"""Seconds one check may take at most (less when the interval is shorter)."""


class Serving(enum.IntEnum):
    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3


@dataclass(frozen=True, slots=True)
class HealthChecks:
    """`--health-check[=SERVICE]` and its interval."""

    service: str
    interval: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one check says: the condition that keeps the backend out of the pick (None: it
    passes) and why, for the log."""

    condition: BackendCondition | None
    why: str


PASSED = Verdict(None, "SERVING")
NO_HEALTH_SERVICE = Verdict(None, "no health service (UNIMPLEMENTED): counted as serving")

_ANSWERS = {
    Serving.SERVING: None,
    Serving.NOT_SERVING: BackendCondition.NOT_SERVING,
    Serving.UNKNOWN: BackendCondition.NOT_SERVING,
    Serving.SERVICE_UNKNOWN: BackendCondition.UNKNOWN_SERVICE,
}


def judge_answer(data: bytes) -> Verdict:
    """The verdict of a serialized HealthCheckResponse."""
    try:
        status = decode_status(data)
    except ValueError as error:
        return Verdict(BackendCondition.FAILING, f"unreadable answer: {error}")
    condition = _ANSWERS[status]
    if status == Serving.SERVICE_UNKNOWN:
        return Verdict(condition, "unknown service (SERVICE_UNKNOWN)")
    return PASSED if condition is None else Verdict(condition, status.name)


def judge_error(code: str, details: str) -> Verdict:
    """The verdict of a check that ended with status `code` (a `grpc.StatusCode` name)."""
    if code == "UNIMPLEMENTED":
        return NO_HEALTH_SERVICE
    if code == "NOT_FOUND":
        return Verdict(BackendCondition.UNKNOWN_SERVICE,
                       f"unknown service (NOT_FOUND: {details or 'no details'})")
    return Verdict(BackendCondition.FAILING, f"{code}: {details}")


def describe_change(before: Verdict | None, after: Verdict) -> tuple[int, str] | None:
    """The log level and line (after the backend's name) for a backend whose verdict goes from
    `before` (None: no check yet) to `after`; None when there is nothing new to say: the same
    condition as before, or a first pass."""
    if before is not None and before.condition == after.condition:
        return None
    if after.condition is None:
        if before is not None:
            return logging.INFO, f"health check passed ({after.why}): back in the pick"
        return (logging.INFO, after.why) if after == NO_HEALTH_SERVICE else None
    if before is None or before.condition is None:
        return logging.WARNING, f"health check failed ({after.why}): out of the pick"
    return (logging.WARNING,
            f"health check still failing, now {after.condition.value} ({after.why})")


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
