//! Per-call picking (round robin, least-request), READY first, and passive health strikes.
//! Pure; mirrors the grpcio plane's `gproxy_mp/worker/balancer.py` (`RoundRobin`,
//! `LeastRequest`, `Ewma`, `Strikes`).
//!
//! Each backend has a rank: 0 READY (a live HTTP/2 connection), 1 not known to be broken
//! (never connected yet, connecting), 2 failing (its last connect failed, or it answered
//! UNAVAILABLE lately: struck). With `--health-check`, a backend whose check fails ranks
//! `CHECK_FAILED` higher than its connection alone would: after every backend that passes, and
//! among those that fail, READY connections first (panic: when none passes, calls still go to
//! all of them). Both balancers pick only among the backends of the best rank present, so a
//! broken backend gets a call only when nothing better exists.
//!
//! - `pick` (`--balancer round-robin`): scans at most once around the ring from the cursor,
//!   takes the first backend of the best rank present, and moves the cursor past it; with
//!   every backend READY, calls go strictly in turn. O(1) per pick while the first is READY.
//! - `pick_least` (`--balancer least-request`): power of two choices (Envoy's least-request,
//!   Linkerd's P2C): two distinct backends of the best rank at random, and the one with fewer
//!   attempts in flight in this worker wins; a tie goes to the lower `Ewma` of its response
//!   times. O(1) per pick when both draws are READY; otherwise two bounded scans.

use std::time::{Duration, Instant};

pub const READY: u8 = 0;
pub const UNKNOWN: u8 = 1;
pub const FAILING: u8 = 2;
/// Added to the rank of a backend whose health check fails (`health.rs`).
pub const CHECK_FAILED: u8 = 3;

/// Seconds a backend ranks as failing after it answered UNAVAILABLE before sending anything,
/// doubling with each consecutive strike up to `STRIKE_MAX_PENALTY`.
const STRIKE_INITIAL_PENALTY: Duration = Duration::from_millis(500);
const STRIKE_MAX_PENALTY: Duration = Duration::from_secs(10);

/// Seconds over which a response time's weight in `Ewma` falls to 1/e (Linkerd's default).
const EWMA_DECAY: f64 = 10.0;

/// Which picker `--balancer` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balancer {
    RoundRobin,
    LeastRequest,
}

impl Balancer {
    pub fn from_name(name: &str) -> Option<Balancer> {
        match name {
            "round-robin" => Some(Balancer::RoundRobin),
            "least-request" => Some(Balancer::LeastRequest),
            _ => None,
        }
    }
}

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

/// Two distinct indices below `n` (n >= 2), uniformly, from `draw(k)` (a number below k).
fn two(n: usize, draw: &mut impl FnMut(usize) -> usize) -> (usize, usize) {
    let first = draw(n) % n;
    let second = (first + 1 + draw(n - 1) % (n - 1)) % n;
    (first, second)
}

/// Least-request's pick among `n` backends: of two distinct backends of the best rank drawn
/// at random, the one whose `load` (attempts in flight, response-time EWMA seconds) is lower,
/// the first drawn on a tie; never one `excluded` says. `draw(k)` is a random number below k.
pub fn pick_least(
    n: usize,
    rank: impl Fn(usize) -> u8,
    load: impl Fn(usize) -> (usize, f64),
    excluded: impl Fn(usize) -> bool,
    draw: &mut impl FnMut(usize) -> usize,
) -> Option<usize> {
    let lighter = |a: usize, b: usize| if load(a) <= load(b) { a } else { b };
    if n >= 2 {
        // The common case: two distinct READY draws, nothing excluded.
        let (a, b) = two(n, draw);
        if !excluded(a) && !excluded(b) && rank(a) == READY && rank(b) == READY {
            return Some(lighter(a, b));
        }
    }
    let mut best: Option<(u8, usize)> = None; // (rank, how many have it)
    for i in (0..n).filter(|&i| !excluded(i)) {
        let rank = rank(i);
        best = match best {
            Some((r, count)) if rank == r => Some((r, count + 1)),
            Some((r, _)) if rank > r => best,
            _ => Some((rank, 1)),
        };
    }
    let (best_rank, count) = best?;
    let nth = |k: usize| {
        (0..n)
            .filter(|&i| !excluded(i) && rank(i) == best_rank)
            .nth(k)
    };
    if count == 1 {
        return nth(0);
    }
    let (a, b) = two(count, draw);
    match (nth(a), nth(b)) {
        (Some(a), Some(b)) => Some(lighter(a, b)),
        (a, b) => a.or(b),
    }
}

/// An exponentially weighted moving average of response times, weighted by time: a sample
/// taken `dt` seconds after the previous one replaces a share 1 - exp(-dt/EWMA_DECAY) of it.
/// Unmeasured (no sample yet), it is 0: a new backend is tried first.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ewma {
    value: f64,
    last: Option<Instant>,
}

impl Ewma {
    pub fn observe(&mut self, seconds: f64, now: Instant) {
        self.value = match self.last {
            None => seconds,
            Some(last) => {
                let dt = now.saturating_duration_since(last).as_secs_f64();
                let weight = (-dt / EWMA_DECAY).exp();
                self.value * weight + seconds * (1.0 - weight)
            }
        };
        self.last = Some(now);
    }

