//! The engine's counters: written by the runtime thread per call with relaxed atomics, read by
//! the worker's Python when it reports (every second), never with the GIL per call.
//!
//! The same counts as the grpcio plane's `gproxy_mp/worker/stats.py`: calls by backend, gRPC
//! status code, the backend's locality when it was picked (`locality.rs`) and, with
//! `--metrics-method-label`, the method; a latency histogram over `LATENCY_BUCKETS` (those of
//! `gproxy_mp/bus/schema.py`, checked by a Python test), retries by reason, calls in flight.
//! The label sets are bounded: after `MAX_BACKENDS` distinct backends, or `MAX_METHODS`
//! distinct methods, further ones count as "other". Without the method label a backend's
//! counters are looked up once, when the engine first sees the backend, so a call touches
//! only atomics; with it, each attempt looks its (backend, method) counters up in a map.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::locality::LOCALITIES;
use crate::retry::Failure;

/// Upper bounds, in seconds, of the call latency histogram (plus +Inf).
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// gRPC status code names, indexed by code.
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];
pub const OK: u8 = 0;
pub const CANCELLED: u8 = 1;
pub const UNKNOWN: u8 = 2;
pub const DEADLINE_EXCEEDED: u8 = 4;
pub const RESOURCE_EXHAUSTED: u8 = 8;
pub const INTERNAL: u8 = 13;
pub const UNAVAILABLE: u8 = 14;
/// Distinct backend label values kept; endpoints churn, the label set must not grow without
/// bound (the grpcio plane's `MAX_BACKENDS`).
const MAX_BACKENDS: usize = 1000;
const OTHER_BACKEND: &str = "other";
/// Distinct method label values kept (the grpcio plane's `MAX_METHODS`): clients choose
/// method names.
const MAX_METHODS: usize = 200;
const OTHER_METHOD: &str = "other";
const RETRY_REASONS: [Failure; 3] = [Failure::Connect, Failure::Refused, Failure::Unavailable];

/// One backend label's calls by locality (an index into `LOCALITIES`) and code.
#[derive(Default)]
pub struct CallCounts {
    by_code: [[AtomicU64; 17]; LOCALITIES.len()],
}

impl CallCounts {
    pub fn record(&self, code: u8, locality: u8) {
        let locality = usize::from(locality).min(LOCALITIES.len() - 1);
        self.by_code[locality][usize::from(code.min(16))].fetch_add(1, Relaxed);
    }
}

/// Counters by backend label, then method label ("" without `--metrics-method-label`).
#[derive(Default)]
struct Labels {
    by_backend: HashMap<String, HashMap<String, Arc<CallCounts>>>,
    methods: HashSet<String>,
}

#[derive(Default)]
pub struct Stats {
    labels: Mutex<Labels>,
    buckets: [AtomicU64; 16],
    duration_nanos: AtomicU64,
    retries: [AtomicU64; 3],
    active: AtomicI64,
}

/// What `Stats::snapshot` reads: calls as (backend, code name, method, locality name, count).
pub struct Snapshot {
    pub calls: Vec<(String, &'static str, String, &'static str, u64)>,
    pub buckets: Vec<u64>,
    pub duration_sum: f64,
    pub retries: Vec<(&'static str, u64)>,
}

impl Stats {
    /// The counters of a backend label ("" for calls that reached no backend).
    pub fn counts_for(&self, backend: &str) -> Arc<CallCounts> {
        self.counts_for_method(backend, "")
    }

    /// The counters of a backend label and a method label ("": not counted by method).
    pub fn counts_for_method(&self, backend: &str, method: &str) -> Arc<CallCounts> {
        let mut labels = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(counts) = labels.by_backend.get(backend).and_then(|m| m.get(method)) {
            return counts.clone();
        }
        let method = if method.is_empty() || labels.methods.contains(method) {
            method
        } else if labels.methods.len() >= MAX_METHODS {
            OTHER_METHOD
        } else {
            labels.methods.insert(method.to_owned());
            method
        };
        let backend =
            if labels.by_backend.contains_key(backend) || labels.by_backend.len() < MAX_BACKENDS {
                backend
            } else {
                OTHER_BACKEND
            };
        labels
            .by_backend
            .entry(backend.to_owned())
            .or_default()
            .entry(method.to_owned())
            .or_default()
            .clone()
    }

    pub fn record_latency(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.duration_nanos.fetch_add(nanos, Relaxed);
    }

