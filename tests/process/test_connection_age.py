"""`--max-connection-age`: one busy client connection re-spreads over the workers.

SO_REUSEPORT spreads connections, not calls: without the option, every call of one client
connection lands on the worker that accepted it. With it, gRPC sends the connection a GOAWAY
after about that age, the client reconnects, and the kernel picks a worker afresh. Calls in
flight finish on the old connection (no grace: nothing is cut), unless a grace is given.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import grpc
import pytest

from harness import client
from harness.admin import quiet_worker_calls, worker_calls
from harness.fixtures import both_planes
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = [pytest.mark.timeout(120), both_planes]

CALL_SECONDS = 4.0
MAX_CALLS = 4000
AGE = "300ms"
REPORT_WAIT = 5.0
"""Seconds for the workers' 1 s status reports to carry every finished call."""
MIN_SHARE = 0.1


def start(backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
          *extra: str) -> tuple[Proxy, str, str, dict[str, int]]:
    """The proxy, its address, its admin address and the per-worker calls before the test's."""
    servers = [backends("a"), backends("b")]
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    proxy = proxies(*proxy_args(route(port, *servers), workers=2, admin_address=admin), *extra)
    address = f"127.0.0.1:{port}"
    proxy.wait_serving(address)
    # wait_serving's call finished: the counts must include it, or it lands in the test's split.
    before = quiet_worker_calls(admin, workers=2, at_least=1)
    assert len(before) == 2, proxy.output()
    return proxy, address, admin, before


RETRY_UNAVAILABLE = json.dumps({"methodConfig": [{
    "name": [{}],
    "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.01s", "maxBackoff": "0.1s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
}]})
"""What the README advises clients behind --max-connection-age: grpc C-core clients can lose a
call to a GOAWAY race, rarely (UNAVAILABLE "GOAWAY received", grpc/grpc#31733)."""


def busy_connection(address: str) -> int:
    """Sequential calls on one channel for CALL_SECONDS (bounded in count); all must succeed."""
    calls = 0
    deadline = time.monotonic() + CALL_SECONDS
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.service_config", RETRY_UNAVAILABLE)]
    with grpc.insecure_channel(address, options=options) as channel:
        while calls < MAX_CALLS and time.monotonic() < deadline:
            client.whoami(channel)
            calls += 1
    return calls


def settled_split(admin: str, before: dict[str, int], calls: int) -> dict[str, int]:
    """Per-worker calls since ``before``, once the reports account for all ``calls``."""
    def split() -> dict[str, int]:
        return {w: n - before.get(w, 0) for w, n in worker_calls(admin).items()}
    return wait_until(lambda: (s if sum((s := split()).values()) >= calls else {}),
                      timeout=REPORT_WAIT) or split()


def test_without_it_one_connection_stays_on_one_worker(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
) -> None:
    proxy, address, admin, before = start(backends, proxies)
    calls = busy_connection(address)
    split = settled_split(admin, before, calls)
    assert sum(split.values()) >= calls, f"{split} for {calls} calls\n{proxy.output()}"
    assert sorted(split.values())[0] == 0, f"{split}: one connection used both workers"


def test_one_busy_connection_is_spread_over_both_workers(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
) -> None:
    proxy, address, admin, before = start(backends, proxies, "--max-connection-age", AGE)
    calls = busy_connection(address)
    split = settled_split(admin, before, calls)
    assert sum(split.values()) >= calls, f"{split} for {calls} calls\n{proxy.output()}"
    assert min(split.values()) >= MIN_SHARE * calls, (
        f"{split} for {calls} calls: no re-spread\n{proxy.output()}")


def test_a_call_in_flight_outlives_its_connections_goaway(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
) -> None:
    proxy, address, _, _ = start(backends, proxies, "--max-connection-age", AGE)
    with client.open_channel(address) as channel:
        assert client.sleep_future(channel, 2.0).result(timeout=10) == b"slept", proxy.output()


def test_a_grace_cuts_calls_that_outlast_it(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy],
) -> None:
    proxy, address, _, _ = start(backends, proxies, "--max-connection-age", AGE,
                              "--max-connection-age-grace", "300ms")
    with client.open_channel(address) as channel:
        future = client.sleep_future(channel, 5.0)
        with pytest.raises(grpc.RpcError) as caught:
            future.result(timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, (
        f"{client.describe(caught.value)}\n{proxy.output()}")