    pub fn value(&self) -> f64 {
        self.value
    }
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

    /// Draws from a fixed list, in turn (each taken modulo k).
    fn scripted(draws: &[usize]) -> impl FnMut(usize) -> usize + '_ {
        let mut next = 0;
        move |k| {
            next += 1;
            draws[(next - 1) % draws.len()] % k
        }
    }

    fn least(
        ranks: &[u8],
        loads: &[(usize, f64)],
        excluded: &[usize],
        draws: &[usize],
    ) -> Option<usize> {
        pick_least(
            ranks.len(),
            |i| ranks[i],
            |i| loads[i],
            |i| excluded.contains(&i),
            &mut scripted(draws),
        )
    }

    #[test]
    fn least_request_takes_the_lighter_of_two_draws() {
        let loads = [(3, 0.0), (1, 0.0), (2, 0.0)];
        // Draws (a, b) compare backends a and (a + 1 + b) % 3.
        assert_eq!(least(&[READY; 3], &loads, &[], &[0, 0]), Some(1));
        assert_eq!(least(&[READY; 3], &loads, &[], &[0, 1]), Some(2));
        assert_eq!(least(&[READY; 3], &loads, &[], &[2, 0]), Some(2));
        assert_eq!(least(&[READY; 3], &loads, &[], &[1, 1]), Some(1));
    }

    #[test]
    fn least_request_never_takes_the_heaviest_of_several() {
        let loads = [(1, 0.0), (9, 0.0), (2, 0.0), (1, 0.0)];
        for a in 0..4 {
            for b in 0..3 {
                assert_ne!(least(&[READY; 4], &loads, &[], &[a, b]), Some(1));
            }
        }
    }

    #[test]
    fn least_request_breaks_a_tie_of_calls_in_flight_by_response_time() {
        let loads = [(2, 0.5), (2, 0.1)];
        assert_eq!(least(&[READY; 2], &loads, &[], &[0, 0]), Some(1));
        assert_eq!(
            least(&[READY; 2], &[(2, 0.1), (2, 0.1)], &[], &[1, 0]),
            Some(1)
        );
    }

    #[test]
    fn least_request_prefers_the_best_rank_as_round_robin_does() {
        let loads = [(0, 0.0), (9, 0.0), (0, 0.0), (9, 0.0)];
        let ranks = [UNKNOWN, READY, FAILING, READY];
        for a in 0..4 {
            for b in 0..3 {
                let chosen = least(&ranks, &loads, &[], &[a, b]).unwrap();
                assert!(chosen == 1 || chosen == 3, "{a} {b}: {chosen}");
            }
        }
        assert_eq!(
            least(&[FAILING, UNKNOWN, FAILING], &[(0, 0.0); 3], &[], &[0]),
            Some(1)
        );
    }

    #[test]
    fn least_request_skips_backends_already_tried_and_may_find_none() {
        let loads = [(0, 0.0), (5, 0.0), (9, 0.0)];
        assert_eq!(least(&[READY; 3], &loads, &[0], &[0, 0]), Some(1));
        assert_eq!(least(&[READY; 3], &loads, &[0, 1], &[0, 0]), Some(2));
        assert_eq!(least(&[READY; 3], &loads, &[0, 1, 2], &[0, 0]), None);
        assert_eq!(least(&[], &[], &[], &[0]), None);
    }

    #[test]
    fn least_request_compares_two_distinct_backends() {
        for k in 2..6 {
            for a in 0..k {
                for b in 0..k - 1 {
                    let (first, second) = two(k, &mut scripted(&[a, b]));
                    assert_ne!(first, second);
                    assert!(first < k && second < k);
                }
            }
        }
    }

    #[test]
    fn least_request_spreads_evenly_over_equal_backends() {
        let mut seen = [0usize; 3];
        let mut draw = scripted(&[0, 1, 2, 0, 1, 1, 2, 0, 2, 1, 0, 1]);
        for _ in 0..300 {
            let i = pick_least(3, |_| READY, |_| (0, 0.0), |_| false, &mut draw).unwrap();
            seen[i] += 1;
        }
        assert!(seen.iter().all(|&n| n >= 50), "{seen:?}");
    }

    #[test]
    fn the_response_time_average_follows_recent_samples_by_time() {
        let now = Instant::now();
        let mut ewma = Ewma::default();
        assert_eq!(ewma.value(), 0.0);
        ewma.observe(1.0, now);
        assert_eq!(ewma.value(), 1.0);
        ewma.observe(0.0, now + Duration::from_secs(10));
        assert!((ewma.value() - (-1.0f64).exp()).abs() < 1e-9);
        ewma.observe(5.0, now + Duration::from_secs(10));
        assert!((ewma.value() - (-1.0f64).exp()).abs() < 1e-9);
    }

    #[test]
    fn balancers_are_named_as_on_the_command_line() {
        assert_eq!(
            Balancer::from_name("least-request"),
            Some(Balancer::LeastRequest)
        );
        assert_eq!(
            Balancer::from_name("round-robin"),
            Some(Balancer::RoundRobin)
        );
        assert_eq!(Balancer::from_name("random"), None);
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
