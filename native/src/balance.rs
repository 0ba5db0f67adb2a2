//! Per-call round robin, READY first, and passive health strikes. Pure; mirrors the grpcio
//! plane's `gproxy_mp/worker/balancer.py` (`RoundRobin`, `Strikes`).
//!
//! Each backend has a rank: 0 READY (a live HTTP/2 connection), 1 not known to be broken
//! (never connected yet, connecting), 2 failing (its last connect failed, or it answered
//! UNAVAILABLE lately: struck). A pick scans at most once around the ring from the cursor,
//! takes the first backend of the best rank present, and moves the cursor past it; with
//! every backend READY, calls go strictly in turn. O(1) per pick while the first is READY.

use std::time::{Duration, Instant};

pub const READY: u8 = 0;
pub const UNKNOWN: u8 = 1;
pub const FAILING: u8 = 2;

/// Seconds a backend ranks as failing after it answered UNAVAILABLE before sending anything,
/// doubling with each consecutive strike up to `STRIKE_MAX_PENALTY`.
const STRIKE_INITIAL_PENALTY: Duration = Duration::from_millis(500);
const STRIKE_MAX_PENALTY: Duration = Duration::from_secs(10);

/// The index of the backend the next call goes to, among `n` backends ranked by `rank`,
/// skipping those `excluded` says (the attempts this call already made). Moves `cursor` past
/// it. Ranks are asked lazily: the scan stops at the first READY backend.
pub fn pick(
    n: usize,
    rank: impl Fn(usize) -> u8,
    cursor: &mut usize,
    excluded: impl Fn(usize) -> bool,
) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let start = *cursor % n;
    let mut best: Option<(u8, usize)> = None;
    for step in 0..n {
        let i = (start + step) % n;
        if excluded(i) {
            continue;
        }
        let rank = rank(i);
        if best.is_none_or(|(r, _)| rank < r) {
            best = Some((rank, i));
            if rank == READY {
                break;
            }
        }
    }
    let (_, chosen) = best?;
    *cursor = chosen + 1;
    Some(chosen)
}

/// Passive health: a backend that answers UNAVAILABLE before sending anything ranks as
/// failing for a while, so calls go to healthy backends first.
#[derive(Debug, Default, Clone, Copy)]
pub struct Strikes {
    count: u32,
    until: Option<Instant>,
}

impl Strikes {
    pub fn strike(&mut self, now: Instant) {
        self.count = self.count.saturating_add(1);
        let factor = 2u32.saturating_pow(self.count.saturating_sub(1).min(16));
        let penalty = STRIKE_INITIAL_PENALTY
            .saturating_mul(factor)
            .min(STRIKE_MAX_PENALTY);
        self.until = Some(now + penalty);
    }

    pub fn clear(&mut self) {
        *self = Strikes::default();
    }

    pub fn active(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(ranks: &[u8], n: usize) -> Vec<usize> {
        let mut cursor = 0;
        (0..n)
            .map(|_| pick(ranks.len(), |i| ranks[i], &mut cursor, |_| false).unwrap())
            .collect()
    }

    #[test]
    fn ready_backends_take_calls_in_turn() {
        assert_eq!(picks(&[READY, READY, READY], 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn ready_backends_come_before_the_others() {
        assert_eq!(picks(&[UNKNOWN, READY, FAILING, READY], 4), [1, 3, 1, 3]);
    }

    #[test]
    fn connecting_backends_come_before_failing_ones() {
        assert_eq!(picks(&[FAILING, UNKNOWN, FAILING], 2), [1, 1]);
    }

    #[test]
    fn a_failing_backend_is_picked_when_nothing_better_exists() {
        assert_eq!(picks(&[FAILING], 2), [0, 0]);
    }

    #[test]
    fn tried_backends_are_skipped() {
        let mut cursor = 0;
        assert_eq!(pick(2, |_| READY, &mut cursor, |i| i == 0), Some(1));
        assert_eq!(pick(2, |_| READY, &mut cursor, |_| true), None);
    }

    #[test]
    fn an_empty_set_has_nothing_to_pick() {
        assert_eq!(pick(0, |_| READY, &mut 0, |_| false), None);
    }

    #[test]
    fn a_cursor_past_a_shrunken_set_wraps() {
        let mut cursor = 7;
        assert_eq!(pick(2, |_| READY, &mut cursor, |_| false), Some(1));
    }

    #[test]
    fn strikes_double_up_to_the_maximum_and_clear() {
        let now = Instant::now();
        let mut strikes = Strikes::default();
        strikes.strike(now);
        assert!(strikes.active(now + Duration::from_millis(400)));
        assert!(!strikes.active(now + Duration::from_millis(600)));
        for _ in 0..40 {
            strikes.strike(now);
        }
        assert!(strikes.active(now + Duration::from_millis(9_900)));
        assert!(!strikes.active(now + Duration::from_millis(10_100)));
        strikes.clear();
        assert!(!strikes.active(now));
    }
}
