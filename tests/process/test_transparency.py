"""The proxy forwards every call shape, metadata, status and cancel unchanged."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from harness import client
from harness.peers import Backend, Launcher, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

DETAILS_BIN = client.status_details_bin(5, "no such thing")
CANCEL_WAIT = 5.0
"""Seconds a backend may take to notice a cancelled or deadlined Sleep."""
EIGHT_MIB = bytes(range(256)) * (8 * 1024 * 4)


@dataclass(frozen=True)
class Setup:
    proxy: Proxy
    address: str
    backends: tuple[Backend, ...]


UNARY_METHODS = ",".join(f"/test.Echo/{name}" for name in
                         ("Unary", "Whoami", "Fail", "Sleep", "Stats", "Nope"))
"""The test backend's unary methods (and an unknown one), for `--unary-methods`."""


LEARNED = "methods as unary, learned by reflection"
"""What each worker logs once it serves methods the backends' reflection declared unary."""


@pytest.fixture(scope="module", params=["streaming-handlers", "declared-unary", "learned-unary",
                                        "least-request", "least-request-declared-unary",
                                        "native"])
def setup(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
          ) -> Iterator[Setup]:
    """Every test runs with the catch-all stream handler, with the unary methods declared by
    `--unary-methods`, and with them learned from the backends' server reflection (unary
    handlers on both hops in the last two); then the first two again with
    `--balancer least-request`; and on the native data plane (`--data-plane native`)."""
    launcher = Launcher(tmp_path_factory.mktemp("transparency"))
    try:
        learned = request.param == "learned-unary"
        backend_args = ["--reflection"] if learned else []
        servers = (launcher.start_backend("a", extra_args=backend_args),
                   launcher.start_backend("b", extra_args=backend_args))
        port = free_port()
        extra = (["--unary-methods", UNARY_METHODS] if request.param.endswith("declared-unary")
                 else [])
        if request.param.startswith("least-request"):
            extra += ["--balancer", "least-request"]
        extra += ["--data-plane", "native" if request.param == "native" else "grpcio"]
        proxy = launcher.start_proxy(*proxy_args(route(port, *servers), workers=2), *extra)
        address = f"127.0.0.1:{port}"
        proxy.wait_serving(address)
        if learned:
            both = wait_until(lambda: proxy.output().count(LEARNED) >= 2, timeout=15)
            assert both, proxy.output()
        yield Setup(proxy, address, servers)
    finally:
        launcher.close()


@pytest.fixture
def channel(setup: Setup) -> Iterator[grpc.Channel]:
    with client.open_channel(setup.address, unlimited=True) as opened:
        yield opened


def total_cancelled(setup: Setup) -> int:
    return sum(backend.counter("cancelled") for backend in setup.backends)


def total_sleeping(setup: Setup) -> int:
    return sum(backend.counter("sleeping") for backend in setup.backends)


def wait_for_cancelled(setup: Setup, *, above: int, timeout: float) -> int:
    """Poll both backends' Stats until the cancelled total exceeds ``above``."""
    wait_until(lambda: total_cancelled(setup) > above, timeout=timeout)
    return total_cancelled(setup)


def test_unary_echo_keeps_request_metadata_and_response_metadata(
    setup: Setup, channel: grpc.Channel
) -> None:
    reply, call = client.echo(
        channel, b"hello", metadata=[("x-key", "value"), ("x-key-bin", b"\x00\x01\xfe\xff")]
    )
    initial = list(call.initial_metadata())
    trailing = list(call.trailing_metadata())
    names = {backend.name for backend in setup.backends}
    assert reply == b"hello", setup.proxy.output()
    assert ("x-key", "value") in initial, f"{initial}\n{setup.proxy.output()}"
    assert ("x-key-bin", b"\x00\x01\xfe\xff") in initial, f"{initial}\n{setup.proxy.output()}"
    assert {value for key, value in initial if key == "backend"} <= names
    assert any(key == "backend" for key, _ in initial), f"{initial}\n{setup.proxy.output()}"
    assert any(key == "backend-trailer" and value in names for key, value in trailing), (
        f"{trailing}\n{setup.proxy.output()}"
    )


def test_a_thousand_message_server_stream_arrives_whole_and_in_order(
    setup: Setup, channel: grpc.Channel
) -> None:
    messages = client.server_stream(channel, 1000, timeout=30)
    assert messages == [str(i).encode() for i in range(1000)], setup.proxy.output()


