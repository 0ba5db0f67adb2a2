"""When a failed call may be tried again on another backend. Pure; no gRPC here.

A call is retried only if it failed with UNAVAILABLE before anything reached the client, its
request messages are all still buffered, it has attempts left, and the worker's retry budget
allows. The budget is gRPC's retry throttling (gRFC A6): a token bucket that loses one token
per failed attempt and regains `token_ratio` per success; retries stop while it is at or below
half full, so when every backend is down a call costs about one attempt, not `max_attempts`.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_ATTEMPTS = 3
"""Attempts per call, the first one included."""
RETRY_BUFFER_BYTES = 256 * 1024
"""Request bytes kept per call for a replay (gRPC's own per-RPC retry buffer default)."""
CONNECT_FAILED = "failed to connect to all addresses"
"""How gRPC core's status details begin when a call failed for want of a connection."""


def retry_reason(details: str, *, connected: bool) -> str:
    """The `reason` label of `gproxy_retries_total` for a retry after an UNAVAILABLE attempt,
    named as the native engine names it (native/src/retry.rs): `connect` when the backend had
    no connection to give the call (its channel not READY, or gRPC said it could not connect),
    else `unavailable` (the backend answered UNAVAILABLE). The engine's third reason,
    `refused_stream`, never shows here: gRPC core retries refused streams itself."""
    return "connect" if not connected or details.startswith(CONNECT_FAILED) else "unavailable"


@dataclass(slots=True)
class RetryBudget:
    max_tokens: float = 10.0
    token_ratio: float = 0.1
    tokens: float = 10.0

    def record_success(self) -> None:
        self.tokens = min(self.max_tokens, self.tokens + self.token_ratio)

    def record_failure(self) -> None:
        self.tokens = max(0.0, self.tokens - 1.0)

    @property
    def allows_retry(self) -> bool:
        return self.tokens > self.max_tokens / 2


def should_retry(*, unavailable: bool, replayable: bool, attempt: int, max_attempts: int,
                 budget: RetryBudget, time_left: float | None) -> bool:
    """Decide on a retry after attempt number `attempt` (1-based) failed.

    `replayable` is False once anything reached the client or the request outgrew its buffer.
    """
    return (unavailable and replayable and attempt < max_attempts
            and budget.allows_retry and (time_left is None or time_left > 0))
