//! Each backend's health-check verdict, and the changes the worker's Python has yet to log.
//! Pure but for one nonblocking write; the answers themselves are judged in `health.rs`.
//!
//! A backend not checked yet passes, as on the grpcio plane. Its `Health` keeps the last
//! verdict, and an atomic the pickers read per call (`Backend::placed_rank`). Verdict changes
//! are not logged here (the engine never takes the GIL): `Health::take` returns a `Change`
//! when the condition changes, which `Checks` queues (bounded) for the worker's Python to log
//! with `health.py`'s `describe_change`; a byte on the worker's wake-up pipe (written when the
//! queue was empty, never blocking) tells it to read them now.
//!
//! Concurrency: a backend's `Health` is written by its checker task on the runtime thread and
//! read per pick (one atomic) and by the worker's Python (a short lock); `Checks` likewise.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::health::{Condition, Verdict};

/// One check may take at most this long (less when the interval is shorter).
const MAX_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Verdict changes kept for the worker's Python between two reads; past that the oldest are
/// dropped and counted.
const MAX_CHANGES: usize = 4096;

/// A backend's verdict changed: `before` None is its first check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub before: Option<Verdict>,
    pub after: Verdict,
}

/// One backend's health-check state.
pub struct Health {
    /// Its last check named a condition (read per pick).
    failed: AtomicBool,
    verdict: Mutex<Option<Verdict>>,
    /// Counts the connections opened to it, so its checker checks at once after one.
    connections: watch::Sender<u64>,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            failed: AtomicBool::new(false),
            verdict: Mutex::default(),
            connections: watch::Sender::new(0),
        }
    }
}

impl Health {
    /// A new connection to the backend is up.
    pub fn connected(&self) {
        self.connections.send_modify(|n| *n += 1);
    }

    /// What its checker waits on between checks (`connected` marks it changed).
    pub fn connections(&self) -> watch::Receiver<u64> {
        self.connections.subscribe()
    }

    fn verdict(&self) -> MutexGuard<'_, Option<Verdict>> {
        self.verdict.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether its last check keeps it out of the pick (not checked yet: no).
    pub fn failed(&self) -> bool {
        self.failed.load(Relaxed)
    }

    /// Its last check's condition (None: passes, or not checked yet).
    pub fn condition(&self) -> Option<Condition> {
        self.verdict().as_ref().and_then(|v| v.condition)
    }

    /// Keep a check's verdict; a `Change` when it is the first, or its condition is not the
    /// last one's (the same condition again, whatever its words, is nothing new).
    pub fn take(&self, verdict: Verdict) -> Option<Change> {
        let mut last = self.verdict();
        self.failed.store(verdict.condition.is_some(), Relaxed);
        let changed = last
            .as_ref()
            .is_none_or(|before| before.condition != verdict.condition);
        let before = last.replace(verdict.clone());
        changed.then_some(Change {
            before,
            after: verdict,
        })
    }
}

/// `--health-check[=SERVICE]` and its interval, and the verdict changes not read yet.
pub struct Checks {
    pub service: String,
    pub interval: Duration,
    changes: Mutex<VecDeque<(String, Change)>>,
    dropped: AtomicU64,
    /// A nonblocking pipe's write end the worker's loop watches (None: it reads the queue
    /// only at its status reports).
    wake: Mutex<Option<File>>,
}

impl Checks {
    pub fn new(service: String, interval: Duration) -> Checks {
        Checks {
            service,
            interval,
            changes: Mutex::default(),
            dropped: AtomicU64::new(0),
            wake: Mutex::default(),
        }
    }

    /// How long one check may take: the interval, at most `MAX_CHECK_TIMEOUT`.
    pub fn timeout(&self) -> Duration {
        self.interval.min(MAX_CHECK_TIMEOUT)
    }

    /// The wait before the next check: the interval ×0.9–1.1 by `fraction` (0..1), so the
    /// checks of many workers spread out.
    pub fn next_wait(&self, fraction: f64) -> Duration {
        self.interval.mul_f64(0.9 + 0.2 * fraction.clamp(0.0, 1.0))
    }

    fn changes(&self) -> MutexGuard<'_, VecDeque<(String, Change)>> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write a byte to `wake` (a nonblocking pipe) whenever a change is queued while none
    /// was waiting; replaces (and closes) the one before.
    pub fn wake_with(&self, wake: File) {
        *self.wake.lock().unwrap_or_else(|e| e.into_inner()) = Some(wake);
    }

