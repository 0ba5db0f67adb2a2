"""A proxy worker SIGKILLed under load: its clients reconnect to a sibling; only calls in flight
on it (or sent on its connection before the client saw the connection drop) may fail, with
UNAVAILABLE or CANCELLED; calls two seconds later all succeed; and the worker is replaced."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from harness import procfacts
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.procfacts import accepted_connections
from harness.traffic import ThreadLoad, timeline
from harness.waiting import wait_until
from harness.whoami import private_channels, whoami

pytestmark = pytest.mark.timeout(180)

WORKERS = 2
CONNECTIONS = 4
LOAD_SECONDS = 60.0
WARM_CALLS = 200
RECOVERY = 2.0
"""Seconds after the kill from which every call must succeed: a client whose reconnect is reset
(see below) waits out gRPC's first reconnect backoff, 1 s +-20%, before it tries again."""
CALLS_AFTER_RECOVERY = 400
REPLACE_TIMEOUT = 10.0
"""Seconds for the supervisor to start a replacement that listens (first restart after 0.1 s)."""
ALLOWED_CODES = {"UNAVAILABLE", "CANCELLED"}


def listening_workers(port: int, *, replacing: int | None = None) -> set[int] | None:
    """The `WORKERS` pids listening on `port` (none of them `replacing`), or None."""
    found = procfacts.listeners(port)
    return found if len(found) == WORKERS and replacing not in found else None


def answering_connections(load: ThreadLoad, since: float) -> int:
    return len({o.connection for o in load.outcomes(since)
                if o.started > since and o.backend is not None})


def test_a_worker_killed_under_load_costs_at_most_its_calls_in_flight_and_is_replaced(
    backends: Callable[[str], Backend],
    proxies: Callable[..., Proxy],
    record_property: Callable[[str, object], None],
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, backends("a"), backends("b")), workers=WORKERS))
    proxy.wait_serving(address)
    workers = wait_until(lambda: listening_workers(port), timeout=10)
    assert workers, f"listeners {procfacts.listeners(port)}\n{proxy.output()}"

    with ThreadLoad(
        private_channels(address), whoami,
        threads=CONNECTIONS, max_seconds=LOAD_SECONDS
    ) as load:
        assert wait_until(lambda: load.successes() >= WARM_CALLS, timeout=15), load.summary()
        held = accepted_connections(port, workers)
        assert sum(held.values()) == CONNECTIONS, f"connections per worker {held}"
        victim = max(held, key=lambda pid: held[pid])  # the worker holding the most clients
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        recovered_at = killed_at + RECOVERY
        replaced = wait_until(
            lambda: listening_workers(port, replacing=victim), timeout=REPLACE_TIMEOUT
        )
        # Every connection answering again, not just enough calls: a client in its reconnect
        # backoff (up to ~1.6 s after a refused reconnect) is slow to come back, not broken.
        wait_until(lambda: load.answers_sent_after(recovered_at) >= CALLS_AFTER_RECOVERY
                   and answering_connections(load, recovered_at) == CONNECTIONS, timeout=15)
        held_after = accepted_connections(port, procfacts.listeners(port))
        load.stop()

    failures = load.failures()
    # A client whose reconnect raced into the dying listener's queue gets a reset, and grpc
    # then fails its fail-fast calls until its reconnect backoff ends (seen: 0.5 s, and over 1 s,
    # thousands of instant failures from a tight client loop). Those failures are the client's
    # own; the bound is that they stay on the killed worker's connections and end within
    # RECOVERY.
    # (Linux's net.ipv4.tcp_migrate_req=1 hands such queued connections to a sibling.)
    within_recovery = [o for o in failures if o.started <= recovered_at]
    failing_connections = {o.connection for o in failures}
    late = [o for o in load.outcomes() if o.started > recovered_at]
    record_property("clients_on_killed_worker", held[victim])
    record_property("failed_calls", len(failures))
    print(
        f"\nworker kill: {held[victim]} of {CONNECTIONS} connections on the killed worker, "
        f"{len(failures)} of {len(load.outcomes())} calls failed "
        f"{[(round(o.started - killed_at, 3), o.error) for o in failures[:10]]}"
    )
    report = (
        f"victim {victim} held {held}, after {held_after}, replaced {replaced}\n"
        f"{load.summary()}\nfailures (started, ended relative to the kill): "
        f"{timeline(failures[:20], killed_at)}"
        f"\n{proxy.output()}"
    )
    assert replaced, f"no replacement listening within {REPLACE_TIMEOUT}s; {report}"
    assert {o.code for o in failures} <= ALLOWED_CODES, report
    assert within_recovery == failures, f"a call failed after {RECOVERY}s; {report}"
    # Only the clients connected to the killed worker lose calls.
    assert len(failing_connections) <= held[victim], report
    assert len(late) >= CALLS_AFTER_RECOVERY, report
    assert all(o.backend is not None for o in late), report
    # Every client, those of the killed worker included, is served again on a live worker.
    assert {o.connection for o in late} == set(range(CONNECTIONS)), report
    assert sum(held_after.values()) == CONNECTIONS, report