def test_a_hundred_kibibyte_messages_stream_from_the_client(
    setup: Setup, channel: grpc.Channel
) -> None:
    result = client.client_stream(
        channel, (bytes([i % 256]) * 1024 for i in range(100)), timeout=30
    )
    assert result == (100, 100 * 1024), setup.proxy.output()


def test_bidi_ping_pong_gets_each_answer_before_the_next_question(
    setup: Setup, channel: grpc.Channel
) -> None:
    outbox: queue.Queue[bytes | None] = queue.Queue()

    def requests() -> Iterator[bytes]:
        while (message := outbox.get(timeout=30)) is not None:
            yield message

    replies = iter(client.stream_stream(channel, "Bidi")(requests(), timeout=30))
    try:
        for round_ in range(50):
            message = f"ping {round_}".encode()
            outbox.put(message)
            assert next(replies) == message, setup.proxy.output()
    finally:
        outbox.put(None)
    assert list(replies) == [], setup.proxy.output()


def test_an_error_keeps_its_code_details_and_binary_trailers(
    setup: Setup, channel: grpc.Channel
) -> None:
    error = client.fail(channel, code="NOT_FOUND", details="no such thing", details_bin=DETAILS_BIN)
    call: grpc.Call = error  # type: ignore[assignment]  # a failed call's error is also its Call
    trailers = dict(call.trailing_metadata() or ())
    assert call.code() == grpc.StatusCode.NOT_FOUND, (
        f"{client.describe(error)}\n{setup.proxy.output()}"
    )
    assert call.details() == "no such thing", setup.proxy.output()
    assert trailers.get("grpc-status-details-bin") == DETAILS_BIN, (
        f"{trailers}\n{setup.proxy.output()}"
    )
    assert trailers.get("x-trailer-bin") == b"\x00\x01\xff", f"{trailers}\n{setup.proxy.output()}"


def test_a_client_deadline_expires_in_time_and_cancels_the_backend_call(
    setup: Setup, channel: grpc.Channel
) -> None:
    before = total_cancelled(setup)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as raised:
        client.sleep_future(channel, 3, timeout=0.3).result(timeout=10)
    elapsed = time.monotonic() - started
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, setup.proxy.output()
    assert elapsed < 1.5, f"took {elapsed:.2f}s\n{setup.proxy.output()}"
    assert wait_for_cancelled(setup, above=before, timeout=CANCEL_WAIT) > before, (
        f"no backend saw the deadline\n{setup.proxy.output()}"
    )


def test_a_client_cancel_reaches_the_backend(setup: Setup, channel: grpc.Channel) -> None:
    before = total_cancelled(setup)
    future = client.sleep_future(channel, 3, timeout=10)
    # Cancel only once the call is running on a backend, so the cancel has somewhere to go.
    assert wait_until(lambda: total_sleeping(setup) >= 1, timeout=5), setup.proxy.output()
    assert future.cancel(), setup.proxy.output()
    assert wait_for_cancelled(setup, above=before, timeout=CANCEL_WAIT) > before, (
        f"no backend saw the cancel\n{setup.proxy.output()}"
    )


def test_an_eight_mebibyte_message_passes_both_ways(setup: Setup, channel: grpc.Channel) -> None:
    reply, _ = client.echo(channel, EIGHT_MIB, timeout=30)
    assert len(reply) == len(EIGHT_MIB), setup.proxy.output()
    assert reply == EIGHT_MIB, setup.proxy.output()


@pytest.mark.parametrize("method", ["/test.Echo/Nope", "/no.such.Service/Unary"])
def test_an_unknown_method_or_service_is_unimplemented(
    setup: Setup, channel: grpc.Channel, method: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        channel.unary_unary(method, request_serializer=None, response_deserializer=None)(
            b"", timeout=10
        )
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED, (
        f"{client.describe(raised.value)}\n{setup.proxy.output()}"
    )


def test_four_hundred_concurrent_calls_all_succeed(setup: Setup) -> None:
    channels = [client.open_channel(setup.address) for _ in range(4)]
    try:
        futures: list[grpc.Future[bytes]] = []
        for index in range(400):
            payload = f"call {index}".encode()
            futures.append(
                client.unary_unary(channels[index % 4], "Unary").future(payload, timeout=30)
            )
        failures = []
        for index, future in enumerate(futures):
            try:
                assert future.result(timeout=60) == f"call {index}".encode()
            except grpc.RpcError as error:
                failures.append(client.describe(error))
    finally:
        for channel in channels:
            channel.close()
    assert failures == [], f"{len(failures)} failed: {failures[:5]}\n{setup.proxy.output()}"
