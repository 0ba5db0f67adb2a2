"""Every benchmark payload is a valid protobuf message, since a proxy may re-decode it (the Go
gproxy does, and fails a non-protobuf body with INTERNAL)."""

from __future__ import annotations

from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError

from bench.rig.workloads import WORKLOADS, pattern


def parses(payload: bytes) -> bool:
    try:
        empty_pb2.Empty().ParseFromString(payload)
    except DecodeError:
        return False
    return True


def test_every_request_and_response_payload_parses_as_protobuf() -> None:
    for workload in WORKLOADS:
        for payload in (workload.request, *workload.responses):
            assert parses(payload), (workload.name, payload[:20])


def test_a_payload_has_exactly_the_size_asked_for() -> None:
    assert [len(pattern("x", size)) for size in (100, 10 * 1024, 5 * 1024 * 1024)] == [
        100, 10 * 1024, 5 * 1024 * 1024]
