"""How dead workers are restarted and how their exits read in the log."""

from __future__ import annotations

import signal

import pytest

from gproxy_mp.errors import ExitCode
from gproxy_mp.supervisor.policy import (
    HEALTHY_UPTIME,
    RESTART_MAX_DELAY,
    RestartBackoff,
    describe_exit,
    is_boot_failure,
)

DOUBLING = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0]


def test_the_restart_delay_doubles_from_a_tenth_of_a_second_up_to_ten() -> None:
    backoff = RestartBackoff()
    delays = [backoff.next_delay(uptime=1.0) for _ in DOUBLING]
    assert delays == pytest.approx(DOUBLING)
    assert max(delays) == RESTART_MAX_DELAY


def test_a_worker_that_ran_a_healthy_minute_restarts_the_count() -> None:
    backoff = RestartBackoff()
    for _ in range(5):
        backoff.next_delay(uptime=1.0)
    assert backoff.next_delay(uptime=HEALTHY_UPTIME) == pytest.approx(0.1)
    assert backoff.next_delay(uptime=1.0) == pytest.approx(0.2)


def test_a_worker_that_ran_just_under_a_minute_keeps_the_count() -> None:
    backoff = RestartBackoff()
    for _ in range(3):
        backoff.next_delay(uptime=1.0)
    assert backoff.next_delay(uptime=HEALTHY_UPTIME - 0.1) == pytest.approx(0.8)


BOOT_FAILURES = [
    (ExitCode.WORKER_BOOT, True, True),
    (ExitCode.WORKER_BOOT, False, True),
    (1, False, True),
    (-signal.SIGKILL, False, True),
    (1, True, False),
    (0, True, False),
    (-signal.SIGKILL, True, False),
]


@pytest.mark.parametrize(("returncode", "ever_ready", "boot_failure"), BOOT_FAILURES)
def test_a_boot_error_or_a_death_before_serving_is_a_boot_failure(
    returncode: int, ever_ready: bool, boot_failure: bool
) -> None:
    assert is_boot_failure(returncode, ever_ready=ever_ready) is boot_failure


EXITS = [
    (-signal.SIGKILL, False, "killed by SIGKILL (perhaps out of memory)"),
    (-signal.SIGKILL, True, "killed by SIGKILL"),
    (-signal.SIGTERM, False, "killed by SIGTERM"),
    (-signal.SIGSEGV, False, "killed by SIGSEGV"),
    (-200, False, "killed by signal 200"),
    (ExitCode.WORKER_BOOT, False, "could not start (boot error)"),
    (1, False, "exited with code 1"),
    (0, True, "exited with code 0"),
]


@pytest.mark.parametrize(("returncode", "expected", "description"), EXITS)
def test_an_exit_is_described_for_the_operator(
    returncode: int, expected: bool, description: str
) -> None:
    assert describe_exit(returncode, expected=expected) == description
