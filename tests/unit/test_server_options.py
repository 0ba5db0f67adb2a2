"""The worker's gRPC server options for `--max-connection-age` (pure mapping)."""

from __future__ import annotations

from gproxy_mp.worker.server import connection_age_options


def test_no_age_sets_nothing_and_keeps_grpcs_infinite_defaults() -> None:
    assert connection_age_options(None, None) == ()
    assert connection_age_options(None, 5.0) == ()


def test_an_age_without_grace_lets_calls_in_flight_finish() -> None:
    assert connection_age_options(1.5, None) == (("grpc.max_connection_age_ms", 1500),)


def test_an_age_with_grace_sets_both_in_milliseconds() -> None:
    assert connection_age_options(300.0, 0.25) == (
        ("grpc.max_connection_age_ms", 300_000), ("grpc.max_connection_age_grace_ms", 250))
