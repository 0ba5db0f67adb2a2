"""The retry budget (gRFC A6 throttling) and the decision to try a call again."""

from __future__ import annotations

from typing import Any

import pytest

from gproxy_mp.worker.retry import RetryBudget, retry_reason, should_retry


def test_a_fresh_budget_is_full_and_allows_retries() -> None:
    budget = RetryBudget()
    assert budget.tokens == budget.max_tokens
    assert budget.allows_retry


def test_four_failures_still_allow_a_retry_and_the_fifth_stops_them() -> None:
    budget = RetryBudget()
    for _ in range(4):
        budget.record_failure()
    assert budget.allows_retry
    budget.record_failure()
    assert not budget.allows_retry


def test_successes_refill_an_exhausted_budget() -> None:
    budget = RetryBudget()
    for _ in range(5):
        budget.record_failure()
    budget.record_success()
    assert budget.allows_retry


def test_each_failure_costs_one_token_and_each_success_earns_a_tenth() -> None:
    budget = RetryBudget()
    budget.record_failure()
    budget.record_failure()
    budget.record_success()
    assert budget.tokens == pytest.approx(8.1)


def test_the_budget_never_grows_past_full_nor_below_empty() -> None:
    budget = RetryBudget()
    budget.record_success()
    assert budget.tokens == budget.max_tokens
    for _ in range(20):
        budget.record_failure()
    assert budget.tokens == 0.0
    for _ in range(51):
        budget.record_success()
    assert budget.allows_retry


def exhausted() -> RetryBudget:
    return RetryBudget(tokens=5.0)


RETRYABLE: dict[str, Any] = {
    "unavailable": True, "replayable": True, "attempt": 1, "max_attempts": 3,
    "budget": RetryBudget(), "time_left": None,
}

DECISIONS = [
    pytest.param({}, True, id="unavailable-replayable-first-attempt"),
    pytest.param({"attempt": 2}, True, id="second-of-three-attempts"),
    pytest.param({"time_left": 0.5}, True, id="time-left"),
    pytest.param({"unavailable": False}, False, id="not-unavailable"),
    pytest.param({"replayable": False}, False, id="not-replayable"),
    pytest.param({"attempt": 3}, False, id="last-attempt"),
    pytest.param({"attempt": 1, "max_attempts": 1}, False, id="single-attempt-allowed"),
    pytest.param({"budget": exhausted()}, False, id="budget-at-half"),
    pytest.param({"time_left": 0.0}, False, id="deadline-reached"),
    pytest.param({"time_left": -1.0}, False, id="deadline-passed"),
]


@pytest.mark.parametrize(("change", "retry"), DECISIONS)
def test_a_call_is_retried_only_when_every_condition_holds(
    change: dict[str, Any], retry: bool
) -> None:
    assert should_retry(**(RETRYABLE | change)) is retry


RETRY_REASONS = [
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:9: refused",
     True, "connect"),
    ("failed to connect to all addresses", False, "connect"),
    ("Socket closed", False, "connect"),
    ("the backend is draining", True, "unavailable"),
]
"""(status details, the backend's channel READY, reason): the native engine's names."""


@pytest.mark.parametrize(("details", "connected", "reason"), RETRY_REASONS)
def test_a_retry_is_named_for_why_the_attempt_failed(details: str, connected: bool,
                                                     reason: str) -> None:
    assert retry_reason(details, connected=connected) == reason
