//! The access log (`--access-log`): one record per call, written by the runtime thread into a
//! bounded queue and logged by the worker's Python, which drains the queue a few times a
//! second (`planes/native.py`), so no call takes the GIL. Records past `CAPACITY` (the
//! Python side fell that far behind) are dropped and counted, and the adapter says how many.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Records kept between two drains: a few seconds of a busy worker's calls.
pub const CAPACITY: usize = 65_536;

/// One call, as the grpcio plane's access log line has it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessRecord {
    /// The call's `:path`, `/package.Service/Method`.
    pub method: String,
    /// The last backend tried (`host:port`), "" when none was.
    pub backend: String,
    pub code: u8,
    pub seconds: f64,
}

#[derive(Default)]
pub struct AccessLog {
    queue: Mutex<VecDeque<AccessRecord>>,
    dropped: AtomicU64,
}

impl AccessLog {
    pub fn push(&self, record: AccessRecord) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= CAPACITY {
            self.dropped.fetch_add(1, Relaxed);
        } else {
            queue.push_back(record);
        }
    }

    /// Every record queued so far, oldest first, and how many were dropped since the last
    /// drain.
    pub fn drain(&self) -> (Vec<AccessRecord>, u64) {
        let taken = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        (taken.into(), self.dropped.swap(0, Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> AccessRecord {
        AccessRecord {
            method: format!("/s/M{i}"),
            backend: String::new(),
            code: 0,
            seconds: 0.0,
        }
    }

    #[test]
    fn a_drain_takes_the_records_in_order_and_empties_the_queue() {
        let log = AccessLog::default();
        log.push(record(1));
        log.push(record(2));
        assert_eq!(log.drain(), (vec![record(1), record(2)], 0));
        assert_eq!(log.drain(), (vec![], 0));
    }

    #[test]
    fn records_past_the_capacity_are_dropped_and_counted_once() {
        let log = AccessLog::default();
        for i in 0..CAPACITY + 3 {
            log.push(record(i));
        }
        let (records, dropped) = log.drain();
        assert_eq!((records.len(), dropped), (CAPACITY, 3));
        assert_eq!(records[0], record(0));
        assert_eq!(log.drain().1, 0);
    }
}
