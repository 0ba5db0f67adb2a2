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

    /// Install `addresses` as the whole set. Returns the backends that are new.
    pub fn replace(&self, addresses: &[String], stats: &Stats) -> Vec<Arc<Backend>> {
        let _one_writer = self.replacing.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.table.load_full();
        let mut kept: HashMap<&str, &Arc<Backend>> =
            old.iter().map(|b| (b.address.as_str(), b)).collect();
        let mut added = Vec::new();
        let mut table = Vec::with_capacity(addresses.len());
        for address in addresses {
            match kept.remove(address.as_str()) {
                Some(backend) => table.push(backend.clone()),
                None => {
                    let backend =
                        Arc::new(Backend::new(address.clone(), stats.counts_for(address)));
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

    /// The backend of a call's next attempt: by the balancer, READY first, not one in `tried`.
    pub fn pick(
        &self,
        table: &[Arc<Backend>],
        tried: &[Arc<Backend>],
        now: Instant,
    ) -> Option<Arc<Backend>> {
        let rank = |i: usize| table[i].rank(now);
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
