"""Which client metadata a worker forwards to the backend."""

from __future__ import annotations

import pytest

from gproxy_mp.worker.proxy import filter_metadata

TRANSPORT_HEADERS = [":authority", ":path", "te", "content-type", "user-agent", "grpc-timeout",
                     "grpc-encoding", "grpc-accept-encoding"]

APPLICATION_METADATA: list[tuple[str, str | bytes]] = [
    ("x-a", "1"),
    ("x-b-bin", b"\x00\xff"),
    ("authorization", "Bearer t"),
    ("grpc-trace-bin", b"\x00\x01"),
    ("x-a", "2"),
]


@pytest.mark.parametrize("key", TRANSPORT_HEADERS)
def test_transport_headers_are_not_forwarded(key: str) -> None:
    assert filter_metadata([(key, "v"), ("x-a", "1")]) == (("x-a", "1"),)


def test_application_metadata_is_forwarded_unchanged_and_in_order() -> None:
    mixed = [(":authority", "proxy:5000"), *APPLICATION_METADATA[:3], ("te", "trailers"),
             *APPLICATION_METADATA[3:]]
    assert filter_metadata(mixed) == tuple(APPLICATION_METADATA)


@pytest.mark.parametrize("metadata", [None, ()])
def test_no_metadata_forwards_nothing(metadata: tuple[()] | None) -> None:
    assert filter_metadata(metadata) == ()
