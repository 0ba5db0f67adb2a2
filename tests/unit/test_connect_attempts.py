"""Connection attempts: the connect timeout as gRPC options, and why the last attempt failed."""

from __future__ import annotations

import pytest

from gproxy_mp.bus.schema import BackendCondition
from gproxy_mp.worker.attempts import ConnectAttempts, connect_options
from gproxy_mp.worker.channels import ChannelSettings

CONNECT_TIMEOUT = 2.0


@pytest.mark.parametrize(("seconds", "options"), [
    (2.0, (("grpc.min_reconnect_backoff_ms", 2000), ("grpc.initial_reconnect_backoff_ms", 1000))),
    (0.3, (("grpc.min_reconnect_backoff_ms", 300), ("grpc.initial_reconnect_backoff_ms", 300))),
])
def test_the_connect_timeout_bounds_the_first_attempt_and_its_backoff(
        seconds: float, options: tuple[tuple[str, int], ...]) -> None:
    assert connect_options(seconds) == options


def test_every_backend_channel_carries_the_connect_timeout() -> None:
    assert ("grpc.min_reconnect_backoff_ms", 500) in ChannelSettings(
        connect_timeout=0.5).options()


# (state, at second) steps → whether the last step ended an attempt, and the failure kept.
ATTEMPTS = [
    pytest.param([("CONNECTING", 0.0), ("TRANSIENT_FAILURE", 0.01)],
                 True, BackendCondition.FAILING, id="refused-at-once"),
    pytest.param([("CONNECTING", 0.0), ("TRANSIENT_FAILURE", 2.0)],
                 True, BackendCondition.CONNECT_TIMEOUT, id="ran-out-of-time"),
    pytest.param([("CONNECTING", 0.0), ("TRANSIENT_FAILURE", 1.85)],
                 True, BackendCondition.CONNECT_TIMEOUT, id="timer-a-little-early"),
    pytest.param([("CONNECTING", 0.0), ("TRANSIENT_FAILURE", 2.0), ("CONNECTING", 3.0),
                  ("TRANSIENT_FAILURE", 3.01)], True, BackendCondition.FAILING,
                 id="timed-out-then-refused"),
    pytest.param([("CONNECTING", 0.0), ("READY", 0.01), ("IDLE", 5.0)],
                 False, BackendCondition.FAILING, id="connected"),
    pytest.param([("IDLE", 0.0), ("CONNECTING", 0.3), ("TRANSIENT_FAILURE", 2.0)],
                 True, BackendCondition.CONNECT_TIMEOUT, id="connecting-seen-late"),
    pytest.param([("READY", 0.0), ("IDLE", 60.0), ("CONNECTING", 60.1),
                  ("TRANSIENT_FAILURE", 60.2)], True, BackendCondition.FAILING,
                 id="reconnect-refused"),
    pytest.param([("TRANSIENT_FAILURE", 9.0)], True, BackendCondition.FAILING,
                 id="failure-without-a-seen-attempt"),
]


@pytest.mark.parametrize(("steps", "ended", "failure"), ATTEMPTS)
def test_a_failed_attempt_that_lasted_the_connect_timeout_is_a_connect_timeout(
        steps: list[tuple[str, float]], ended: bool, failure: BackendCondition) -> None:
    attempts = ConnectAttempts(CONNECT_TIMEOUT)
    results = [attempts.observe(state, at) for state, at in steps]
    assert results[-1] is ended
    assert attempts.failure is failure
