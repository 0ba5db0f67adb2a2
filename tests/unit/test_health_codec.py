"""The health check's hand-made codec against grpcio-health-checking's generated messages."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2

from gproxy_mp.worker.health import Serving, decode_status, encode_request


@pytest.mark.parametrize("service", ["", "shop.Cart", "ü" * 200])
def test_a_request_is_what_the_generated_code_reads(service: str) -> None:
    parsed = health_pb2.HealthCheckRequest.FromString(encode_request(service))
    assert parsed.service == service
    assert encode_request(service) == health_pb2.HealthCheckRequest(
        service=service).SerializeToString()


@pytest.mark.parametrize("status", list(Serving))
def test_every_status_the_generated_code_writes_is_read(status: Serving) -> None:
    data = health_pb2.HealthCheckResponse(status=status.value).SerializeToString()
    assert decode_status(data) is status


def test_unknown_fields_are_skipped_and_an_unknown_status_is_unknown() -> None:
    extra = b"\x12\x03abc" + b"\x19" + b"\0" * 8 + b"\x25\0\0\0\0"  # fields 2, 3, 4
    assert decode_status(extra + b"\x08\x01") is Serving.SERVING
    assert decode_status(b"\x08\x09") is Serving.UNKNOWN
    assert decode_status(b"") is Serving.UNKNOWN  # proto3: an absent enum is its zero


@pytest.mark.parametrize("data", [b"\x08", b"\x12\x05ab", b"\x08\xff\xff\xff\xff\xff\xff\xff\xff"
                                  b"\xff\xff\xff", b"\x0b"])
def test_bytes_that_are_not_a_response_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_status(data)
