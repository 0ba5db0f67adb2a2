//! Active health checks (`--health-check[=SERVICE]`): what a `grpc.health.v1.Health/Check`
//! answer means, and each backend's verdict. Pure; mirrors the grpcio plane's
//! `gproxy_mp/worker/health.py`, whose reasons and log lines the worker's Python reuses.
//!
//! The checks themselves run on each backend's own connection (`checker.rs`). A backend whose
//! verdict names a condition ranks `balance::CHECK_FAILED` after every backend that passes
//! until a check passes again; when none passes, calls go to all of them (panic: the worker's
//! `PanicWatch` says so). A backend not checked yet counts as passing, as on the grpcio plane.
//! Conditions (the `BackendCondition` names of `gproxy_mp/bus/schema.py`):
//!
//! ```text
//! answer SERVING, or UNIMPLEMENTED            passes (None)
//! answer NOT_SERVING or UNKNOWN               not_serving
//! answer SERVICE_UNKNOWN, or NOT_FOUND        unknown_service
//! any other status (UNAVAILABLE, DEADLINE_EXCEEDED: a refused, stopped or hung backend),
//! or an unreadable answer                     failing
//! ```
//!
//! The two messages are encoded here by hand (one optional string; one enum), each in gRPC's
//! length-prefixed framing (1 byte compressed flag, 4 bytes big-endian length):
//!
//! ```text
//! HealthCheckRequest  { string service = 1; }
//! HealthCheckResponse { ServingStatus status = 1; }  UNKNOWN 0, SERVING 1, NOT_SERVING 2,
//!                                                    SERVICE_UNKNOWN 3
//! ```
//!
//! Verdict changes are not logged here (the engine never takes the GIL): each backend's
//! `Health::take` returns a `Change`, which `Checks` queues (bounded) for the worker's Python
//! to log with `health.py`'s `describe_change`; a byte on the worker's wake-up pipe (written
//! when the queue was empty, never blocking) tells it to read them now.
//!
//! Concurrency: a backend's `Health` is written by its checker task on the runtime thread and
//! read per pick (one atomic) and by the worker's Python (a short lock).

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use tokio::sync::watch;

use crate::headers::grpc_status;
use crate::stats::{self, CODE_NAMES};

pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// One check may take at most this long (less when the interval is shorter).
const MAX_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes of an answer read at most: a HealthCheckResponse is a few bytes.
pub const MAX_ANSWER_BYTES: usize = 64 << 10;
/// Verdict changes kept for the worker's Python between two reads (one a second); past that
/// the oldest are dropped and counted.
const MAX_CHANGES: usize = 4096;

const NOT_FOUND: u8 = 5;
const UNIMPLEMENTED: u8 = 12;

/// Why a check keeps a backend out of the pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    NotServing,
    UnknownService,
    Failing,
}

impl Condition {
    /// Its `BackendCondition` value.
    pub fn name(self) -> &'static str {
        match self {
            Condition::NotServing => "not_serving",
            Condition::UnknownService => "unknown_service",
            Condition::Failing => "failing",
        }
    }
}

/// What one check says: the condition that keeps the backend out of the pick (None: it
/// passes) and why, for the log (the same words as `health.py`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub condition: Option<Condition>,
    pub why: String,
}

impl Verdict {
    fn new(condition: Option<Condition>, why: impl Into<String>) -> Verdict {
        Verdict {
            condition,
            why: why.into(),
        }
    }
}

/// A serialized, framed HealthCheckRequest; "" asks about the server as a whole.
pub fn encode_request(service: &str) -> Bytes {
    let mut message = BytesMut::new();
    if !service.is_empty() {
        message.put_u8(0x0a); // field 1, length-delimited
        put_varint(&mut message, service.len() as u64);
        message.put_slice(service.as_bytes());
    }
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(0);
    framed.put_u32(message.len() as u32);
    framed.put_slice(&message);
    framed.freeze()
}

/// The status number of a serialized HealthCheckResponse (fields it does not know are
/// skipped). Err: the bytes are not protobuf.
pub fn decode_status(data: &[u8]) -> Result<u64, String> {
    let mut status = 0;
    let mut index = 0;
    while index < data.len() {
        let key = read_varint(data, &mut index)?;
        let (field, wire) = (key >> 3, key & 7);
        let skip = match wire {
            0 => {
                let value = read_varint(data, &mut index)?;
                if field == 1 {
                    status = value;
                }
                0
            }
            2 => read_varint(data, &mut index)?,
            1 => 8,
            5 => 4,
            _ => return Err(format!("unsupported wire type {wire}")),
        };
        index = usize::try_from(skip)
            .ok()
            .and_then(|skip| index.checked_add(skip))
            .filter(|&end| end <= data.len())
            .ok_or("truncated message")?;
    }
    Ok(status)
}

fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn read_varint(data: &[u8], index: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&byte) = data.get(*index) else { break };
        *index += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("truncated or overlong varint".into())
}

/// The verdict of a serialized HealthCheckResponse.
pub fn judge_answer(message: &[u8]) -> Verdict {
    match decode_status(message) {
        Err(error) => Verdict::new(
            Some(Condition::Failing),
            format!("unreadable answer: {error}"),
        ),
        Ok(1) => Verdict::new(None, "SERVING"),
        Ok(2) => Verdict::new(Some(Condition::NotServing), "NOT_SERVING"),
        Ok(3) => Verdict::new(
            Some(Condition::UnknownService),
            "unknown service (SERVICE_UNKNOWN)",
        ),
        Ok(_) => Verdict::new(Some(Condition::NotServing), "UNKNOWN"),
    }
}

/// The verdict of a check that ended with gRPC status `code` (not OK).
pub fn judge_error(code: u8, details: &str) -> Verdict {
    match code {
        UNIMPLEMENTED => Verdict::new(
            None,
            "no health service (UNIMPLEMENTED): counted as serving",
        ),
        NOT_FOUND => {
            let details = if details.is_empty() {
                "no details"
            } else {
                details
            };
            Verdict::new(
                Some(Condition::UnknownService),
                format!("unknown service (NOT_FOUND: {details})"),
            )
        }
        _ => {
            let name = CODE_NAMES.get(usize::from(code)).unwrap_or(&"UNKNOWN");
            Verdict::new(Some(Condition::Failing), format!("{name}: {details}"))
        }
    }
}

/// The verdict of a whole answer: its HTTP status, the headers or trailers that carry
/// `grpc-status` (Trailers-Only: the headers), and the response body (DATA) received.
pub fn judge_response(http_status: u16, status: &HeaderMap, body: &[u8]) -> Verdict {
    if http_status != 200 {
        return judge_error(
            code_of_http_status(http_status),
            &format!("HTTP status {http_status}"),
        );
    }
    let Some(code) = grpc_status(status) else {
        return judge_error(stats::UNKNOWN, "no grpc-status in the answer");
    };
    if code != stats::OK {
        let message = status
            .get("grpc-message")
            .map(|m| percent_decode(m.as_bytes()))
            .unwrap_or_default();
        return judge_error(code, &message);
    }
    match body {
        [0, a, b, c, d, message @ ..]
            if u32::from_be_bytes([*a, *b, *c, *d]) as usize == message.len() =>
        {
            judge_answer(message)
        }
        [1, ..] => Verdict::new(Some(Condition::Failing), "unreadable answer: compressed"),
        _ => Verdict::new(
            Some(Condition::Failing),
            format!(
                "unreadable answer: not one gRPC message ({} bytes)",
                body.len()
            ),
        ),
    }
}

/// gRPC's code for an answer whose HTTP status is not 200 (gRPC's
/// http-grpc-status-mapping.md).
fn code_of_http_status(status: u16) -> u8 {
    match status {
        400 => 13,            // INTERNAL
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 => UNIMPLEMENTED, // no such method there: no health service
        429 | 502..=504 => stats::UNAVAILABLE,
        _ => stats::UNKNOWN,
    }
}

