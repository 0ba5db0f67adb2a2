//! The route's current endpoint set, swapped in whole and read lock-free per call.
//!
//! `Endpoints::replace` (called from the worker's Python thread) builds the new table before
//! it stores it, so a pick never sees half a set: backends whose address stays keep their
//! `Backend` (and so their connections); new ones are created and connected ahead of the
//! first call; removed ones leave the pick at once and forget their connections, which h2
//! closes when their last call ends. The round-robin cursor is one atomic.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::backend::Backend;
use crate::balance;
use crate::stats::Stats;

#[derive(Default)]
pub struct Endpoints {
    table: ArcSwap<Vec<Arc<Backend>>>,
    cursor: AtomicUsize,
    replacing: std::sync::Mutex<()>,
}

impl Endpoints {
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

    /// The backend of a call's next attempt: round robin, READY first, not one in `tried`.
    pub fn pick(
        &self,
        table: &[Arc<Backend>],
        tried: &[Arc<Backend>],
        now: Instant,
    ) -> Option<Arc<Backend>> {
        let mut cursor = self.cursor.load(Relaxed);
        let chosen = balance::pick(
            table.len(),
            |i| table[i].rank(now),
            &mut cursor,
            |i| tried.iter().any(|t| Arc::ptr_eq(t, &table[i])),
        )?;
        self.cursor.store(cursor, Relaxed);
        Some(table[chosen].clone())
    }
}
