"""Which failed backend connections were TLS failures, for `gproxy_tls_handshake_failures_total`.

gRPC tells the application only a status and a sentence: UNAVAILABLE with details such as
`Tls handshake failed (TSI_PROTOCOL_FAILURE): ...` or `Hostname Verification Check failed`,
and no error code of the connection (its `debug_error_string` is the same sentence; the
channel's connectivity is TRANSIENT_FAILURE whatever the cause). Some TLS failures do not say
so at all: with TLS 1.3 the client's side of the handshake completes before the server checks
the client's certificate, so a backend that requires one the proxy does not have closes the
connection afterwards, and gRPC reports `Socket closed` or `Secure read failed`.

So an attempt that failed UNAVAILABLE on a TLS channel that was not READY is judged on two
kinds of evidence, in this order:

1. gRPC's words name the handshake (`TLS_FAILURE_SIGNS`): counted at once.
2. Otherwise a plain TCP connection to the backend (`PROBE_TIMEOUT`) decides: the backend
   accepts TCP, so the connection failed later, in TLS (or after it, before HTTP/2 settled):
   counted; it refuses TCP or does not answer: an unreachable backend, not counted. One probe
   per backend at a time; its verdict stands for `VERDICT_TTL` seconds for further failures,
   and the attempts that failed while it ran are counted when it ends.

The limit: a backend that accepts TCP and then closes every connection before HTTP/2 for
another reason (a server that is not gRPC and closes on the preface, an overloaded one that
sheds connections), or one that refused a connection and accepts the probe's a moment later
(restarting), is counted as a TLS failure. Concurrency: the worker's asyncio loop; probes are
tasks of this object, cancelled by `close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

TLS_FAILURE_SIGNS = ("handshake failed", "verification check failed", "ssl_error",
                     "certificate_verify_failed")
"""What gRPC core's connection errors say when a backend's TLS handshake failed."""
PROBE_TIMEOUT = 1.0
"""Seconds a probe's TCP connection may take: a loopback or in-cluster connect takes
milliseconds; a backend slower than this is judged unreachable."""
VERDICT_TTL = 5.0
"""Seconds a probe's verdict answers for a backend's further failures (a broken backend under
load fails many attempts a second: one probe, not one per attempt)."""
MAX_TRACKED = 1024
"""Backends whose verdicts are kept; beyond that the oldest are forgotten (a route's set
churns, the map must not grow without bound)."""

Address = tuple[str, int]
Connect = Callable[[str, int], Awaitable[None]]


def is_tls_failure(details: str) -> bool:
    """Whether an UNAVAILABLE status of a failed connection says that its TLS handshake
    failed (evidence 1)."""
    lowered = details.lower()
    return any(sign in lowered for sign in TLS_FAILURE_SIGNS)


async def tcp_connect(host: str, port: int) -> None:
    """Open and close a plain TCP connection; OSError or TimeoutError when it fails."""
    _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_TIMEOUT)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


@dataclass(slots=True)
class _Verdict:
    tls: bool
    at: float


class HandshakeFailures:
    """Counts the failed attempts on a TLS channel that were TLS failures, through `record`."""

    def __init__(self, record: Callable[[], None], *, connect: Connect = tcp_connect,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._record, self._connect, self._clock = record, connect, clock
        self._verdicts: dict[Address, _Verdict] = {}
        self._pending: dict[Address, int] = {}  # attempts failed while its probe runs
        self._probes: set[asyncio.Task[None]] = set()

    def failed(self, address: Address, details: str) -> None:
        """An attempt on `address` failed UNAVAILABLE before its connection was READY."""
        if is_tls_failure(details):
            self._record()
            return
        verdict = self._verdicts.get(address)
        if verdict is not None and self._clock() - verdict.at < VERDICT_TTL:
            if verdict.tls:
                self._record()
            return
        waiting = self._pending.get(address)
        self._pending[address] = (waiting or 0) + 1
        if waiting is None:  # no probe of this backend runs yet
            task = asyncio.create_task(self._probe(address), name=f"TLS probe {address}")
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)

    async def _probe(self, address: Address) -> None:
        try:
            await self._connect(*address)
            tls = True
        except (OSError, TimeoutError):
            tls = False
        finally:
            failures = self._pending.pop(address, 0)
        self._verdicts.pop(address, None)
        self._verdicts[address] = _Verdict(tls, self._clock())
        while len(self._verdicts) > MAX_TRACKED:
            del self._verdicts[next(iter(self._verdicts))]
        if tls:
            for _ in range(failures):
                self._record()

    async def close(self) -> None:
        """Cancel the probes still running."""
        for task in list(self._probes):
            task.cancel()
        await asyncio.gather(*self._probes, return_exceptions=True)
