"""The test backend and the client helpers, called directly (no proxy).

These pin down what the proxy tests compare against: if a behaviour holds
here and not through the proxy, the proxy changed it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from harness import client, procfacts
from harness.peers import Backend
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(60)

DETAILS_BIN = client.status_details_bin(5, "no such thing")


@pytest.fixture
def backend(backends: Callable[[str], Backend]) -> Backend:
    return backends("direct")


@pytest.fixture
def channel(backend: Backend) -> Iterator[grpc.Channel]:
    with client.open_channel(backend.address, unlimited=True) as opened:
        yield opened


def wait_for_cancelled(backend: Backend, *, above: int, timeout: float) -> int:
    """The backend's ``cancelled`` count once it exceeds ``above`` (or at the timeout)."""
    wait_until(lambda: backend.counter("cancelled") > above, timeout=timeout)
    return backend.counter("cancelled")


def test_the_backend_announces_a_port_it_listens_on(backend: Backend) -> None:
    assert procfacts.listeners(backend.port) == {backend.pid}


def test_the_backend_is_ready_once_whoami_succeeds(backend: Backend) -> None:
    assert client.wait_until_serving(backend.address, timeout=5) == "direct"


def test_unary_echoes_the_request_and_the_x_metadata(channel: grpc.Channel) -> None:
    reply, call = client.echo(
        channel,
        b"hello",
        metadata=[("x-key", "v"), ("x-key-bin", b"\x00\xff"), ("other", "dropped")],
    )
    initial = list(call.initial_metadata())
    assert reply == b"hello"
    assert ("backend", "direct") in initial
    assert ("x-key", "v") in initial
    assert ("x-key-bin", b"\x00\xff") in initial
    assert all(key != "other" for key, _ in initial)
    assert ("backend-trailer", "direct") in list(call.trailing_metadata())


def test_whoami_returns_the_backend_name(channel: grpc.Channel) -> None:
    assert client.whoami(channel) == "direct"


def test_server_stream_sends_n_numbered_messages(channel: grpc.Channel) -> None:
    assert client.server_stream(channel, 3) == [b"0", b"1", b"2"]
    padded = client.server_stream(channel, 2, size=8)
    assert padded == [b"0.......", b"1......."]


def test_client_stream_counts_messages_and_bytes(channel: grpc.Channel) -> None:
    assert client.client_stream(channel, [b"x" * 1024] * 100) == (100, 102400)


def test_bidi_echoes_each_message_in_order(channel: grpc.Channel) -> None:
    messages = [str(i).encode() for i in range(20)]
    replies = client.stream_stream(channel, "Bidi")(iter(messages), timeout=10)
    assert list(replies) == messages


def test_fail_keeps_code_details_and_binary_trailers(channel: grpc.Channel) -> None:
    error = client.fail(channel, code="NOT_FOUND", details="no such thing", details_bin=DETAILS_BIN)
    call: grpc.Call = error  # type: ignore[assignment]
    trailers = dict(call.trailing_metadata())
    assert call.code() == grpc.StatusCode.NOT_FOUND
    assert call.details() == "no such thing"
    assert trailers["grpc-status-details-bin"] == DETAILS_BIN
    assert trailers["x-trailer-bin"] == b"\x00\x01\xff"


def test_sleep_replies_after_sleeping(channel: grpc.Channel) -> None:
    assert client.sleep_future(channel, 0.05).result(timeout=10) == b"slept"


def test_a_deadline_during_sleep_is_counted_as_cancelled(
    channel: grpc.Channel, backend: Backend
) -> None:
    before = backend.counter("cancelled")
    with pytest.raises(grpc.RpcError) as raised:
        client.sleep_future(channel, 3, timeout=0.3).result(timeout=5)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_for_cancelled(backend, above=before, timeout=5) == before + 1


def test_a_client_cancel_during_sleep_is_counted_as_cancelled(
    channel: grpc.Channel, backend: Backend
) -> None:
    before = backend.counter("cancelled")
    future = client.sleep_future(channel, 3, timeout=10)
    assert wait_until(lambda: backend.counter("sleeping") == 1, timeout=5)
    assert future.cancel()
    assert wait_for_cancelled(backend, above=before, timeout=5) == before + 1


def test_stats_counts_calls_and_peers(channel: grpc.Channel, backend: Backend) -> None:
    client.whoami(channel)
    client.whoami(channel)
    stats = backend.stats()
    assert stats["name"] == "direct"
    assert stats["calls"] == 3  # two whoami + this stats call
    assert stats["sleeping"] == 0
    assert isinstance(stats["peers"], list) and len(stats["peers"]) >= 1


def test_an_eight_mebibyte_message_echoes_both_ways(channel: grpc.Channel) -> None:
    payload = bytes(range(256)) * (8 * 1024 * 4)
    reply, _ = client.echo(channel, payload)
    assert reply == payload


@pytest.mark.parametrize("method", ["/test.Echo/Nope", "/other.Service/Unary"])
def test_unknown_methods_are_unimplemented(channel: grpc.Channel, method: str) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        channel.unary_unary(method, request_serializer=None, response_deserializer=None)(
            b"", timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_sigterm_stops_the_backend_with_exit_code_zero(backend: Backend) -> None:
    backend.process.terminate()
    assert backend.process.wait(timeout=10) == 0
    assert procfacts.listeners(backend.port) == set()


def test_free_port_returns_a_port_nobody_listens_on() -> None:
    port = free_port()
    assert 0 < port < 65536
    assert procfacts.listeners(port) == set()


def test_the_backend_stops_when_its_parent_closes_stdin(backend: Backend) -> None:
    assert backend.process.stdin is not None
    backend.process.stdin.close()
    assert backend.process.wait(timeout=10) == 0
