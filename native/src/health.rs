//! Active health checks (`--health-check[=SERVICE]`): what a `grpc.health.v1.Health/Check`
//! answer means. Pure; mirrors the grpcio plane's `gproxy_mp/worker/health.py`, whose reasons
//! and log lines the worker's Python reuses.
//!
//! The checks run on each backend's own connection (`checker.rs`); each backend keeps its
//! last verdict (`verdicts.rs`). A backend whose verdict names a condition ranks
//! `balance::CHECK_FAILED` after every backend that passes until a check passes again; when
//! none passes, calls go to all of them (panic: the worker's `PanicWatch` says so). A backend
//! not checked yet counts as passing, as on the grpcio plane. Conditions (the
//! `BackendCondition` names of `gproxy_mp/bus/schema.py`):
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

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;

use crate::headers::grpc_status;
use crate::stats::{self, CODE_NAMES};

pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// Bytes of an answer read at most: a HealthCheckResponse is a few bytes.
pub const MAX_ANSWER_BYTES: usize = 64 << 10;

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
    pub fn new(condition: Option<Condition>, why: impl Into<String>) -> Verdict {
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
}