    /// Queue a backend's change for the worker's log.
    pub fn record(&self, address: &str, change: Change) {
        let mut changes = self.changes();
        if changes.len() >= MAX_CHANGES {
            changes.pop_front();
            self.dropped.fetch_add(1, Relaxed);
        }
        changes.push_back((address.to_owned(), change));
        if changes.len() == 1 {
            // The worker reads every byte before the queue, so one byte per non-empty queue
            // is enough; a full pipe (WouldBlock) or a closed one already says as much.
            if let Some(mut wake) = self.wake.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                let _ = wake.write(&[1]);
            }
        }
    }

    /// The changes queued since the last call, oldest first, and how many were dropped.
    pub fn take_changes(&self) -> (Vec<(String, Change)>, u64) {
        let changes = self.changes().drain(..).collect();
        (changes, self.dropped.swap(0, Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(condition: Option<Condition>) -> Verdict {
        Verdict::new(condition, "why")
    }

    #[test]
    fn a_backend_not_checked_yet_passes() {
        let health = Health::default();
        assert!(!health.failed());
        assert_eq!(health.condition(), None);
    }

    #[test]
    fn only_a_first_verdict_or_a_new_condition_is_a_change() {
        let health = Health::default();
        let first = health.take(verdict(None)).unwrap();
        assert_eq!(first.before, None);
        assert_eq!(health.take(Verdict::new(None, "other words")), None);
        let failed = health.take(verdict(Some(Condition::NotServing))).unwrap();
        assert_eq!(failed.before, Some(Verdict::new(None, "other words")));
        assert!(health.failed());
        assert_eq!(health.condition(), Some(Condition::NotServing));
        assert_eq!(health.take(verdict(Some(Condition::NotServing))), None);
        let other = health.take(verdict(Some(Condition::Failing))).unwrap();
        assert_eq!(other.before.unwrap().condition, Some(Condition::NotServing));
        assert!(health.take(verdict(None)).is_some());
        assert!(!health.failed());
    }

    #[test]
    fn a_new_connection_wakes_the_checker_once() {
        let health = Health::default();
        let mut connections = health.connections();
        assert!(!connections.has_changed().unwrap());
        health.connected();
        health.connected();
        assert!(connections.has_changed().unwrap());
        connections.borrow_and_update();
        assert!(!connections.has_changed().unwrap());
    }

    #[test]
    fn changes_are_queued_in_order_and_the_oldest_dropped_past_the_bound() {
        let checks = Checks::new(String::new(), Duration::from_secs(5));
        let change = Change {
            before: None,
            after: verdict(None),
        };
        for i in 0..MAX_CHANGES + 2 {
            checks.record(&format!("b:{i}"), change.clone());
        }
        let (changes, dropped) = checks.take_changes();
        assert_eq!((changes.len(), dropped), (MAX_CHANGES, 2));
        assert_eq!(changes[0].0, "b:2");
        assert_eq!(checks.take_changes(), (vec![], 0));
    }

    #[test]
    fn a_change_queued_while_none_waits_writes_one_byte_to_the_wake_up_pipe() {
        use std::io::Read;
        use std::os::unix::net::UnixStream;
        let (mut read, write) = UnixStream::pair().unwrap();
        read.set_nonblocking(true).unwrap();
        let checks = Checks::new(String::new(), Duration::from_secs(5));
        checks.wake_with(File::from(std::os::fd::OwnedFd::from(write)));
        let change = Change {
            before: None,
            after: verdict(None),
        };
        let mut bytes = [0; 8];
        checks.record("a:1", change.clone());
        checks.record("b:1", change.clone());
        assert_eq!(read.read(&mut bytes).unwrap(), 1);
        assert_eq!(checks.take_changes().0.len(), 2);
        checks.record("c:1", change);
        assert_eq!(read.read(&mut bytes).unwrap(), 1);
    }

    #[test]
    fn a_check_takes_at_most_the_interval_and_waits_spread_around_it() {
        let checks = Checks::new(String::new(), Duration::from_millis(300));
        assert_eq!(checks.timeout(), Duration::from_millis(300));
        let slow = Checks::new(String::new(), Duration::from_secs(5));
        assert_eq!(slow.timeout(), MAX_CHECK_TIMEOUT);
        assert_eq!(slow.next_wait(0.0), Duration::from_millis(4500));
        assert_eq!(slow.next_wait(1.0), Duration::from_millis(5500));
        assert_eq!(slow.next_wait(7.0), Duration::from_millis(5500));
    }
}
