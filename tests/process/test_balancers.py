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
import threading
import time
from collections import Counter
from collections.abc import Callable

import grpc
import pytest

from tests.support import client
from tests.support.processes import Backend, Proxy, free_port, proxy_args, route

pytestmark = pytest.mark.timeout(120)

CONNECTIONS = 8
"""Client threads, each on its own connection, each sending one call at a time."""
STALL = 2.0
"""Seconds the slow backend is stopped."""
CALL_TIMEOUT = 10.0
"""Longer than the stall: a call held by the stopped backend completes when it resumes."""


def calls_during_stall(proxy_address: str, slow: Backend) -> tuple[Counter[str], list[str]]:
    """Whoami answers per backend finished while `slow` was stopped, and every failure."""
    answered: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    stalled = threading.Event()

    def caller() -> None:
        with client.open_channel(proxy_address) as channel:
            for _ in range(100_000):  # bounded; `stop` ends it long before
                if stop.is_set():
                    return
                try:
                    name = client.whoami(channel, timeout=CALL_TIMEOUT)
                except grpc.RpcError as error:
                    with lock:
                        failures.append(client.describe(error))
                    continue
                if stalled.is_set():  # finished while the slow backend was stopped
                    with lock:
                        answered[name] += 1

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # every connection warm, calls flowing to both backends
    os.kill(slow.pid, signal.SIGSTOP)
    stalled.set()
    try:
        time.sleep(STALL)
    finally:
        stalled.clear()
        os.kill(slow.pid, signal.SIGCONT)
    stop.set()
    for thread in threads:
        thread.join(CALL_TIMEOUT + 5)
    return answered, failures


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
