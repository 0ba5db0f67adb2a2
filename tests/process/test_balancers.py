"""`--balancer least-request` against round robin, side by side, with a backend that hangs.

A backend that stops answering (SIGSTOPped here: a hung pod, a GC pause, a saturated node)
keeps its connection READY, so neither connectivity nor passive health takes it out of the
pick. Round robin keeps giving it every other call, so every client connection soon waits on
it; least-request sees its calls in flight pile up and sends new calls to the backend that
answers, so most connections keep being served. Both runs are in this one test, on the same
machine, so the comparison is a ratio, not a timing.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable

import pytest

from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.traffic import CALL_TIMEOUT, ThreadLoad
from harness.whoami import private_channels, whoami

pytestmark = [pytest.mark.timeout(120), both_planes]

CONNECTIONS = 8
"""Client threads, each on its own connection, each sending one call at a time."""
STALL = 2.0
"""Seconds the slow backend is stopped."""


def calls_during_stall(proxy_address: str, slow: Backend) -> tuple[Counter[str], list[str]]:
    """Whoami answers per backend that returned while `slow` was stopped, and every failure."""
    load = ThreadLoad(private_channels(proxy_address), whoami, threads=CONNECTIONS,
                      max_calls=1_000_000, max_seconds=STALL + CALL_TIMEOUT + 10)
    with load:
        time.sleep(0.5)  # every connection warm, calls flowing to both backends
        os.kill(slow.pid, signal.SIGSTOP)
        stalled = time.monotonic()
        try:
            time.sleep(STALL)
        finally:
            resumed = time.monotonic()
            os.kill(slow.pid, signal.SIGCONT)
    answered = Counter(o.backend for o in load.outcomes()
                       if o.backend and stalled <= o.ended < resumed)
    return answered, [f"{o.code}: {o.error}" for o in load.failures()]


def test_least_request_keeps_serving_around_a_hung_backend_where_round_robin_stalls(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    fast, slow = backends("fast"), backends("slow")
    served: dict[str, Counter[str]] = {}
    for balancer in ("round-robin", "least-request"):
        port = free_port()
        address = f"127.0.0.1:{port}"
        proxy = proxies(*proxy_args(route(port, fast, slow), workers=1),
                        "--balancer", balancer)
        proxy.wait_serving(address)
        answered, failures = calls_during_stall(address, slow)
        assert failures == [], f"{balancer}: {failures[:5]}\n{proxy.output()}"
        served[balancer] = answered
        proxy.stop()
    report = f"answers while the slow backend was stopped: {served}"
    # Round robin: each connection is soon stuck on the stopped backend.
    assert served["round-robin"]["fast"] < 20 * CONNECTIONS, report
    # Least-request: about half the connections wait on it; the others keep being served.
    assert served["least-request"]["fast"] >= 5 * max(served["round-robin"]["fast"], 10), report
