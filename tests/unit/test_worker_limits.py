"""What one client connection and one call may cost a worker (pure mappings and sizes)."""

from __future__ import annotations

from gproxy_mp.worker.proxy import metadata_size
from gproxy_mp.worker.server import (
    MAX_METADATA_BYTES,
    MAX_PARSED_METADATA_BYTES,
    SERVER_OPTIONS,
    stream_options,
)


def test_the_stream_limit_is_advertised_with_as_much_headroom_for_ending_streams() -> None:
    """Headroom for streams that ended on the wire but are not yet released by the worker, so
    that a client honouring the limit is never refused (worker/server.py)."""
    assert stream_options(50) == (("grpc.max_concurrent_streams", 50),
                                  ("grpc.http2.max_deallocating_streams", 50))


def test_no_stream_limit_keeps_grpcs_default_of_none() -> None:
    assert stream_options(None) == ()


def test_metadata_is_sized_as_http2_counts_a_header_list() -> None:
    assert metadata_size(None) == 0
    assert metadata_size((("x-a", "12345"), ("x-b-bin", b"\x00\x01"))) == (3 + 5 + 32) + (
        7 + 2 + 32)


def test_grpc_core_lets_the_handler_see_more_metadata_than_the_proxy_accepts() -> None:
    """Otherwise core refuses oversized metadata itself, and the call is counted CANCELLED."""
    options = dict(SERVER_OPTIONS)
    assert options["grpc.max_metadata_size"] == options["grpc.absolute_max_metadata_size"]
    assert options["grpc.absolute_max_metadata_size"] == MAX_PARSED_METADATA_BYTES
    assert MAX_PARSED_METADATA_BYTES > MAX_METADATA_BYTES
