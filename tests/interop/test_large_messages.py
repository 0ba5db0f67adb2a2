"""64 MiB messages through gproxy-mp, each way, with client and backend at unlimited sizes.

The proxy has no message-size limit of its own (its server and backend channels set -1); one
unary call uploads 64 MiB (the backend answers length and SHA-256), one downloads 64 MiB (the
client compares every byte). Each call has a 60 s deadline; the time of each, direct and
proxied, is printed (``pytest -s``) for comparison.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import pytest

from harness.backend.interop import pattern
from tests.interop.conftest import ProxiedRoute, open_channel, raw_unary

pytestmark = pytest.mark.timeout(300)

SIZE = 64 * 1024 * 1024
CALL_TIMEOUT = 60.0
"""Seconds one 64 MiB call may take (loopback, two Python processes on the path, 2 cores)."""
PAYLOAD = pattern(SIZE)
EXPECTED_DIGEST = f"{SIZE},{hashlib.sha256(PAYLOAD).hexdigest()}".encode()


def upload(address: str) -> float:
    with open_channel(address) as channel:
        started = time.perf_counter()
        reply = raw_unary(channel, "Digest")(PAYLOAD, timeout=CALL_TIMEOUT)
        took = time.perf_counter() - started
    assert reply == EXPECTED_DIGEST
    return took


def download(address: str) -> float:
    with open_channel(address) as channel:
        started = time.perf_counter()
        reply = raw_unary(channel, "Blob")(str(SIZE).encode(), timeout=CALL_TIMEOUT)
        took = time.perf_counter() - started
    assert len(reply) == SIZE
    assert reply == PAYLOAD
    return took


@pytest.mark.parametrize("direction", [upload, download], ids=["upload", "download"])
def test_a_64_mib_message_crosses_the_proxy_intact(
    proxied: ProxiedRoute, direction: Callable[[str], float]
) -> None:
    direct = direction(proxied.backends[0].address)
    through = direction(proxied.address)
    print(f"\n64 MiB {direction.__name__}: direct {direct:.2f}s, through gproxy-mp {through:.2f}s")
