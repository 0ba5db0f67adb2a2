"""gzip-compressed calls through gproxy-mp: payloads arrive intact both ways; what each hop carries.

Set-up: client → relay → gproxy-mp (2 workers) → relay → backend (two of them). The relays
(``tests/interop/relay.py``) count the bytes of every hop on the wire, so the test sees whether a
hop carried a 1 MiB message of zeros compressed (about a kilobyte) or raw (over a MiB).

Observed behaviour (grpcio 1.85): per-message compression does **not** survive the proxy; each
hop is compressed, or not, on its own:

* client → proxy: compressed when the client asks (``compression=`` per channel or per call);
* proxy → backend: always raw. The proxy's server decompresses on receipt (grpc does this
  before the application sees a message), the proxy forwards raw message bytes, and its backend
  channels have no compression configured; ``grpc-encoding``/``grpc-accept-encoding`` are
  hop-by-hop headers that the proxy filters (and grpc core never shows them to an application:
  the backend's ``invocation_metadata()`` holds neither, direct or proxied);
* backend → proxy: compressed when the backend compresses (``context.set_compression``);
* proxy → client: always raw, for the same reasons.

So compression costs the proxy a decompression per compressed message and turns the hops on
its two sides into uncompressed ones. The tests pin this, so a change (for instance the proxy
compressing its own hops) shows up here and this docstring gets updated.

The native data plane (`--data-plane native`) forwards HTTP/2 frames without decoding gRPC, and
passes ``grpc-encoding``/``grpc-accept-encoding`` on: a message crosses both hops as its sender
encoded it (client → proxy → backend compressed when the client compresses, backend → proxy →
client when the backend does), and the proxy never decompresses. The first test pins both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from harness.fixtures import PLANES
from harness.peers import Backend
from tests.interop.conftest import ProxiedRoute, open_channel, raw_unary, serving_route
from tests.interop.relay import Relay

pytestmark = pytest.mark.timeout(300)

PAYLOAD = bytes(1024 * 1024)  # 1 MiB of zeros: gzip makes it about a kilobyte
COMPRESSED_MAX = 64 * 1024
"""Bytes a hop may carry for the call and still count as compressed."""
RAW_MIN = len(PAYLOAD)
"""Bytes a hop carries at least when the message crossed it uncompressed."""
CALL_TIMEOUT = 30.0
CALLS = 4  # every case runs on each backend (round robin) and on both directions of the relays


@dataclass(frozen=True)
class Wire:
    """gproxy-mp behind one relay, in front of one relay per backend."""

    route: ProxiedRoute
    front: Relay
    backs: tuple[Relay, ...]
    plane: str  # the proxy's --data-plane

    def reset(self) -> None:
        for relay in (self.front, *self.backs):
            relay.reset()

    def hops(self) -> dict[str, int]:
        return {
            "client->proxy": self.front.upstream,
            "proxy->backend": sum(r.upstream for r in self.backs),
            "backend->proxy": sum(r.downstream for r in self.backs),
            "proxy->client": self.front.downstream,
        }


@pytest.fixture(scope="module", params=PLANES)
def wire(echo_backends: tuple[Backend, ...], tmp_path_factory: pytest.TempPathFactory,
         request: pytest.FixtureRequest) -> Iterator[Wire]:
    plane: str = request.param
    backs: list[Relay] = []
    try:
        backs.extend(Relay(b.address) for b in echo_backends)
        with serving_route([r.address for r in backs], backends=echo_backends,
                           log_dir=tmp_path_factory.mktemp("compression"), index=0,
                           extra_args=("--data-plane", plane)) as route:
            front = Relay(route.address)
            try:
                yield Wire(route, front, tuple(backs), plane)
            finally:
                front.close()
    finally:
        for relay in backs:
            relay.close()


@dataclass(frozen=True)
class Case:
    name: str
    channel: grpc.Compression | None  # the client channel's compression
    call: grpc.Compression | None  # one call's compression
    backend: bool  # the backend compresses its response
    request_compressed: bool  # expected on client->proxy
    response_compressed: bool  # expected on backend->proxy


CASES = (
    Case("identity", None, None, False, False, False),
    Case("client-gzip-per-channel", grpc.Compression.Gzip, None, False, True, False),
    Case("client-gzip-per-call", None, grpc.Compression.Gzip, False, True, False),
    Case("backend-gzip", None, None, True, False, True),
    Case("both-gzip", grpc.Compression.Gzip, None, True, True, True),
)


def kind(size: int) -> str:
    if size <= COMPRESSED_MAX:
        return "compressed"
    return "raw" if size >= RAW_MIN else f"unclear ({size} bytes)"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_compressed_calls_arrive_intact_and_each_hop_compresses_on_its_own(
    wire: Wire, case: Case
) -> None:
    metadata = (("compress-response", "gzip"),) if case.backend else ()
    with open_channel(wire.front.address, compression=case.channel) as channel:
        echo = raw_unary(channel, "Echo")
        echo(b"warm-up", timeout=CALL_TIMEOUT)  # connections up before anything is counted
        for _ in range(CALLS):
            wire.reset()
            reply, call = echo.with_call(PAYLOAD, metadata=metadata, compression=case.call,
                                         timeout=CALL_TIMEOUT)
            assert reply == PAYLOAD
            assert call.code() == grpc.StatusCode.OK
            seen = {hop: kind(size) for hop, size in wire.hops().items()}
            request = "compressed" if case.request_compressed else "raw"
            response = "compressed" if case.response_compressed else "raw"
            passed_on = wire.plane == "native"  # frames forwarded as they came
            expected = {
                "client->proxy": request,
                "proxy->backend": request if passed_on else "raw",
                "backend->proxy": response,
                "proxy->client": response if passed_on else "raw",
            }
            assert seen == expected, f"{wire.hops()}\n{wire.route.output()}"


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.Deflate],
                         ids=["gzip", "deflate"])
def test_compressed_calls_through_the_session_proxy_echo_exact_bytes(
    proxied: ProxiedRoute, compression: grpc.Compression
) -> None:
    """Incompressible and compressible payloads of several sizes, both directions compressed."""
    payloads = [b"", b"x", bytes(range(256)) * 4096, bytes(3 * 1024 * 1024)]
    with open_channel(proxied.address, compression=compression) as channel:
        echo = raw_unary(channel, "Echo")
        for payload in payloads:
            reply = echo(payload, metadata=(("compress-response", "gzip"),), timeout=CALL_TIMEOUT)
            assert reply == payload, (len(reply), len(payload))