/// `grpc-message`'s percent-encoding undone (invalid UTF-8 replaced).
fn percent_decode(value: &[u8]) -> String {
    let mut out = Vec::with_capacity(value.len());
    let mut index = 0;
    while index < value.len() {
        let hex = value
            .get(index + 1..index + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (value[index], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

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
    use http::HeaderValue;

    fn framed(message: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend((message.len() as u32).to_be_bytes());
        out.extend(message);
        out
    }

    #[test]
    fn a_request_carries_the_service_name_in_field_one_framed() {
        assert_eq!(&encode_request("")[..], [0, 0, 0, 0, 0]);
        assert_eq!(&encode_request("a.B")[..], framed(b"\x0a\x03a.B"));
        let long = "s".repeat(200);
        let request = encode_request(&long);
        assert_eq!(&request[5..8], [0x0a, 0xc8, 0x01]);
        assert_eq!(request.len(), 5 + 3 + 200);
    }

    #[test]
    fn a_status_is_read_from_field_one_skipping_the_rest() {
        assert_eq!(decode_status(b""), Ok(0));
        assert_eq!(decode_status(b"\x08\x01"), Ok(1));
        // A string field 2, a fixed64 field 3 and a fixed32 field 4 before the status.
        let mut data = b"\x12\x02hi\x19".to_vec();
        data.extend([0; 8]);
        data.extend(b"\x25\0\0\0\0\x08\x02");
        assert_eq!(decode_status(&data), Ok(2));
    }

    #[test]
    fn bytes_that_are_not_protobuf_are_an_error() {
        assert!(decode_status(b"\x08").is_err());
        assert!(decode_status(b"\x12\x05ab").is_err());
        assert!(decode_status(b"\x0b").is_err());
        assert!(decode_status(&[0xff; 11]).is_err());
    }

    #[test]
    fn answers_are_judged_as_the_grpcio_plane_judges_them() {
        let cases: [(&[u8], Option<Condition>, &str); 6] = [
            (b"\x08\x01", None, "SERVING"),
            (b"\x08\x02", Some(Condition::NotServing), "NOT_SERVING"),
            (b"", Some(Condition::NotServing), "UNKNOWN"),
            (b"\x08\x09", Some(Condition::NotServing), "UNKNOWN"),
            (
                b"\x08\x03",
                Some(Condition::UnknownService),
                "unknown service (SERVICE_UNKNOWN)",
            ),
            (
                b"\x08",
                Some(Condition::Failing),
                "unreadable answer: truncated or overlong varint",
            ),
        ];
        for (message, condition, why) in cases {
            assert_eq!(judge_answer(message), Verdict::new(condition, why));
        }
    }

    #[test]
    fn errors_are_judged_as_the_grpcio_plane_judges_them() {
        assert_eq!(
            judge_error(UNIMPLEMENTED, "x"),
            Verdict::new(
                None,
                "no health service (UNIMPLEMENTED): counted as serving"
            )
        );
        assert_eq!(
            judge_error(NOT_FOUND, ""),
            Verdict::new(
                Some(Condition::UnknownService),
                "unknown service (NOT_FOUND: no details)"
            )
        );
        assert_eq!(
            judge_error(stats::DEADLINE_EXCEEDED, "Deadline Exceeded"),
            Verdict::new(
                Some(Condition::Failing),
                "DEADLINE_EXCEEDED: Deadline Exceeded"
            )
        );
    }

    fn status(code: &str, message: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_str(code).unwrap());
        if let Some(message) = message {
            headers.insert("grpc-message", HeaderValue::from_str(message).unwrap());
        }
        headers
    }

    #[test]
    fn a_whole_answer_is_judged_by_http_status_grpc_status_then_message() {
        let ok = status("0", None);
        assert_eq!(
            judge_response(200, &ok, &framed(b"\x08\x01")).condition,
            None
        );
        assert_eq!(
            judge_response(200, &ok, &framed(b"\x08\x02")).condition,
            Some(Condition::NotServing)
        );
        assert_eq!(
            judge_response(200, &status("5", Some("unknown%20service")), b""),
            Verdict::new(
                Some(Condition::UnknownService),
                "unknown service (NOT_FOUND: unknown service)"
            )
        );
        assert_eq!(
            judge_response(200, &status("12", None), b"").condition,
            None
        );
        assert_eq!(
            judge_response(200, &status("14", Some("gone")), b"").why,
            "UNAVAILABLE: gone"
        );
        assert_eq!(judge_response(404, &HeaderMap::new(), b"").condition, None);
        assert_eq!(
            judge_response(503, &HeaderMap::new(), b"").why,
            "UNAVAILABLE: HTTP status 503"
        );
        for body in [&b""[..], &[0, 0, 0, 0, 9, 8][..], &framed(b"\x08\x01")[..4]] {
            let verdict = judge_response(200, &ok, body);
            assert_eq!(verdict.condition, Some(Condition::Failing), "{body:?}");
        }
        assert_eq!(
            judge_response(200, &HeaderMap::new(), &framed(b"\x08\x01")).condition,
            Some(Condition::Failing)
        );
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(percent_decode(b"a%20b%25%zz%C3%A9%"), "a b%%zzé%");
    }

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