    pub fn record_retry(&self, why: Failure) {
        if let Some(i) = RETRY_REASONS.iter().position(|r| *r == why) {
            self.retries[i].fetch_add(1, Relaxed);
        }
    }

    pub fn call_started(&self) {
        self.active.fetch_add(1, Relaxed);
    }

    pub fn call_ended(&self) {
        self.active.fetch_sub(1, Relaxed);
    }

    pub fn active_calls(&self) -> i64 {
        self.active.load(Relaxed)
    }

    pub fn snapshot(&self) -> Snapshot {
        let labels = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        let mut calls = Vec::new();
        for (backend, by_method) in &labels.by_backend {
            for (method, counts) in by_method {
                for (locality, by_code) in LOCALITIES.iter().zip(&counts.by_code) {
                    for (code, count) in CODE_NAMES.iter().zip(by_code) {
                        let n = count.load(Relaxed);
                        if n > 0 {
                            calls.push((backend.clone(), *code, method.clone(), *locality, n));
                        }
                    }
                }
            }
        }
        Snapshot {
            calls,
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            duration_sum: self.duration_nanos.load(Relaxed) as f64 / 1e9,
            retries: RETRY_REASONS
                .iter()
                .zip(&self.retries)
                .map(|(why, n)| (why.reason(), n.load(Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_goes_to_the_first_bucket_at_or_above_it() {
        let stats = Stats::default();
        stats.record_latency(Duration::from_micros(500));
        stats.record_latency(Duration::from_millis(1));
        stats.record_latency(Duration::from_millis(3));
        stats.record_latency(Duration::from_secs(100));
        let snap = stats.snapshot();
        assert_eq!(snap.buckets[0], 2);
        assert_eq!(snap.buckets[2], 1);
        assert_eq!(snap.buckets[15], 1);
        assert!((snap.duration_sum - 100.0045).abs() < 1e-9);
    }

    #[test]
    fn calls_are_counted_by_backend_code_and_locality() {
        let stats = Stats::default();
        stats.counts_for("a:1").record(OK, 0);
        stats.counts_for("a:1").record(OK, 0);
        stats.counts_for("a:1").record(OK, 1);
        stats.counts_for("").record(UNAVAILABLE, 0);
        let mut calls = stats.snapshot().calls;
        calls.sort();
        assert_eq!(
            calls,
            [
                ("".into(), "UNAVAILABLE", "".into(), "none", 1),
                ("a:1".into(), "OK", "".into(), "none", 2),
                ("a:1".into(), "OK", "".into(), "same_node", 1)
            ]
        );
    }

    #[test]
    fn backend_labels_are_bounded() {
        let stats = Stats::default();
        for i in 0..MAX_BACKENDS + 5 {
            stats.counts_for(&format!("10.0.0.1:{i}")).record(OK, 3);
        }
        let calls = stats.snapshot().calls;
        assert_eq!(calls.len(), MAX_BACKENDS + 1);
        assert!(calls.contains(&("other".into(), "OK", "".into(), "other", 5)));
    }

    #[test]
    fn method_labels_are_bounded_and_kept_apart_per_backend() {
        let stats = Stats::default();
        for i in 0..MAX_METHODS + 2 {
            stats
                .counts_for_method("a:1", &format!("/s/M{i}"))
                .record(OK, 0);
        }
        stats.counts_for_method("b:1", "/s/M0").record(OK, 0);
        stats.counts_for_method("b:1", "/s/new").record(OK, 0);
        stats.counts_for("b:1").record(OK, 0);
        let calls = stats.snapshot().calls;
        let count = |backend: &str, method: &str| {
            calls
                .iter()
                .filter(|c| c.0 == backend && c.2 == method)
                .map(|c| c.4)
                .sum::<u64>()
        };
        assert_eq!(count("a:1", "/s/M0"), 1);
        assert_eq!(count("a:1", "other"), 2);
        assert_eq!(count("b:1", "/s/M0"), 1);
        assert_eq!(count("b:1", "other"), 1);
        assert_eq!(count("b:1", ""), 1);
    }

    #[test]
    fn retries_are_counted_by_reason() {
        let stats = Stats::default();
        stats.record_retry(Failure::Unavailable);
        stats.record_retry(Failure::Connect);
        stats.record_retry(Failure::Connect);
        let mut retries = stats.snapshot().retries;
        retries.sort();
        assert_eq!(retries, [("connect", 2), ("unavailable", 1)]);
    }
}
