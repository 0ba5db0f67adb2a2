"""Telling a backend's TLS failures from unreachable backends: gRPC's words first, else a
plain TCP connection decides, one probe per backend at a time, its verdict kept a while."""

from __future__ import annotations

import asyncio

import pytest

from gproxy_mp.worker.handshakes import VERDICT_TTL, HandshakeFailures, tcp_connect

REFUSED = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:10.0.0.1:1: " \
          "Connection refused"
CLOSED = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:10.0.0.1:1: " \
         "Secure read failed (Socket closed)"
HANDSHAKE = "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.0.0.1:1: Tls " \
            "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: CERTIFICATE_VERIFY_FAILED"
A = ("10.0.0.1", 1)


class Probe:
    """A TCP connect that succeeds or is refused, and holds until `release` when gated."""

    def __init__(self, *, accepts: bool, gated: bool = False) -> None:
        self.accepts = accepts
        self.calls = 0
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()

    async def __call__(self, host: str, port: int) -> None:
        self.calls += 1
        await self.gate.wait()
        if not self.accepts:
            raise ConnectionRefusedError(111, "Connection refused")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_grpcs_own_words_count_at_once_without_a_probe() -> None:
    counted: list[None] = []
    probe = Probe(accepts=False)
    failures = HandshakeFailures(lambda: counted.append(None), connect=probe)
    failures.failed(A, HANDSHAKE)
    assert len(counted) == 1 and probe.calls == 0
    await failures.close()


@pytest.mark.parametrize(("accepts", "counted"), [(True, 3), (False, 0)])
async def test_a_backend_that_accepts_tcp_failed_in_tls_and_one_that_refuses_did_not(
    accepts: bool, counted: int,
) -> None:
    records: list[None] = []
    probe = Probe(accepts=accepts, gated=True)
    failures = HandshakeFailures(lambda: records.append(None), connect=probe, clock=Clock())
    for _ in range(3):  # failures while the probe runs wait for its verdict
        failures.failed(A, CLOSED if accepts else REFUSED)
    await settle()
    assert probe.calls == 1 and records == []
    probe.gate.set()
    await settle()
    assert len(records) == counted
    await failures.close()


async def test_a_verdict_answers_for_a_while_then_the_backend_is_probed_again() -> None:
    records: list[None] = []
    clock = Clock()
    probe = Probe(accepts=True)
    failures = HandshakeFailures(lambda: records.append(None), connect=probe, clock=clock)
    failures.failed(A, CLOSED)
    await settle()
    failures.failed(A, CLOSED)  # within the verdict's time: counted, no new probe
    assert (len(records), probe.calls) == (2, 1)
    clock.now += VERDICT_TTL
    probe.accepts = False  # the backend went away meanwhile
    failures.failed(A, REFUSED)
    await settle()
    assert (len(records), probe.calls) == (2, 2)
    await failures.close()


async def test_closing_cancels_a_probe_still_running() -> None:
    probe = Probe(accepts=True, gated=True)
    failures = HandshakeFailures(lambda: None, connect=probe)
    failures.failed(A, CLOSED)
    await settle()
    await failures.close()
    assert probe.calls == 1


async def test_the_probe_is_a_real_tcp_connection() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await tcp_connect("127.0.0.1", port)
    finally:
        server.close()
        await server.wait_closed()
    with pytest.raises(OSError):
        await tcp_connect("127.0.0.1", port)  # nothing listens there any more
