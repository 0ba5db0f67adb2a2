"""A worker whose event loop stops (SIGSTOP stands for a blocking call or a livelock) is noticed:
it stops counting as serving, the supervisor SIGKILLs and replaces it within `--worker-timeout`
(+2 s), counts it as `reason="timeout"`, and its sibling's clients never lose a call.

Before the watchdog, such a worker stayed "serving" in /readyz and /debug/endpoints and kept
its share of new connections for ever."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable

import pytest

from harness import procfacts
from harness.admin import admin_get
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.procfacts import accepted_connections
from harness.traffic import ThreadLoad, timeline
from harness.waiting import wait_until
from harness.whoami import private_channels, whoami
from tests.churn.peers import metric_sum, scrape

pytestmark = pytest.mark.timeout(180)

WORKERS = 2
CONNECTIONS = 8
WORKER_TIMEOUT = 3.0
REPLACE_MARGIN = 2.0
"""Seconds beyond the timeout for the kill to be noticed and a replacement to listen."""
WARM_CALLS = 200
CALLS_AFTER = 400


def listening_workers(port: int, *, replacing: int | None = None) -> set[int] | None:
    found = procfacts.listeners(port)
    return found if len(found) == WORKERS and replacing not in found else None


def worker_view(admin: str, pid: int) -> dict[str, object] | None:
    view = json.loads(admin_get(admin, "/debug/endpoints"))
    for worker in view["routes"][0]["workers"]:
        if worker["pid"] == pid:
            return dict(worker)
    return None


def test_a_stopped_worker_is_replaced_within_the_worker_timeout_while_its_sibling_serves(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(
        *proxy_args(route(port, backends("a"), backends("b")), workers=WORKERS,
                    admin_address=admin),
        "--worker-timeout", f"{WORKER_TIMEOUT}s",
    )
    proxy.wait_serving(address)
    workers = wait_until(lambda: listening_workers(port), timeout=10)
    assert workers, f"listeners {procfacts.listeners(port)}\n{proxy.output()}"

    with ThreadLoad(private_channels(address), whoami, threads=CONNECTIONS, max_seconds=60) as load:
        assert wait_until(lambda: load.successes() >= WARM_CALLS, timeout=15), load.summary()
        held = accepted_connections(port, workers)
        victim = max(held, key=lambda pid: held[pid])
        victim_id = procfacts.identify(victim)
        assert victim_id is not None, proxy.output()
        stopped_at = time.monotonic()
        os.kill(victim, signal.SIGSTOP)
        try:
            # Half the timeout without a report: no longer counted as serving.
            not_serving = wait_until(
                lambda: (worker_view(admin, victim) or {}).get("serving") is False,
                timeout=WORKER_TIMEOUT)
            replaced = wait_until(lambda: listening_workers(port, replacing=victim),
                                  timeout=WORKER_TIMEOUT + REPLACE_MARGIN)
            replaced_after = time.monotonic() - stopped_at
        finally:
            with contextlib.suppress(ProcessLookupError):  # gone once it is killed
                os.kill(victim, signal.SIGCONT)
        resumed_at = time.monotonic()
        wait_until(lambda: load.answers_sent_after(resumed_at) >= CALLS_AFTER, timeout=15)
        load.stop()

    metrics = scrape(admin)
    failures = load.failures()
    report = (f"victim {victim} held {held}; replaced after {replaced_after:.1f}s: {replaced}\n"
              f"{load.summary()}\n{timeline(failures[:20], stopped_at)}\n{proxy.output()}")
    assert not_serving, report
    assert replaced, report
    assert not procfacts.is_running(victim_id), report
    assert metric_sum(metrics, "gproxy_worker_restarts_total", reason="timeout") == 1, report
    assert "sent no status for" in proxy.output(), report
    # Only the stopped worker's clients may lose calls; the sibling's never do.
    failing_connections = {o.connection for o in failures}
    assert len(failing_connections) <= held[victim], report
    assert all(o.backend is not None for o in load.outcomes() if o.started > resumed_at + 2.0), \
        report


def starting_workers(admin: str) -> dict[str, dict[str, object]] | None:
    """Worker id → its /debug/endpoints entry, once every worker has reported "starting"."""
    try:
        view = json.loads(admin_get(admin, "/debug/endpoints"))
    except OSError:  # not listening yet
        return None
    workers = {str(w["worker"]): dict(w) for w in view["routes"][0]["workers"]}
    reported = all(w["state"] == "starting" and w["seconds_since_report"] is not None
                   for w in workers.values())
    return workers if len(workers) == WORKERS and reported else None


def test_a_worker_that_hangs_while_waiting_for_its_first_endpoints_is_replaced_in_time(
    proxies: Callable[..., Proxy]
) -> None:
    """A route whose DNS server never answers keeps its workers "starting" (no endpoint set
    to serve yet). They report all the same, so a starting worker that hangs is replaced within
    `--worker-timeout`; before, only a 60 s start limit covered a worker that never served."""
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    silent_dns = f"127.0.0.1:{free_port()}"  # nothing listens there: every lookup times out
    proxy = proxies(
        *proxy_args(f"127.0.0.1:{port}-dns://{silent_dns}/never.test:50051", workers=WORKERS,
                    admin_address=admin),
        "--worker-timeout", f"{WORKER_TIMEOUT}s",
    )
    workers = wait_until(lambda: starting_workers(admin), timeout=20)
    assert workers, proxy.output()
    victim = workers["0#0"]["pid"]
    assert isinstance(victim, int)
    stopped_at = time.monotonic()
    os.kill(victim, signal.SIGSTOP)

    def replacement() -> dict[str, dict[str, object]] | None:
        found = starting_workers(admin)
        return found if found and found["0#0"]["pid"] != victim else None

    try:
        replaced = wait_until(replacement, timeout=WORKER_TIMEOUT + REPLACE_MARGIN + 3.0)
        replaced_after = time.monotonic() - stopped_at
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGCONT)
    report = f"replaced after {replaced_after:.1f}s: {replaced}\n{proxy.output()}"
    assert replaced, report
    # The kill comes within the timeout (+ the watchdog's half-second look); the replacement's
    # interpreter start and first report take the rest.
    assert replaced_after <= WORKER_TIMEOUT + REPLACE_MARGIN + 3.0, report
    assert replaced["0#1"]["pid"] == workers["0#1"]["pid"], report  # its sibling was left alone
    assert metric_sum(scrape(admin), "gproxy_worker_restarts_total", reason="timeout") == 1, report
    assert "sent no status for" in proxy.output(), report
