//! The route's current endpoint set, swapped in whole and read lock-free per call.
//!
//! `Endpoints::replace` (called from the worker's Python thread) builds the new table before
//! it stores it, so a pick never sees half a set: backends whose address stays keep their
//! `Backend` (and so their connections); new ones are created and connected ahead of the
//! first call; removed ones leave the pick at once and forget their connections, which h2
//! closes when their last call ends. The round-robin cursor is one atomic, and so is
//! least-request's random state (a xorshift generator: the draws need to be spread, not
//! secret).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::backend::Backend;
use crate::balance::{self, Balancer};
use crate::locality::Placement;
use crate::stats::Stats;

pub struct Endpoints {
    balancer: Balancer,
    table: ArcSwap<Vec<Arc<Backend>>>,
    cursor: AtomicUsize,
    random: AtomicU64,
    replacing: std::sync::Mutex<()>,
}

/// The next state of a xorshift64 generator (never 0 from a state that is not 0).
fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

impl Endpoints {
    pub fn new(balancer: Balancer) -> Endpoints {
        Endpoints {
            balancer,
            table: ArcSwap::default(),
            cursor: AtomicUsize::new(0),
            random: AtomicU64::new(RandomState::new().hash_one("gproxy") | 1),
            replacing: std::sync::Mutex::new(()),
        }
    }

    pub fn load(&self) -> Arc<Vec<Arc<Backend>>> {
        self.table.load_full()
    }

    /// Install `endpoints` (address, placement) as the whole set: kept backends take their new
    /// placement. Returns the backends that are new.
    pub fn replace(&self, endpoints: &[(String, Placement)], stats: &Stats) -> Vec<Arc<Backend>> {
        let _one_writer = self.replacing.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.table.load_full();
        let mut kept: HashMap<&str, &Arc<Backend>> =
            old.iter().map(|b| (b.address.as_str(), b)).collect();
        let mut added = Vec::new();
        let mut table = Vec::with_capacity(endpoints.len());
        for (address, placement) in endpoints {
            match kept.remove(address.as_str()) {
                Some(backend) => {
                    backend.place(*placement);
                    table.push(backend.clone());
                }
                None => {
                    let counts = stats.counts_for(address);
                    let backend = Arc::new(Backend::new(address.clone(), counts, *placement));
                    added.push(backend.clone());
                    table.push(backend);
                }
            }
        }
        self.table.store(Arc::new(table));
        for gone in kept.values() {
            gone.remove();
        }
        added
    }

    /// The backend of a call's next attempt: by the balancer, READY first, then the preferred
    /// ring (`locality.rs`), not one in `tried`.
    pub fn pick(
        &self,
        table: &[Arc<Backend>],
        tried: &[Arc<Backend>],
        now: Instant,
    ) -> Option<Arc<Backend>> {
        let rank = |i: usize| table[i].placed_rank(now);
        let excluded = |i: usize| tried.iter().any(|t| Arc::ptr_eq(t, &table[i]));
        let chosen = match self.balancer {
            Balancer::RoundRobin => {
                let mut cursor = self.cursor.load(Relaxed);
                let chosen = balance::pick(table.len(), rank, &mut cursor, excluded)?;
                self.cursor.store(cursor, Relaxed);
                chosen
            }
            Balancer::LeastRequest => {
                let mut state = self.random.load(Relaxed);
                let mut draw = |k: usize| {
                    state = xorshift(state);
                    (state % k as u64) as usize
                };
                let chosen = balance::pick_least(
                    table.len(),
                    rank,
                    |i| table[i].load(),
                    excluded,
                    &mut draw,
                );
                self.random.store(state, Relaxed);
                chosen?
            }
        };
        Some(table[chosen].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(address: &str, locality: &str, ring: u32) -> (String, Placement) {
        let placement = Placement::from_parts(locality, ring).unwrap();
        (address.to_owned(), placement)
    }

    #[test]
    fn a_placement_change_keeps_the_backend_and_moves_it_to_its_new_ring() {
        let (endpoints, stats) = (Endpoints::new(Balancer::RoundRobin), Stats::default());
        let first = [placed("a:1", "other", 1), placed("b:1", "same_node", 0)];
        assert_eq!(endpoints.replace(&first, &stats).len(), 2);
        let before = endpoints.load();
        let second = [placed("a:1", "same_zone", 0), placed("b:1", "other", 2)];
        assert!(endpoints.replace(&second, &stats).is_empty());
        let after = endpoints.load();
        assert!(Arc::ptr_eq(&before[0], &after[0]));
        assert_eq!(after[0].locality(), 2);
        let now = Instant::now();
        let ranks: Vec<u8> = after.iter().map(|b| b.placed_rank(now)).collect();
        assert!(ranks[0] < ranks[1], "{ranks:?}");
    }

    #[test]
    fn least_request_picks_only_backends_of_the_set_and_none_when_all_were_tried() {
        let (endpoints, stats) = (Endpoints::new(Balancer::LeastRequest), Stats::default());
        endpoints.replace(
            &[placed("a:1", "none", 0), placed("b:1", "none", 0)],
            &stats,
        );
        let table = endpoints.load();
        let now = Instant::now();
        for _ in 0..20 {
            assert!(endpoints.pick(&table, &[], now).is_some());
        }
        let first = endpoints.pick(&table, &[], now).unwrap();
        let second = endpoints
            .pick(&table, std::slice::from_ref(&first), now)
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(endpoints.pick(&table, &[first, second], now).is_none());
    }
}
