//! The health-check task of one backend: `grpc.health.v1.Health/Check` on the backend's own
//! connection, every `--health-check-interval`, until the backend leaves the endpoint set.
//!
//! Each check leases a stream slot, connecting as a call would when the backend has no
//! connection (bounded by `--connect-timeout`; a failed connect is UNAVAILABLE, and a connect
//! is never cut short by a check's deadline, so a slow one still completes), then makes one
//! unary call with a deadline (`Checks::timeout`, also sent as `grpc-timeout`): send the
//! framed request, read the answer (at most `MAX_ANSWER_BYTES`) and its trailers, and let
//! `health.rs` judge it; a call that runs out of time is DEADLINE_EXCEEDED (a hung backend).
//! The backend's `Health` (`verdicts.rs`) keeps the verdict. The next check comes after the
//! interval (×0.9–1.1), or at once when a call opens a new connection to the backend
//! meanwhile, as the grpcio plane checks whenever a channel (re)connects (the backend's
//! `keep_connected` task reconnects it when a connection ends). Checks are not calls: they
//! count in no call counter and not in least-request's load. The task starts beside
//! `keep_connected` (`Shared::welcome`); its first check waits for that first connect, so it
//! comes as soon as the connection is up.
//!
//! Concurrency: one task per backend on the engine's runtime thread.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use tokio::time::{sleep, timeout};

use crate::backend::{Backend, Lease};
use crate::deadline;
use crate::engine::Shared;
use crate::health::{CHECK_PATH, MAX_ANSWER_BYTES, Verdict, encode_request};
use crate::health::{judge_error, judge_response};
use crate::stats;
use crate::verdicts::Checks;

/// Check `backend` every interval until it leaves the set, keeping its verdict and queueing
/// each change on `checks`.
pub async fn run_checks(backend: Arc<Backend>, checks: Arc<Checks>, shared: &Shared) {
    let request = encode_request(&checks.service);
    let mut random = RandomState::new().hash_one(&backend.address) | 1;
    let mut connections = backend.health.connections();
    while !backend.removed() {
        let verdict = check(&backend, &request, &checks, shared).await;
        connections.borrow_and_update(); // a connection this check opened needs no other
        if backend.removed() {
            return;
        }
        if let Some(change) = backend.health.take(verdict) {
            checks.record(&backend.address, change);
        }
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let wait = checks.next_wait((random >> 11) as f64 / (1u64 << 53) as f64);
        tokio::select! {
            _ = sleep(wait) => {}
            _ = connections.changed() => {}
        }
    }
}

fn unavailable(why: &dyn std::fmt::Display) -> Verdict {
    judge_error(stats::UNAVAILABLE, &why.to_string())
}

/// One check: a connection, then the call within its deadline.
async fn check(backend: &Backend, message: &Bytes, checks: &Checks, shared: &Shared) -> Verdict {
    let lease = match backend.lease(shared.connect_timeout, &shared.tls).await {
        Ok(lease) => lease,
        Err(why) => return unavailable(&why),
    };
    let asked = ask(&lease, &backend.address, message, checks.timeout());
    match timeout(checks.timeout(), asked).await {
        Ok(verdict) => verdict,
        Err(_) => judge_error(stats::DEADLINE_EXCEEDED, "Deadline Exceeded"),
    }
}

/// The call of one check, on `lease`'s connection, without its deadline (the caller's).
async fn ask(lease: &Lease, address: &str, message: &Bytes, deadline: Duration) -> Verdict {
    let request = match build_request(address, deadline) {
        Ok(request) => request,
        Err(why) => return judge_error(stats::INTERNAL, &why.to_string()),
    };
    let (response, mut send) = match lease.sender().send_request(request, false) {
        Ok(pair) => pair,
        Err(e) => return unavailable(&e),
    };
    // A few bytes: h2 buffers them whatever the window (no capacity to reserve first).
    if let Err(e) = send.send_data(message.clone(), true) {
        return unavailable(&e);
    }
    let response = match response.await {
        Ok(response) => response,
        Err(e) => return unavailable(&e),
    };
    let (parts, mut recv) = response.into_parts();
    if recv.is_end_stream() {
        return judge_response(parts.status.as_u16(), &parts.headers, b"");
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = recv.data().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => return unavailable(&e),
        };
        let _ = recv.flow_control().release_capacity(chunk.len());
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return judge_error(
                stats::RESOURCE_EXHAUSTED,
                &format!("an answer over {MAX_ANSWER_BYTES} bytes"),
            );
        }
        body.extend_from_slice(&chunk);
    }
    let trailers = match recv.trailers().await {
        Ok(trailers) => trailers.unwrap_or_default(),
        Err(e) => return unavailable(&e),
    };
    judge_response(parts.status.as_u16(), &trailers, &body)
}

fn build_request(address: &str, deadline: Duration) -> Result<Request<()>, http::Error> {
    let uri = Uri::builder()
        .scheme("http")
        .authority(address)
        .path_and_query(CHECK_PATH)
        .build()?;
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers.insert("te", HeaderValue::from_static("trailers"));
    if let Ok(value) = HeaderValue::from_str(&deadline::format(deadline)) {
        headers.insert("grpc-timeout", value);
    }
    let mut request = Request::new(());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}
