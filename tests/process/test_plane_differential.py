"""Differential: one recorded set of calls through each data plane gives the client the same
statuses, metadata, trailers and bytes.

Both planes stand in front of the same backend, one worker each, and every call of `CALLS`
(each RPC kind, errors with binary trailers and non-ASCII details, large headers, large and
empty bodies, an unknown method) goes through each. What the client sees of a call is its
`Outcome`; the planes must agree on every one. The transparency tier checks each property on
each plane by itself; this one catches a difference neither assertion there names.

Metadata stays well under 8 KiB a call: grpc's default soft limit on received metadata (the
test backend's and the client's), past which grpc refuses at random whichever hop it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import grpc
import pytest

from harness import client
from harness.peers import Launcher, proxy_args, route
from harness.processes import free_port

pytestmark = pytest.mark.timeout(180)

PLANES = ("grpcio", "native")
TIMEOUT = 30.0
MIB = 1024 * 1024
Metadata = tuple[tuple[str, str | bytes], ...]
TEXT: Metadata = (("x-text", "value"), ("x-bin-bin", b"\x00\x01\xfe\xff"), ("x-long", "v" * 4000))
DETAILS_BIN = client.status_details_bin(5, "no such thing")


@dataclass(frozen=True)
class Outcome:
    """What a client sees of one call: status, details, both metadata, and each reply message
    as (length, sha256)."""

    code: str
    details: str
    initial: Metadata
    trailing: Metadata
    replies: tuple[tuple[int, str], ...]


def digest(messages: Sequence[bytes]) -> tuple[tuple[int, str], ...]:
    return tuple((len(m), hashlib.sha256(m).hexdigest()[:16]) for m in messages)


def outcome_of(call: Callable[[grpc.Channel], tuple[list[bytes], grpc.Call]],
               channel: grpc.Channel) -> Outcome:
    """Run ``call``; its outcome, whether it ended OK or with an error status."""
    try:
        replies, done = call(channel)
    except grpc.RpcError as error:
        assert isinstance(error, grpc.Call)
        return Outcome(error.code().name, error.details() or "",
                       tuple(error.initial_metadata() or ()),
                       tuple(error.trailing_metadata() or ()), ())
    return Outcome(done.code().name, done.details() or "", tuple(done.initial_metadata() or ()),
                   tuple(done.trailing_metadata() or ()), digest(replies))


def unary(name: str, request: bytes, metadata: Metadata = ()
          ) -> Callable[[grpc.Channel], tuple[list[bytes], grpc.Call]]:
    def run(channel: grpc.Channel) -> tuple[list[bytes], grpc.Call]:
        reply, call = client.unary_unary(channel, name).with_call(
            request, metadata=metadata, timeout=TIMEOUT)
        return [reply], call
    return run


def server_stream(request: bytes) -> Callable[[grpc.Channel], tuple[list[bytes], grpc.Call]]:
    def run(channel: grpc.Channel) -> tuple[list[bytes], grpc.Call]:
        call = client.unary_stream(channel, "ServerStream")(request, timeout=TIMEOUT)
        return list(call), call
    return run


def client_stream(messages: Sequence[bytes]
                  ) -> Callable[[grpc.Channel], tuple[list[bytes], grpc.Call]]:
    def run(channel: grpc.Channel) -> tuple[list[bytes], grpc.Call]:
        reply, call = client.stream_unary(channel, "ClientStream").with_call(
            iter(messages), timeout=TIMEOUT)
        return [reply], call
    return run


def bidi(messages: Sequence[bytes]) -> Callable[[grpc.Channel], tuple[list[bytes], grpc.Call]]:
    def run(channel: grpc.Channel) -> tuple[list[bytes], grpc.Call]:
        call = client.stream_stream(channel, "Bidi")(iter(messages), timeout=TIMEOUT)
        return list(call), call
    return run


def failing(code: str, details: str, *, header_bytes: int = 0
            ) -> Callable[[grpc.Channel], tuple[list[bytes], grpc.Call]]:
    spec = {"code": code, "details": details, "details_bin": DETAILS_BIN.hex(),
            "header_bytes": header_bytes}
    return unary("Fail", json.dumps(spec).encode())


CALLS: dict[str, Callable[[grpc.Channel], tuple[list[bytes], grpc.Call]]] = {
    "unary with text, binary and long metadata": unary("Unary", b"hello", TEXT),
    "unary, empty request": unary("Unary", b""),
    "unary, 8 MiB request": unary("Unary", bytes(range(256)) * (8 * MIB // 256)),
    "whoami": unary("Whoami", b""),
    "server stream, 1000 messages": server_stream(b"1000"),
    "server stream, 8 messages of 1 MiB": server_stream(f"8,{MIB}".encode()),
    "server stream, none": server_stream(b"0"),
    "client stream, 200 messages": client_stream([bytes([i]) * i for i in range(200)]),
    "client stream, none": client_stream([]),
    "bidi, 100 messages": bidi([str(i).encode() * 100 for i in range(100)]),
    "bidi, one 4 MiB message": bidi([b"\x07" * (4 * MIB)]),
    "NOT_FOUND with binary trailers": failing("NOT_FOUND", "no such thing"),
    "INVALID_ARGUMENT, non-ASCII details": failing("INVALID_ARGUMENT", "naïve ✓ 100% \n tab\t"),
    "RESOURCE_EXHAUSTED after a 4 KiB header": failing("RESOURCE_EXHAUSTED", "full",
                                                       header_bytes=4 * 1024),
    "INTERNAL, empty details": failing("INTERNAL", ""),
    "an unknown method": unary("Nope", b"x"),
}


def shown(outcome: Outcome, width: int = 80) -> str:
    """``outcome`` for a failure message, each quoted value longer than ``width`` cut."""
    parts = repr(outcome).split("'")
    return "'".join(part if len(part) <= width else f"{part[:width]}...({len(part)})"
                    for part in parts)


def outcomes(address: str) -> dict[str, Outcome]:
    with client.open_channel(address, unlimited=True) as channel:
        return {name: outcome_of(call, channel) for name, call in CALLS.items()}


@pytest.fixture(scope="module")
def addresses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Each plane's proxy address, both in front of the same one backend."""
    launcher = Launcher(tmp_path_factory.mktemp("differential"))
    try:
        backend = launcher.start_backend("a")
        found: dict[str, str] = {}
        for plane in PLANES:
            port = free_port()
            proxy = launcher.start_proxy(*proxy_args(route(port, backend), workers=1),
                                         "--data-plane", plane)
            found[plane] = f"127.0.0.1:{port}"
            proxy.wait_serving(found[plane])
        yield found
    finally:
        launcher.close()


def test_both_planes_give_the_client_the_same_outcome_of_every_call(
    addresses: dict[str, str],
) -> None:
    seen = {plane: outcomes(address) for plane, address in addresses.items()}
    reference, native = seen["grpcio"], seen["native"]
    differ = [f"{name}:\n  grpcio {shown(reference[name])}\n  native {shown(native[name])}"
              for name in CALLS if reference[name] != native[name]]
    assert not differ, "the planes differ on:\n" + "\n".join(differ)
    # Not vacuous: the set covers successes and failures, metadata and trailers.
    codes = {found.code for found in reference.values()}
    assert {"OK", "NOT_FOUND", "UNIMPLEMENTED", "RESOURCE_EXHAUSTED"} <= codes, codes
    assert any(found.trailing for found in reference.values())
