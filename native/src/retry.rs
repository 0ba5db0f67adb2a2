//! When a failed attempt may be tried again on another backend. Pure; mirrors the grpcio
//! plane's `gproxy_mp/worker/retry.py` (same attempts, same buffer, same budget).
//!
//! An attempt is retried only if it failed before anything reached the client (connect
//! refused or timed out, REFUSED_STREAM, a GOAWAY that did not cover the stream, or a
//! Trailers-Only UNAVAILABLE from the backend), its request is still all buffered, it has
//! attempts left, the deadline has time left, and the worker's retry budget allows. The
//! budget is gRPC's retry throttling (gRFC A6): one token lost per failed attempt,
//! `TOKEN_RATIO` regained per success; no retries at or below half full.

/// Attempts per call, the first one included.
pub const MAX_ATTEMPTS: usize = 3;
/// Request bytes kept per call for a replay (gRPC's own per-RPC retry buffer default).
pub const RETRY_BUFFER_BYTES: usize = 256 * 1024;
const MAX_TOKENS: f64 = 10.0;
const TOKEN_RATIO: f64 = 0.1;

/// Why an attempt failed before the backend answered anything the client saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No HTTP/2 connection: refused, timed out, or the peer never spoke HTTP/2.
    Connect,
    /// The backend refused the stream (REFUSED_STREAM) or closed the connection before
    /// processing it (GOAWAY).
    Refused,
    /// The backend answered Trailers-Only UNAVAILABLE.
    Unavailable,
}

impl Failure {
    /// The `reason` label of the retries counter; the grpcio plane names its retries the same
    /// (`gproxy_mp/worker/retry.py`, `retry_reason`), but for `refused_stream`.
    pub fn reason(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Refused => "refused_stream",
            Failure::Unavailable => "unavailable",
        }
    }
}

/// The worker's retry budget (one per engine; the engine is single-threaded).
#[derive(Debug)]
pub struct Budget {
    tokens: f64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { tokens: MAX_TOKENS }
    }
}

impl Budget {
    pub fn record_success(&mut self) {
        self.tokens = (self.tokens + TOKEN_RATIO).min(MAX_TOKENS);
    }

    pub fn record_failure(&mut self) {
        self.tokens = (self.tokens - 1.0).max(0.0);
    }

    pub fn allows_retry(&self) -> bool {
        self.tokens > MAX_TOKENS / 2.0
    }
}

/// Whether to try another backend after attempt number `attempt` (1-based) failed.
/// `replayable` is false once anything reached the client or the request outgrew its buffer;
/// `backends` is how many backends the call could still be sent to that it has not tried.
pub fn should_retry(
    replayable: bool,
    attempt: usize,
    untried_backends: usize,
    budget: &Budget,
    time_left: bool,
) -> bool {
    replayable
        && attempt < MAX_ATTEMPTS
        && untried_backends > 0
        && budget.allows_retry()
        && time_left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_budget_allows_retries() {
        let budget = Budget::default();
        assert!(should_retry(true, 1, 2, &budget, true));
    }

    #[test]
    fn nothing_is_retried_once_the_client_saw_something() {
        assert!(!should_retry(false, 1, 2, &Budget::default(), true));
    }

    #[test]
    fn attempts_are_bounded() {
        assert!(should_retry(
            true,
            MAX_ATTEMPTS - 1,
            5,
            &Budget::default(),
            true
        ));
        assert!(!should_retry(
            true,
            MAX_ATTEMPTS,
            5,
            &Budget::default(),
            true
        ));
    }

    #[test]
    fn no_retry_without_another_backend_or_time() {
        assert!(!should_retry(true, 1, 0, &Budget::default(), true));
        assert!(!should_retry(true, 1, 3, &Budget::default(), false));
    }

    #[test]
    fn an_outage_drains_the_budget_to_half_and_stops_retries() {
        let mut budget = Budget::default();
        for _ in 0..5 {
            budget.record_failure();
        }
        assert!(!budget.allows_retry());
        // Successes earn it back slowly: 0.1 token each, so 1 retry per 10 successes.
        for _ in 0..11 {
            budget.record_success();
        }
        assert!(budget.allows_retry());
    }

    #[test]
    fn the_budget_stays_within_its_bounds() {
        let mut budget = Budget::default();
        for _ in 0..100 {
            budget.record_success();
        }
        assert!(budget.tokens <= MAX_TOKENS);
        for _ in 0..100 {
            budget.record_failure();
        }
        assert!(budget.tokens >= 0.0);
    }
}
