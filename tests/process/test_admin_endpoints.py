"""The admin port through the real CLI: /readyz turns 503 at the first SIGTERM, calls go on.

The README's shutdown contract, seen from outside: the first SIGTERM makes `/readyz` answer 503
with the reason at once, while the workers keep accepting new connections and calls for the
whole `--shutdown-delay`, and `/healthz` (liveness) stays 200 until the process is gone.
"""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pytest

from harness import client
from harness.peers import Backend, Proxy, proxy_args, route
from harness.processes import free_port
from harness.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

SHUTDOWN_DELAY = 3.0
"""Seconds of `-d`: long enough to make calls well inside it."""
READY_FLIP_TIMEOUT = 0.5
"""Seconds within which /readyz must answer 503 after SIGTERM (the issue's bound)."""
DELAY_MARGIN = 0.5
"""Seconds before the delay's end at which the test stops making calls: the delay is measured
from when the supervisor handles the signal, which the test sees only approximately."""
HTTP_TIMEOUT = 2.0
"""Seconds one admin request may take."""
EXIT_TIMEOUT = 20.0
"""Seconds for the proxy to exit after SIGTERM: delay + drain (2 s) + margin."""
PROBE_INTERVAL = 0.05
"""Seconds between two admin probes while watching the shutdown."""


@dataclass(frozen=True)
class Answer:
    """One admin request: its HTTP status and body, or None for no HTTP answer at all."""

    at: float
    status: int | None
    body: str = ""


def get(admin: str, path: str) -> Answer:
    """GET `path` on the admin port; never raises (a refused connection is status None)."""
    url = f"http://{admin}{path}"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:
            return Answer(time.monotonic(), response.status, response.read().decode())
    except urllib.error.HTTPError as error:
        return Answer(time.monotonic(), error.code, error.read().decode())
    except OSError as error:
        return Answer(time.monotonic(), None, repr(error))


def whoami_or_error(channel: grpc.Channel) -> str:
    try:
        return client.whoami(channel, timeout=5)
    except grpc.RpcError as error:
        return f"failed: {client.describe(error)}"


def test_readyz_turns_503_at_sigterm_while_calls_and_new_connections_are_served_for_the_delay(
    backends: Callable[[str], Backend], proxies: Callable[..., Proxy]
) -> None:
    backend = backends("a")
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    address = f"127.0.0.1:{port}"
    proxy = proxies(*proxy_args(route(port, backend), workers=2,
                                shutdown_delay=f"{SHUTDOWN_DELAY:g}s", admin_address=admin))
    proxy.wait_serving(address)
    # wait_serving proves a worker serves; readiness also needs every worker's status report.
    before = wait_until(lambda: (a := get(admin, "/readyz")).status == 200 and a,
                        timeout=10)
    assert before and before.body.strip() == "ready", f"{before}\n{proxy.output()}"
    assert get(admin, "/healthz").status == 200, proxy.output()

    with client.open_channel(address) as kept:
        assert whoami_or_error(kept) == "a", proxy.output()
        proxy.send(signal.SIGTERM)
        signalled = time.monotonic()
        flipped = wait_until(lambda: (a := get(admin, "/readyz")).status == 503 and a,
                             timeout=READY_FLIP_TIMEOUT, interval=0.02)
        flipped_in = time.monotonic() - signalled
        assert flipped, (f"/readyz still {get(admin, '/readyz')} {flipped_in:.2f}s after "
                         f"SIGTERM\n{proxy.output()}")
        assert "shutting down" in flipped.body, f"{flipped}\n{proxy.output()}"

        # Until just before the delay ends: calls on the old connection and on new ones.
        answers: list[str] = []
        health: list[Answer] = []
        calls_until = signalled + SHUTDOWN_DELAY - DELAY_MARGIN
        while time.monotonic() < calls_until and len(answers) < 1000:
            answers.append(whoami_or_error(kept))
            with client.open_channel(address) as fresh:  # a new TCP connection each time
                answers.append(whoami_or_error(fresh))
            health.append(get(admin, "/healthz"))
        during = get(admin, "/readyz")

    # Liveness until the end: every HTTP answer 200; after exit, nothing answers.
    while proxy.process.poll() is None and time.monotonic() < signalled + EXIT_TIMEOUT:
        health.append(get(admin, "/healthz"))
        time.sleep(PROBE_INTERVAL)
    try:
        code: int | None = proxy.wait(timeout=max(signalled + EXIT_TIMEOUT - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        code = None
    exited = time.monotonic() - signalled
    report = proxy.output()

    failed = [a for a in answers if a != "a"]
    assert len(answers) >= 4 and not failed, (
        f"{len(failed)} of {len(answers)} calls in the delay failed: {failed[:5]}\n{report}")
    assert during.status == 503 and "shutting down" in during.body, f"{during}\n{report}"
    assert code == 0, f"exit code {code} {exited:.1f}s after SIGTERM\n{report}"
    assert exited >= SHUTDOWN_DELAY, f"exited {exited:.1f}s after SIGTERM\n{report}"
    answered = [a for a in health if a.status is not None]
    assert answered and all(a.status == 200 for a in answered), (
        f"/healthz answers: {sorted({a.status for a in health}, key=str)}\n{report}")
    # The last /healthz answer came after the delay: liveness held through the drain.
    assert answered[-1].at - signalled >= SHUTDOWN_DELAY - DELAY_MARGIN, (
        f"/healthz stopped answering {answered[-1].at - signalled:.1f}s after SIGTERM: "
        f"{health[-3:]}\n{report}")
    assert get(admin, "/healthz").status is None, "admin port still answers after exit"
